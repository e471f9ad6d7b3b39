"""Per-layer statistics of an elementwise metric, written once for every framework.

Each elementwise metric (|Δw|, the effective learning rate, ...) of a logged
update becomes, per variable: exact min, max, mean and rms, seven quantiles
and a half-octave histogram.  Nothing is sorted.  Quantiles come from two
histograms built on the float's bit pattern:

1. the half-octave histogram (which is also stored) locates each quantile's
   ranks in a power-of-two range [2^e, 2^(e+1));
2. a second pass counts only the elements in those (at most 14) ranges in
   64 linear sub-bins, and the quantile is the mid-point of its sub-bin.

A sub-bin is at most 1/64 of the value, so a quantile is within 0.8% of the
numpy value (linear interpolation between order statistics), and both
passes are a few integer ops and one small bincount per element.

Everything is vectorised over *segments*: many small variables concatenated
into one vector are reduced by the same ops (one op sequence per step, not
per variable), and a big variable can be reduced chunk by chunk,
accumulating `Partials`, so temporaries stay chunk-sized.

The code only calls the `ops` adapter it is given (`ops_numpy`, `ops_torch`,
`ops_jax`) and the arithmetic operators every array type has, so the same
algorithm -- and the same numbers -- run on the host, on a torch device and
inside a jitted JAX function.  Shapes depend only on the segment count, never
on the data, so it compiles once per shape.
"""

from tb_stepsize import metadata

INF_BITS = 0x7F800000
_MANTISSA = 0x7FFFFF
_SQRT2_MANTISSA = 0x3504F3  # mantissa bits of float32(sqrt(2)): the half-octave split
_EXPONENTS = 255  # finite biased exponents 0..254
_SUB_BITS = 6
_SUB = 1 << _SUB_BITS  # sub-bins per power of two in the second pass
_PERCENTS = [round(100 * q) for _, q in metadata.QUANTILES]
_NQ = len(_PERCENTS)
RANKS = 2 * _NQ  # the lower and upper order statistic of each quantile

# Columns computed here; zero_fraction and nonfinite follow from the histogram on the host.
DEVICE_STATS = metadata.ELEMENT_STATS[:-2]


def _cumsum(ops, x, block):
    """Cumulative sum along the last axis (its length a multiple of `block`), in
    blocks: XLA on CPU computes a plain cumsum as a sliding window, O(n^2) per row."""
    *lead, n = x.shape
    blocks = ops.reshape(x, (*lead, n // block, block))
    inner = ops.cumsum(blocks, -1)
    totals = inner[..., -1]
    before = ops.cumsum(totals, -1) - totals
    return ops.reshape(inner + before[..., None], (*lead, n))


def coarse_bins(bits):
    """Half-octave bin of each |x| bit pattern: 0 for zero, 1 + 2e + (upper half) for
    biased exponent e, and the two bins after the finite ones for inf and NaN."""
    exponent = bits >> 23
    upper = ((bits & _MANTISSA) >= _SQRT2_MANTISSA) * 1
    finite_bin = 1 + 2 * exponent + upper  # inf: exponent 255, mantissa 0 -> HIST_FINITE_BINS + 1
    nan_bin = metadata.HIST_FINITE_BINS + 2
    return (bits != 0) * ((bits <= INF_BITS) * finite_bin + (bits > INF_BITS) * nan_bin)


class Partials:
    """Mergeable per-segment summaries of one metric: the first pass."""

    FIELDS = ("min_bits", "max_bits", "total", "total_sq", "hist")

    def __init__(self, min_bits, max_bits, total, total_sq, hist):
        self.min_bits, self.max_bits = min_bits, max_bits
        self.total, self.total_sq, self.hist = total, total_sq, hist

    @classmethod
    def empty(cls, ops, segments):
        return cls(
            ops.full((segments,), INF_BITS, "int32"),
            ops.full((segments,), 0, "int32"),
            ops.full((segments,), 0.0, "float32"),
            ops.full((segments,), 0.0, "float32"),
            ops.full((segments, metadata.HIST_BINS), 0, "int32"),
        )

    @classmethod
    def of(cls, ops, x, segment_ids=None, segments=1):
        """First pass over `x`; `segment_ids=None` means one segment (plain reductions)."""
        bits = ops.abs_bits(x)
        finite = bits < INF_BITS
        xf = ops.float_of_bits(ops.where(finite, bits, 0))
        low, high = ops.where(finite, bits, INF_BITS), ops.where(finite, bits, 0)
        bins = coarse_bins(bits)
        if segment_ids is None:
            return cls(
                ops.reshape(ops.min(low), (1,)),
                ops.reshape(ops.max(high), (1,)),
                ops.reshape(ops.accurate_sum(xf), (1,)),
                ops.reshape(ops.accurate_sum(xf * xf), (1,)),
                ops.reshape(ops.bincount(bins, metadata.HIST_BINS), (1, metadata.HIST_BINS)),
            )
        # Two scatters instead of four: max of (-min, max) and sum of (x, x^2).
        extremes = ops.segment_max(ops.stack([-low, high], 1), segment_ids, segments)
        sums = ops.segment_sum(ops.stack([xf, xf * xf], 1), segment_ids, segments)
        hist = ops.bincount(segment_ids * metadata.HIST_BINS + bins, segments * metadata.HIST_BINS)
        return cls(
            -extremes[:, 0],
            extremes[:, 1],
            sums[:, 0],
            sums[:, 1],
            ops.reshape(hist, (segments, metadata.HIST_BINS)),
        )

    def merge(self, other, ops):
        return Partials(
            ops.minimum(self.min_bits, other.min_bits),
            ops.maximum(self.max_bits, other.max_bits),
            self.total + other.total,
            self.total_sq + other.total_sq,
            self.hist + other.hist,
        )

    def as_tuple(self):
        return tuple(getattr(self, f) for f in self.FIELDS)


def _ranks(ops, n):
    """Lower and upper order statistic of each quantile, and the fraction between:
    q * (n - 1) in integers (no float64, which jitted JAX lacks by default)."""
    hundreds, rest = (n - 1) // 100, (n - 1) % 100
    percents = ops.constant(_PERCENTS, "int32")[None, :]
    scaled = rest[:, None] * percents  # < 10,000
    low = hundreds[:, None] * percents + scaled // 100
    remainder = scaled % 100
    high = low + (remainder > 0) * 1
    return ops.concat([low, high], 1), ops.cast(remainder, "float32") / 100.0


class QuantileTargets:
    """Where each quantile's order statistics lie, from the first pass."""

    def __init__(self, ops, partials):
        hist = partials.hist
        segments = hist.shape[0]
        finite = hist[:, : metadata.HIST_FINITE_BINS + 1]
        # Counts of exact zeros, then of each biased exponent (two half-octaves each).
        per_exponent = ops.sum(ops.reshape(finite[:, 1:], (segments, _EXPONENTS, 2)), 2)
        cum = _cumsum(ops, ops.concat([finite[:, :1], per_exponent], 1), 16)  # [G, 256]
        self.n = cum[:, -1]
        ranks, self.frac = _ranks(ops, ops.maximum(self.n, 1))  # [G, 14], [G, 7]
        # Position in `cum` of each rank (0 = zero, e + 1 = exponent e): the number
        # of entries <= rank, counted in two levels (blocks of 16, then within one).
        blocks = ops.reshape(cum, (segments, 16, 16))
        block = ops.minimum(self._at_most(ops, blocks[:, None, :, -1], ranks), 15)
        where = 16 * block + self._at_most(ops, ops.gather_rows(blocks, block), ranks)
        self.is_zero = where == 0
        self.exponent = ops.maximum(where - 1, 0)
        below = ops.gather_rows(cum, ops.maximum(where - 1, 0))
        self.rank_in_exponent = ranks - ops.where(self.is_zero, 0, below)
        # Exponent -> slot (the first rank with that exponent) for the second pass; -1 elsewhere.
        nonzero = ~self.is_zero
        same = (self.exponent[:, :, None] == self.exponent[:, None, :]) & nonzero[:, None, :]
        self.slot = ops.argmax(same, 2)  # [G, 14]
        hits = (ops.arange(256)[None, None, :] == self.exponent[:, :, None]) & nonzero[:, :, None]
        self.table = ops.reshape(ops.where(ops.any(hits, 1), ops.argmax(hits, 1), -1), (-1,))  # [G * 256]

    @staticmethod
    def _at_most(ops, cumulative, ranks):
        return ops.sum(ops.cast(cumulative <= ranks[:, :, None], "int32"), 2)


def fine_counts(ops, x, targets, segment_ids=None, segments=1):
    """Second pass: 64 sub-bins of each target exponent, `[G, 14, 64]`."""
    bits = ops.abs_bits(x)
    exponent = bits >> 23
    if segment_ids is None:
        slot = ops.take(targets.table, exponent)
        base = slot
    else:
        slot = ops.take(targets.table, segment_ids * 256 + exponent)
        base = segment_ids * RANKS + slot
    sub = (bits & _MANTISSA) >> (23 - _SUB_BITS)
    outside = segments * RANKS * _SUB
    inside = (slot >= 0) & (bits != 0) & (bits < INF_BITS)
    counts = ops.bincount(ops.where(inside, base * _SUB + sub, outside), outside + 1)
    return ops.reshape(counts[:-1], (segments, RANKS, _SUB))


def finish(ops, partials, targets, fine):
    """`[G, len(DEVICE_STATS)]` float32 statistics (NaN where a segment has no finite value)."""
    n_f = ops.cast(targets.n, "float32")
    min_v = ops.float_of_bits(partials.min_bits)
    max_v = ops.float_of_bits(partials.max_bits)
    rows = ops.gather_rows(fine, targets.slot)  # [G, 14, 64]: each rank's exponent
    cum = _cumsum(ops, rows, 8)
    sub = ops.sum(ops.cast(cum <= targets.rank_in_exponent[:, :, None], "int32"), 2)
    low = (targets.exponent << 23) | (sub << (23 - _SUB_BITS))
    lo = ops.float_of_bits(low)
    hi = ops.float_of_bits(low + (1 << (23 - _SUB_BITS)))
    values = ops.where(targets.is_zero, 0.0, lo + (hi - lo) * 0.5)
    values = ops.minimum(ops.maximum(values, min_v[:, None]), max_v[:, None])
    quantiles = values[:, :_NQ] + targets.frac * (values[:, _NQ:] - values[:, :_NQ])
    stats = ops.concat(
        [
            min_v[:, None],
            quantiles,
            max_v[:, None],
            (partials.total / n_f)[:, None],
            ops.sqrt(partials.total_sq / n_f)[:, None],
        ],
        1,
    )
    return ops.where((targets.n > 0)[:, None], stats, float("nan"))


def elementwise_stats(ops, x, segment_ids=None, segments=1):
    """Statistics of `|x|` in one go: `(stats [G, S], hist [G, HIST_BINS])`."""
    partials = Partials.of(ops, x, segment_ids, segments)
    targets = QuantileTargets(ops, partials)
    return finish(ops, partials, targets, fine_counts(ops, x, targets, segment_ids, segments)), partials.hist

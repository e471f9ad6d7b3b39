"""Reductions that run on the device, inside the compiled train step.

Each elementwise metric (|Δw|, the effective learning rate, ...) of a logged
update becomes, per variable: exact min, max, mean and rms, seven quantiles
and a half-octave histogram.  Nothing is sorted.  Quantiles come from two
histograms built on the float's bit pattern:

1. the half-octave histogram (which is also stored) locates each quantile's
   rank in a power-of-two range [2^e, 2^(e+1));
2. a second pass counts only the elements in those (at most 14) ranges in
   64 linear sub-bins, and the quantile is the mid-point of its sub-bin.

A sub-bin is at most 1/64 of the value, so a quantile is within 0.8% of the
numpy value (linear interpolation between order statistics), and both
passes are a few integer ops and one small bincount per element.

Everything is vectorised over *segments*: many small variables concatenated
into one vector are reduced by the same ops (one op sequence per step, not
per variable), and a big variable is reduced chunk by chunk, accumulating
`Partials`, so the temporaries stay small.
"""

import tensorflow as tf

from tb_stepsize import metadata

_INF_BITS = 0x7F800000
_MANTISSA = 0x7FFFFF
_SQRT2_MANTISSA = 0x3504F3  # mantissa bits of float32(sqrt(2))
_EXPONENTS = 255  # finite biased exponents 0..254
_SUB = 64  # sub-bins per power of two in the second pass
_Q = tf.constant([q for _, q in metadata.QUANTILES], tf.float64)
_NQ = len(metadata.QUANTILES)
_RANKS = 2 * _NQ  # the lower and upper order statistic of each quantile

# Columns computed here; zero_fraction and nonfinite come from the histogram.
DEVICE_STATS = metadata.ELEMENT_STATS[:-2]


def _bincount(indices, size):
    """Counts of each value in `indices` (all in [0, size)), with a static size for XLA."""
    return tf.raw_ops.DenseBincount(
        input=indices, size=size, weights=tf.zeros([0], tf.int32), binary_output=False
    )


def _cumsum(x, block):
    """Cumulative sum along the last axis (its length a multiple of `block`).

    XLA on CPU computes `tf.cumsum` as a sliding window, O(n^2) per row; in
    blocks it is O(n * block + (n / block)^2).
    """
    shape = tf.shape(x)
    n = x.shape[-1]
    blocks = tf.reshape(x, tf.concat([shape[:-1], [n // block, block]], 0))
    inner = tf.cumsum(blocks, axis=-1)
    before = tf.cumsum(inner[..., -1], axis=-1, exclusive=True)
    return tf.reshape(inner + before[..., tf.newaxis], shape)


def accurate_sum(x, keepdims=False):
    """Sum of a float32 array accumulated in float64: XLA on CPU adds a
    chunk's 262,144 elements in order, which in float32 loses ~1e-4."""
    return tf.cast(tf.reduce_sum(tf.cast(x, tf.float64), keepdims=keepdims), tf.float32)


def _bits(x):
    """Bit patterns of |x| as int32; order-preserving for non-negative floats."""
    return tf.bitwise.bitwise_and(tf.bitcast(tf.reshape(tf.cast(x, tf.float32), [-1]), tf.int32), 0x7FFFFFFF)


class Partials:
    """Mergeable per-segment summaries of one metric: the first pass."""

    FIELDS = ("min_bits", "max_bits", "total", "total_sq", "hist")

    def __init__(self, min_bits, max_bits, total, total_sq, hist):
        self.min_bits, self.max_bits = min_bits, max_bits
        self.total, self.total_sq, self.hist = total, total_sq, hist

    @classmethod
    def empty(cls, segments):
        return cls(
            tf.fill([segments], _INF_BITS),
            tf.zeros([segments], tf.int32),
            tf.zeros([segments], tf.float32),
            tf.zeros([segments], tf.float32),
            tf.zeros([segments, metadata.HIST_BINS], tf.int32),
        )

    @classmethod
    def of(cls, x, segment_ids=None, segments=1):
        """First pass over `x`; `segment_ids=None` means one segment (plain reductions)."""
        bits = _bits(x)
        finite = bits < _INF_BITS
        xf = tf.bitcast(tf.where(finite, bits, 0), tf.float32)
        exponent = tf.bitwise.right_shift(bits, 23)
        upper_half = tf.cast(tf.bitwise.bitwise_and(bits, _MANTISSA) >= _SQRT2_MANTISSA, tf.int32)
        coarse = tf.where(bits == 0, 0, 1 + 2 * exponent + upper_half)
        low, high = tf.where(finite, bits, _INF_BITS), tf.where(finite, bits, 0)
        if segment_ids is None:
            return cls(
                tf.reduce_min(low, keepdims=True),
                tf.reduce_max(high, keepdims=True),
                accurate_sum(xf, keepdims=True),
                accurate_sum(tf.square(xf), keepdims=True),
                _bincount(coarse, metadata.HIST_BINS)[tf.newaxis],
            )
        # Two scatters instead of four: max of (-min, max) and sum of (x, x^2).
        extremes = tf.math.unsorted_segment_max(tf.stack([-low, high], 1), segment_ids, segments)
        sums = tf.math.unsorted_segment_sum(tf.stack([xf, tf.square(xf)], 1), segment_ids, segments)
        return cls(
            -extremes[:, 0],
            extremes[:, 1],
            sums[:, 0],
            sums[:, 1],
            tf.reshape(
                _bincount(segment_ids * metadata.HIST_BINS + coarse, segments * metadata.HIST_BINS),
                [segments, metadata.HIST_BINS],
            ),
        )

    def merge(self, other):
        return Partials(
            tf.minimum(self.min_bits, other.min_bits),
            tf.maximum(self.max_bits, other.max_bits),
            self.total + other.total,
            self.total_sq + other.total_sq,
            self.hist + other.hist,
        )

    def as_tuple(self):
        return tuple(getattr(self, f) for f in self.FIELDS)


class QuantileTargets:
    """Where each quantile's order statistics lie, from the first pass."""

    def __init__(self, partials):
        hist = partials.hist
        segments = tf.shape(hist)[0]
        finite = hist[:, : metadata.HIST_FINITE_BINS + 1]
        # Counts of exact zeros, then of each biased exponent (two half-octaves each).
        per_exponent = tf.reduce_sum(tf.reshape(finite[:, 1:], [segments, _EXPONENTS, 2]), 2)
        cum = _cumsum(tf.concat([finite[:, :1], per_exponent], 1), 16)  # [G, 256]
        self.n = cum[:, -1]
        pos = _Q[tf.newaxis, :] * tf.cast(tf.maximum(self.n - 1, 0), tf.float64)[:, tf.newaxis]
        self.frac = tf.cast(pos - tf.floor(pos), tf.float32)
        ranks = tf.cast(tf.concat([tf.floor(pos), tf.math.ceil(pos)], 1), tf.int32)  # [G, 14]
        # Position in `cum` of each rank (0 = zero, e + 1 = exponent e): the
        # number of entries <= rank, a prefix since `cum` grows.  Counted in
        # two levels, blocks of 16 then within one, not against all 256.
        below_rank = lambda c: tf.reduce_sum(tf.cast(c <= ranks[:, :, tf.newaxis], tf.int32), 2)  # noqa: E731
        blocks = tf.reshape(cum, [segments, 16, 16])
        block = tf.minimum(below_rank(blocks[:, tf.newaxis, :, -1]), 15)  # whole blocks below (all 16 if n = 0)
        where = 16 * block + below_rank(tf.gather(blocks, block, batch_dims=1))
        self.is_zero = where == 0
        self.exponent = tf.maximum(where - 1, 0)
        below = tf.gather(cum, tf.maximum(where - 1, 0), batch_dims=1)
        self.rank_in_exponent = ranks - tf.where(self.is_zero, 0, below)
        # Exponent -> slot (first rank with that exponent) for the second pass; -1 elsewhere.
        same = tf.equal(self.exponent[:, :, tf.newaxis], self.exponent[:, tf.newaxis, :]) & ~self.is_zero[:, tf.newaxis, :]
        self.slot = tf.cast(tf.argmax(tf.cast(same, tf.int32), axis=2), tf.int32)  # [G, 14]
        table = tf.fill([segments, 256], -1)
        g = tf.broadcast_to(tf.range(segments)[:, tf.newaxis], [segments, _RANKS])
        index = tf.stack([g, self.exponent], 2)
        self.table = tf.reshape(
            tf.tensor_scatter_nd_update(table, tf.reshape(index, [-1, 2]), tf.reshape(tf.where(self.is_zero, -1, self.slot), [-1])),
            [-1],
        )  # [G * 256]


def fine_counts(x, table, segment_ids=None, segments=1):
    """Second pass: 64 sub-bins of each target exponent, `[G, 14, 64]` (`table`: `QuantileTargets.table`)."""
    bits = _bits(x)
    exponent = tf.bitwise.right_shift(bits, 23)
    if segment_ids is None:
        slot = tf.gather(table, exponent)
        base = slot
    else:
        slot = tf.gather(table, segment_ids * 256 + exponent)
        base = segment_ids * _RANKS + slot
    sub = tf.bitwise.right_shift(tf.bitwise.bitwise_and(bits, _MANTISSA), 23 - 6)
    outside = segments * _RANKS * _SUB
    index = tf.where((slot >= 0) & (bits != 0) & (bits < _INF_BITS), base * _SUB + sub, outside)
    return tf.reshape(_bincount(index, outside + 1)[:-1], [segments, _RANKS, _SUB])


def finish(partials, targets, fine):
    """`[G, len(DEVICE_STATS)]` float32 statistics (NaN where a segment has no finite value)."""
    n = targets.n
    n_f = tf.cast(n, tf.float32)
    min_v = tf.bitcast(partials.min_bits, tf.float32)
    max_v = tf.bitcast(partials.max_bits, tf.float32)
    rows = tf.gather(fine, targets.slot, batch_dims=1)  # [G, 14, 64]: each rank's exponent
    cum = _cumsum(rows, 8)
    sub = tf.reduce_sum(tf.cast(cum <= targets.rank_in_exponent[:, :, tf.newaxis], tf.int32), 2)
    low = tf.bitwise.bitwise_or(tf.bitwise.left_shift(targets.exponent, 23), tf.bitwise.left_shift(sub, 23 - 6))
    lo = tf.bitcast(low, tf.float32)
    hi = tf.bitcast(low + (1 << (23 - 6)), tf.float32)
    values = tf.where(targets.is_zero, 0.0, lo + (hi - lo) * 0.5)
    values = tf.clip_by_value(values, min_v[:, tf.newaxis], max_v[:, tf.newaxis])
    quantiles = values[:, :_NQ] + targets.frac * (values[:, _NQ:] - values[:, :_NQ])
    stats = tf.concat(
        [
            min_v[:, tf.newaxis],
            quantiles,
            max_v[:, tf.newaxis],
            (partials.total / n_f)[:, tf.newaxis],
            tf.sqrt(partials.total_sq / n_f)[:, tf.newaxis],
        ],
        1,
    )
    return tf.where((n > 0)[:, tf.newaxis], stats, float("nan"))


def elementwise_stats(x, segment_ids=None, segments=1):
    """Statistics of `|x|` in one go: `(stats [G, S], hist [G, HIST_BINS])`."""
    partials = Partials.of(x, segment_ids, segments)
    targets = QuantileTargets(partials)
    return finish(partials, targets, fine_counts(x, targets.table, segment_ids, segments)), partials.hist


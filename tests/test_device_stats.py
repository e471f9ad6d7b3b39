"""`device_stats` against numpy on edge cases.

Statistics are of |x| over the finite elements (zeros included), as the
README states:

* min and max are exact: they are float32 bit patterns, compared with `==`;
* mean and rms are compared with a float64 reference within the rounding
  their sums can make: the one-segment path (a variable, or one chunk of a
  large one) sums in float64 and rounds once to float32, then divides (and
  takes a root) in float32: 4 float32 roundings, rtol 4 * 2^-24.  The
  segmented path (many small variables at once) sums in float32, whose error
  for n non-negative terms is at most (n - 1) * 2^-24 of the sum, plus those
  4 roundings.  Chunks of a large variable add one float32 rounding per
  chunk;
* rms is exact only while x^2 is a normal float32 (|x| from about 1.1e-19 to
  1.8e19), mean while the sum of |x| is below float32's largest value:
  beyond, these float32 sums overflow or underflow (`test_sums_beyond_float32`
  shows what is then recorded);
* TensorFlow's CPU kernels treat subnormal inputs as zero in arithmetic
  (denormals-are-zero), so mean and rms count a subnormal as 0; min, max,
  the histogram read bit patterns and see it, and a quantile among
  subnormals is a sub-bin mid-point computed in float32, which may be
  flushed to 0 too;
* a quantile is within 1% of the interval between the two order statistics
  it interpolates (widened by 1%), and within 0.8% of numpy's value; for
  subnormals the sub-bins are linear in the value, so the bound is their
  absolute width 2^-132;
* `nonfinite` and `zero_fraction` come from the histogram's last bins and
  its zero bin, counted exactly.

Segment sizes: 1, the small-variable limit (`reduction.SMALL_MAX` elements,
one segment of the segmented path) and a large variable of `reduction.CHUNK`
elements +- 1, reduced chunk by chunk as `Reducer` does.
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")

from stats_checks import CASES, NAMES, RNG, U, check  # noqa: E402
from tb_stepsize import device_stats, metadata, reduction  # noqa: E402

_compiled = {}


def segmented(x, sizes, jit=True):
    """`(stats [G, S], hist [G, B])` of segments of `x` with `sizes`, as the small-variable path runs it (XLA)."""
    ids = np.repeat(np.arange(len(sizes)), sizes).astype(np.int32)
    fn = lambda x, ids: device_stats.elementwise_stats(x, ids, len(sizes))  # noqa: E731
    if jit:
        key = (len(x), len(sizes))
        fn = _compiled.setdefault(key, tf.function(fn, jit_compile=True))
    stats, hist = fn(tf.constant(x, tf.float32), tf.constant(ids))
    return stats.numpy(), hist.numpy()


def chunked(x, chunk):
    """`(stats [S], hist [B])` of one large variable, two passes over chunks as `Reducer` does."""
    pieces = [tf.constant(x[i : i + chunk], tf.float32) for i in range(0, len(x), chunk)]
    partials = device_stats.Partials.empty(1)
    for piece in pieces:
        partials = partials.merge(device_stats.Partials.of(piece))
    targets = device_stats.QuantileTargets(partials)
    fine = sum(device_stats.fine_counts(piece, targets.table) for piece in pieces)
    return device_stats.finish(partials, targets, fine)[0].numpy(), partials.hist[0].numpy()


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("path", ["one_segment", "segmented_xla", "segmented_eager"])
def test_edge_cases(case, path):
    x = CASES[case]
    if path == "one_segment":
        stats, hist = chunked(x, reduction.CHUNK)
        check(x, stats, hist, 1, case)
        return
    # The case between two other segments: they must not leak into it.
    neighbours = RNG.standard_normal(13).astype(np.float32)
    stats, hist = segmented(np.concatenate([neighbours, x, neighbours * 1e6]), [13, len(x), 13], jit=path == "segmented_xla")
    check(x, stats[1], hist[1], len(x), case)
    check(neighbours, stats[0], hist[0], 13, f"{case} neighbour")
    check(neighbours * 1e6, stats[2], hist[2], 13, f"{case} neighbour")


def test_segments_of_one_element():
    x = np.float32([0.0, -1.5, np.nan, 3e-40, 7.0, np.inf, 2.0**-149])
    stats, hist = segmented(x, [1] * len(x))
    for g, value in enumerate(x):
        check(x[g : g + 1], stats[g], hist[g], 1, f"segment {g}")


def test_segment_at_the_small_variable_limit():
    x = (RNG.standard_normal(reduction.SMALL_MAX) * 10.0 ** RNG.uniform(-8, 2, reduction.SMALL_MAX)).astype(np.float32)
    x[::97] = 0.0
    x[5] = np.nan
    stats, hist = segmented(np.concatenate([x, x[:3]]), [reduction.SMALL_MAX, 3])
    check(x, stats[0], hist[0], reduction.SMALL_MAX, "small-variable limit")
    check(x[:3], stats[1], hist[1], 3, "after it")


@pytest.mark.parametrize("extra", [-1, 0, 1])
def test_large_variable_around_the_chunk_size(extra):
    n = reduction.CHUNK + extra
    x = (RNG.standard_normal(n) * 10.0 ** RNG.uniform(-6, 1, n)).astype(np.float32)
    x[-1] = 1e3  # the maximum in the last element: in its own chunk at CHUNK + 1
    x[0] = 0.0
    stats, hist = chunked(x, reduction.CHUNK)
    chunks = -(-n // reduction.CHUNK)
    check(x, stats, hist, chunks, f"CHUNK{extra:+d}")
    assert stats[NAMES.index("max")] == np.float32(1e3)


def test_chunking_changes_no_extreme_or_quantile():
    """Small chunks (as the distributed tests use) give the same min, max and quantiles as one pass."""
    x = RNG.standard_normal(1001).astype(np.float32)
    whole, whole_hist = chunked(x, 4096)
    parts, parts_hist = chunked(x, 100)
    np.testing.assert_array_equal(whole_hist, parts_hist)
    exact = [NAMES.index(n) for n in NAMES if n not in ("mean", "rms")]
    np.testing.assert_array_equal(whole[exact], parts[exact])
    np.testing.assert_allclose(parts[-2:], whole[-2:], rtol=12 * U)


def test_sums_beyond_float32():
    """The limits of sums kept in float32: x^2 overflows past ~1.8e19 and underflows
    below ~1e-23, so rms reads inf or 0; the sum of |x| overflows past 3.4e38, so
    mean reads inf.  min, max and quantiles stay right."""
    big, _ = chunked(np.float32([1e30, 2e30]), reduction.CHUNK)
    tiny, _ = chunked(np.float32([1e-30, 2e-30]), reduction.CHUNK)
    assert np.isinf(big[NAMES.index("rms")]) and tiny[NAMES.index("rms")] == 0.0
    np.testing.assert_allclose(big[NAMES.index("mean")], 1.5e30, rtol=4 * U)
    np.testing.assert_allclose(tiny[NAMES.index("mean")], 1.5e-30, rtol=4 * U)
    largest = np.finfo(np.float32).max
    huge, _ = chunked(np.float32([largest, -largest]), reduction.CHUNK)
    assert np.isinf(huge[NAMES.index("mean")]) and huge[NAMES.index("max")] == largest
    assert huge[NAMES.index("p50")] == largest


def test_histogram_bins_are_half_octaves():
    """Bin b >= 1 of a normal |x| covers [2^((b - 1 + HIST_OFFSET) / 2), 2^((b + HIST_OFFSET) / 2));
    subnormals (one exponent, below 2^-126) share the first two bins."""
    normal = np.float32([1.0, 1.4142134, 1.4142137, 2.0, -0.75, np.finfo(np.float32).tiny, 3e38])
    _, hist = chunked(np.concatenate([normal, np.float32([2.0**-149, 2.0**-127])]), reduction.CHUNK)
    expected = np.zeros(metadata.HIST_BINS, np.int64)
    for value in np.abs(normal.astype(np.float64)):
        expected[int(np.floor(2 * np.log2(value))) - metadata.HIST_OFFSET + 1] += 1
    expected[1] += 1  # 2^-149: mantissa below sqrt(2)'s
    expected[2] += 1  # 2^-127: mantissa 0x400000, above
    np.testing.assert_array_equal(hist, expected)

"""Reductions that run on the device, inside the compiled train step.

A logged step turns each watched variable's elementwise metric (|Δw|, the
effective learning rate, ...) into a handful of numbers: exact min, max,
mean and rms, seven quantiles and a half-octave histogram.  Nothing is
sorted: quantiles come from a fine histogram built on the float's bit
pattern (64 linear bins per octave), so the cost is two passes of integer
ops and one bincount per metric, and a quantile is within 0.8% of the
numpy value (linear interpolation between order statistics).
"""

import tensorflow as tf

from tb_stepsize import metadata

_INF_BITS = 0x7F800000
_SQRT2_MANTISSA = 0x3504F3  # mantissa bits of float32(sqrt(2))
_FINE_SHIFT = 17  # keep the exponent and the top 6 mantissa bits
_FINE_FINITE = (_INF_BITS >> _FINE_SHIFT) + 1  # fine bins 0..16320 hold finite values
_FINE_BINS = (0x7FFFFFFF >> _FINE_SHIFT) + 2
_QUANTILE_QS = tf.constant([q for _, q in metadata.QUANTILES], tf.float64)

# Columns computed here; zero_fraction and nonfinite come from the histogram.
DEVICE_STATS = metadata.ELEMENT_STATS[:-2]


def _bincount(indices, size):
    """Counts of each value in `indices` (all in [0, size)), with a static size for XLA."""
    return tf.raw_ops.DenseBincount(
        input=indices, size=size, weights=tf.zeros([0], tf.int32), binary_output=False
    )


def _fine_bin_value(b):
    """Midpoint of fine bin `b` (0 is exact zero)."""
    lo = tf.bitcast(tf.bitwise.left_shift(tf.maximum(b - 1, 0), _FINE_SHIFT), tf.float32)
    hi = tf.bitcast(tf.bitwise.left_shift(b, _FINE_SHIFT), tf.float32)
    return tf.where(b == 0, 0.0, lo + (hi - lo) * 0.5)


def elementwise_stats(x):
    """Statistics of a non-negative float32 tensor `x`.

    Returns `(stats, hist)`: float32 `[len(DEVICE_STATS)]` over the finite
    elements (NaN where there are none) and int32 `[HIST_BINS]` counts.
    """
    bits = tf.bitwise.bitwise_and(tf.bitcast(tf.reshape(x, [-1]), tf.int32), 0x7FFFFFFF)
    finite = bits < _INF_BITS
    fine = _bincount(tf.where(bits == 0, 0, tf.bitwise.right_shift(bits, _FINE_SHIFT) + 1), _FINE_BINS)
    cum = tf.cumsum(fine[:_FINE_FINITE])
    n = cum[-1]
    n_f = tf.cast(n, tf.float32)

    min_v = tf.bitcast(tf.reduce_min(tf.where(finite, bits, _INF_BITS)), tf.float32)
    max_v = tf.bitcast(tf.reduce_max(tf.where(finite, bits, 0)), tf.float32)
    xf = tf.bitcast(tf.where(finite, bits, 0), tf.float32)
    mean = tf.reduce_sum(xf) / n_f
    rms = tf.sqrt(tf.reduce_sum(tf.square(xf)) / n_f)

    pos = _QUANTILE_QS * tf.cast(tf.maximum(n - 1, 0), tf.float64)
    lo_rank, hi_rank = tf.floor(pos), tf.math.ceil(pos)
    ranks = tf.cast(tf.concat([lo_rank, hi_rank], 0), tf.int32)
    # Bin of the element of rank r = number of bins whose cumulative count <= r.
    bins = tf.reduce_sum(tf.cast(cum[tf.newaxis, :] <= ranks[:, tf.newaxis], tf.int32), 1)
    values = tf.clip_by_value(_fine_bin_value(bins), min_v, max_v)
    k = len(metadata.QUANTILES)
    frac = tf.cast(pos - lo_rank, tf.float32)
    quantiles = values[:k] + frac * (values[k:] - values[:k])

    stats = tf.concat([[min_v], quantiles, [max_v, mean, rms]], 0)
    stats = tf.where(n > 0, stats, float("nan"))

    exponent = tf.bitwise.right_shift(bits, 23)
    upper_half = tf.cast(tf.bitwise.bitwise_and(bits, 0x7FFFFF) >= _SQRT2_MANTISSA, tf.int32)
    hist = _bincount(tf.where(bits == 0, 0, 1 + 2 * exponent + upper_half), metadata.HIST_BINS)
    return stats, hist


def rms(x):
    return tf.sqrt(tf.reduce_mean(tf.square(tf.cast(x, tf.float32))))

"""The `stats_kernel` / `update_stats` adapter for TensorFlow tensors, inside `tf.function`s
compiled with XLA (the Keras TensorFlow backend's reduction, `reduction.Reducer`).

TensorFlow has no bit-shift operators on tensors and no bool arithmetic, which
is why the kernel asks the adapter for both.
"""

import tensorflow as tf

_DTYPES = {"int32": tf.int32, "float32": tf.float32, "float64": tf.float64, "bool": tf.bool}


class TFOps:
    def abs_bits(self, x):
        """Bit patterns of |x| as int32 (order-preserving for non-negative floats)."""
        return tf.bitwise.bitwise_and(tf.bitcast(tf.reshape(tf.cast(x, tf.float32), [-1]), tf.int32), 0x7FFFFFFF)

    def float_of_bits(self, bits):
        return tf.bitcast(bits, tf.float32)

    def float32(self, x):
        x = tf.cast(x, tf.float32)
        return x if x.shape.rank == 1 else tf.reshape(x, [-1])

    def right_shift(self, x, n):
        return tf.bitwise.right_shift(x, n)

    def left_shift(self, x, n):
        return tf.bitwise.left_shift(x, n)

    def bit_and(self, x, mask):
        return tf.bitwise.bitwise_and(x, mask)

    def bit_or(self, x, y):
        return tf.bitwise.bitwise_or(x, y)

    def where(self, condition, a, b):
        return tf.where(condition, a, b)

    def full(self, shape, value, dtype):
        return tf.fill(shape, tf.constant(value, _DTYPES[dtype]))

    def constant(self, values, dtype):
        return tf.constant(values, _DTYPES[dtype])

    def arange(self, n):
        return tf.range(n, dtype=tf.int32)

    def cast(self, x, dtype):
        return tf.cast(x, _DTYPES[dtype])

    def reshape(self, x, shape):
        return tf.reshape(x, shape)

    def stack(self, xs, axis):
        return tf.stack(xs, axis)

    def concat(self, xs, axis):
        return tf.concat(xs, axis)

    def cumsum(self, x, axis):
        return tf.cumsum(x, axis)

    def sum(self, x, axis):
        return tf.reduce_sum(x, axis)

    def argmax(self, x, axis):
        return tf.argmax(tf.cast(x, tf.int32), axis, output_type=tf.int32)

    def min(self, x):
        return tf.reduce_min(x)

    def max(self, x):
        return tf.reduce_max(x)

    def minimum(self, a, b):
        return tf.minimum(a, b)

    def maximum(self, a, b):
        return tf.maximum(a, b)

    def sqrt(self, x):
        return tf.sqrt(x)

    def accurate_sum(self, x):
        """float32 sum accumulated in float64: XLA on CPU adds a chunk's elements
        in order, which in float32 loses ~1e-4 over a quarter million of them."""
        return tf.cast(tf.reduce_sum(tf.cast(x, tf.float64)), tf.float32)

    def bincount(self, indices, size):
        """Counts with a static size, as XLA needs."""
        return tf.raw_ops.DenseBincount(input=indices, size=size, weights=tf.zeros([0], tf.int32), binary_output=False)

    def segment_max(self, data, segment_ids, segments):
        return tf.math.unsorted_segment_max(data, segment_ids, segments)

    def segment_sum(self, data, segment_ids, segments):
        return tf.math.unsorted_segment_sum(data, segment_ids, segments)

    def take(self, table, indices):
        return tf.gather(table, indices)

    def gather_rows(self, params, indices):
        """`params[g, indices[g, k], ...]` for every row g: `[G, K, ...]`."""
        return tf.gather(params, indices, batch_dims=1)


OPS = TFOps()

"""The `stats_kernel` / `update_stats` adapter for numpy arrays (on the host).

Used where statistics are computed on the host, and by the tests to run the
one algorithm without a framework.  Integer outputs are int32, as on devices.
`ArrayApiOps` is written against a numpy-compatible module `xp`, so the JAX
adapter (`ops_jax`, `xp = jax.numpy`) only replaces what JAX does differently;
the bit operators are Python's, which numpy, JAX and torch arrays all have.
"""

import numpy as np


class OperatorBitOps:
    """Bit shifts and masks by Python's operators (TensorFlow's tensors lack them)."""

    def right_shift(self, x, n):
        return x >> n

    def left_shift(self, x, n):
        return x << n

    def bit_and(self, x, mask):
        return x & mask

    def bit_or(self, x, y):
        return x | y


class ArrayApiOps(OperatorBitOps):
    """The adapter for a module with numpy's API (`xp`)."""

    xp = np

    def abs_bits(self, x):
        """Bit patterns of |x| as int32 (order-preserving for non-negative floats)."""
        return self.xp.asarray(x, self.xp.float32).reshape(-1).view(self.xp.int32) & 0x7FFFFFFF

    def float_of_bits(self, bits):
        return self.xp.asarray(bits, self.xp.int32).view(self.xp.float32)

    def float32(self, x):
        return self.xp.asarray(x, self.xp.float32).reshape(-1)

    def where(self, condition, a, b):
        return self.xp.where(condition, a, b)

    def full(self, shape, value, dtype):
        return self.xp.full(shape, value, dtype)

    def constant(self, values, dtype):
        return self.xp.asarray(values, dtype)

    def arange(self, n):
        return self.xp.arange(n, dtype=self.xp.int32)

    def cast(self, x, dtype):
        return self.xp.asarray(x).astype(dtype)

    def reshape(self, x, shape):
        return self.xp.reshape(x, shape)

    def stack(self, xs, axis):
        return self.xp.stack(xs, axis)

    def concat(self, xs, axis):
        return self.xp.concatenate(xs, axis)

    def cumsum(self, x, axis):
        return self.xp.cumsum(x, axis, dtype=x.dtype)

    def sum(self, x, axis):
        return self.xp.sum(x, axis, dtype=x.dtype)

    def argmax(self, x, axis):
        return self.xp.argmax(x, axis).astype(self.xp.int32)

    def min(self, x):
        return self.xp.min(x, initial=0x7F800000)

    def max(self, x):
        return self.xp.max(x, initial=0)

    def minimum(self, a, b):
        return self.xp.minimum(a, b)

    def maximum(self, a, b):
        return self.xp.maximum(a, b)

    def sqrt(self, x):
        return self.xp.sqrt(x)

    def take(self, table, indices):
        return table[indices]

    def gather_rows(self, params, indices):
        """`params[g, indices[g, k], ...]` for every row g: `[G, K, ...]`."""
        return params[self.xp.arange(params.shape[0])[:, None], indices]


class NumpyOps(ArrayApiOps):
    def accurate_sum(self, x):
        """float32 sum of a float32 array, accumulated in float64."""
        return np.float32(np.sum(x, dtype=np.float64))

    def bincount(self, indices, size):
        return np.bincount(indices, minlength=size).astype(np.int32)

    def segment_max(self, data, segment_ids, segments):
        out = np.full((segments,) + data.shape[1:], np.iinfo(data.dtype).min if data.dtype.kind == "i" else -np.inf, data.dtype)
        np.maximum.at(out, segment_ids, data)
        return out

    def segment_sum(self, data, segment_ids, segments):
        out = np.zeros((segments,) + data.shape[1:], np.float64)
        np.add.at(out, segment_ids, data)
        return out.astype(data.dtype)


OPS = NumpyOps()

"""The `stats_kernel` / `update_stats` adapter for numpy arrays (on the host).

Used where statistics are computed on the host, and by the tests to run the
one algorithm without a framework.  Integer outputs are int32, as on devices.
"""

import numpy as np


class NumpyOps:
    def abs_bits(self, x):
        """Bit patterns of |x| as int32 (order-preserving for non-negative floats)."""
        return np.asarray(x, np.float32).reshape(-1).view(np.int32) & 0x7FFFFFFF

    def float_of_bits(self, bits):
        return np.asarray(bits, np.int32).view(np.float32)

    def float32(self, x):
        return np.asarray(x, np.float32).reshape(-1)

    def where(self, condition, a, b):
        return np.where(condition, a, b)

    def full(self, shape, value, dtype):
        return np.full(shape, value, dtype)

    def constant(self, values, dtype):
        return np.asarray(values, dtype)

    def arange(self, n):
        return np.arange(n, dtype=np.int32)

    def cast(self, x, dtype):
        return np.asarray(x).astype(dtype)

    def reshape(self, x, shape):
        return np.reshape(x, shape)

    def stack(self, xs, axis):
        return np.stack(xs, axis)

    def concat(self, xs, axis):
        return np.concatenate(xs, axis)

    def cumsum(self, x, axis):
        return np.cumsum(x, axis, dtype=x.dtype)

    def sum(self, x, axis):
        return np.sum(x, axis, dtype=x.dtype)

    def any(self, x, axis):
        return np.any(x, axis)

    def argmax(self, x, axis):
        return np.argmax(x, axis).astype(np.int32)

    def min(self, x):
        return np.min(x) if x.size else np.int32(0x7F800000)

    def max(self, x):
        return np.max(x) if x.size else np.int32(0)

    def minimum(self, a, b):
        return np.minimum(a, b)

    def maximum(self, a, b):
        return np.maximum(a, b)

    def sqrt(self, x):
        return np.sqrt(x)

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

    def take(self, table, indices):
        return table[indices]

    def gather_rows(self, params, indices):
        """`params[g, indices[g, k], ...]` for every row g: `[G, K, ...]`."""
        return params[np.arange(params.shape[0])[:, None], indices]


OPS = NumpyOps()

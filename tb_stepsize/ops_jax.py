"""The `stats_kernel` / `update_stats` adapter for JAX arrays, usable inside `jax.jit`.

Public `jax.numpy` / `jax.lax` ops with static shapes only.  JAX has no
float64 unless x64 is enabled, so sums that must be accurate are taken in
blocks (pairwise), not in one float32 pass.
"""

import jax
import jax.numpy as jnp

_DTYPES = {"int32": jnp.int32, "float32": jnp.float32, "bool": jnp.bool_}
_BLOCK = 1024  # elements per partial sum of `accurate_sum`


class JaxOps:
    def abs_bits(self, x):
        """Bit patterns of |x| as int32 (order-preserving for non-negative floats)."""
        return jax.lax.bitcast_convert_type(jnp.asarray(x, jnp.float32).reshape(-1), jnp.int32) & 0x7FFFFFFF

    def float_of_bits(self, bits):
        return jax.lax.bitcast_convert_type(jnp.asarray(bits, jnp.int32), jnp.float32)

    def float32(self, x):
        return jnp.asarray(x, jnp.float32).reshape(-1)

    def where(self, condition, a, b):
        return jnp.where(condition, a, b)

    def full(self, shape, value, dtype):
        return jnp.full(shape, value, _DTYPES[dtype])

    def constant(self, values, dtype):
        return jnp.asarray(values, _DTYPES[dtype])

    def arange(self, n):
        return jnp.arange(n, dtype=jnp.int32)

    def cast(self, x, dtype):
        return jnp.asarray(x).astype(_DTYPES[dtype])

    def reshape(self, x, shape):
        return jnp.reshape(x, shape)

    def stack(self, xs, axis):
        return jnp.stack(xs, axis)

    def concat(self, xs, axis):
        return jnp.concatenate(xs, axis)

    def cumsum(self, x, axis):
        return jnp.cumsum(x, axis, dtype=x.dtype)

    def sum(self, x, axis):
        return jnp.sum(x, axis, dtype=x.dtype)

    def any(self, x, axis):
        return jnp.any(x, axis)

    def argmax(self, x, axis):
        return jnp.argmax(x, axis).astype(jnp.int32)

    def min(self, x):
        return jnp.min(x, initial=0x7F800000)

    def max(self, x):
        return jnp.max(x, initial=0)

    def minimum(self, a, b):
        return jnp.minimum(a, b)

    def maximum(self, a, b):
        return jnp.maximum(a, b)

    def sqrt(self, x):
        return jnp.sqrt(x)

    def accurate_sum(self, x):
        """float32 sum in two levels (blocks of 1024, then the block sums): a single
        float32 pass over a quarter million elements loses ~1e-4 on XLA's CPU."""
        x = jnp.reshape(x, (-1,))
        n = x.shape[0]
        if n <= _BLOCK:
            return jnp.sum(x)
        padded = jnp.pad(x, (0, -n % _BLOCK))
        return jnp.sum(jnp.sum(jnp.reshape(padded, (-1, _BLOCK)), 1))

    def bincount(self, indices, size):
        return jnp.bincount(jnp.reshape(indices, (-1,)), length=size).astype(jnp.int32)

    def segment_max(self, data, segment_ids, segments):
        return jax.ops.segment_max(data, segment_ids, num_segments=segments)

    def segment_sum(self, data, segment_ids, segments):
        return jax.ops.segment_sum(data, segment_ids, num_segments=segments)

    def take(self, table, indices):
        return jnp.take(table, indices, mode="clip")

    def gather_rows(self, params, indices):
        """`params[g, indices[g, k], ...]` for every row g: `[G, K, ...]`."""
        return params[jnp.arange(params.shape[0])[:, None], indices]


OPS = JaxOps()

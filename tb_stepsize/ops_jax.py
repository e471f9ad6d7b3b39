"""The `stats_kernel` / `update_stats` adapter for JAX arrays, usable inside `jax.jit`.

numpy's API (`ops_numpy.ArrayApiOps` with `xp = jax.numpy`) but for what JAX
does differently: bit casts through `lax`, bincounts and segment reductions
with static sizes, and sums without float64 (JAX has none unless x64 is
enabled), taken in blocks (pairwise) rather than in one float32 pass.
"""

import jax
import jax.numpy as jnp

from tb_stepsize.ops_numpy import ArrayApiOps

_BLOCK = 1024  # elements per partial sum of `accurate_sum`


class JaxOps(ArrayApiOps):
    xp = jnp

    def abs_bits(self, x):
        """Bit patterns of |x| as int32 (order-preserving for non-negative floats)."""
        return jax.lax.bitcast_convert_type(jnp.asarray(x, jnp.float32).reshape(-1), jnp.int32) & 0x7FFFFFFF

    def float_of_bits(self, bits):
        return jax.lax.bitcast_convert_type(jnp.asarray(bits, jnp.int32), jnp.float32)

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
        return jnp.take(table, indices, axis=0, mode="clip")


OPS = JaxOps()

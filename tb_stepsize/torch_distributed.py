"""Which rank records, and how per-layer partial statistics of sharded parameters combine.

* No process group, or one process: the process records.
* DDP (replicated parameters, plain tensors): after the gradient all-reduce
  every rank applies the same update to the same weights, so rank 0 records
  and the other ranks attach nothing -- the run equals a single-process
  run with the same global batch.
* FSDP2 (`fully_shard`: parameters and optimizer state are `DTensor`s
  sharded across ranks): every rank reduces its local shard
  (`DTensor.to_local()`), and the per-layer partials are combined across
  ranks exactly -- sums add, extremes take their min/max, histogram counts
  add -- so the statistics equal those of the unsharded run.  One
  collective per pass: an `all_gather` of each rank's small first-pass
  packet (combined locally: it carries sums, minima and maxima at once),
  then, once the quantile targets are known from the combined counts, an
  `all_reduce` of the second pass's counts.  Only rank 0 writes.

Other layouts (tensor parallel DTensors on some parameters only, FSDP1's
flat parameters) are recorded as FSDP2 is when their parameters are
DTensors, and as DDP otherwise.
"""

import torch
import torch.distributed as dist

try:
    from torch.distributed.tensor import DTensor
except ImportError:  # a torch build without distributed tensors
    DTensor = ()


def local(tensor):
    """The rank's own elements of a parameter or state tensor (a DTensor's local shard)."""
    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def global_shape(tensor):
    """The parameter's full shape (a DTensor's global one)."""
    return [int(d) for d in tensor.shape]


def role(params):
    """(`records`, `writes`, `sharded`): whether this rank reduces, writes the run, and combines shards."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return True, True, False
    rank0 = dist.get_rank() == 0
    sharded = any(isinstance(p, DTensor) for p in params)
    return (True if sharded else rank0), rank0, sharded


class ShardCombiner:
    """Combines the per-layer packets of every rank (FSDP2)."""

    def __init__(self, group=None):
        self._group = group
        self.collectives = 0  # calls, for the tests

    def first_pass(self, sums, lows, highs):
        """Element-wise sum of `sums`, min of `lows`, max of `highs` over ranks (one all_gather)."""
        shapes = [sums.shape, lows.shape, highs.shape]
        packet = torch.cat([sums.reshape(-1).double(), lows.reshape(-1).double(), highs.reshape(-1).double()])
        gathered = [torch.empty_like(packet) for _ in range(dist.get_world_size(self._group))]
        dist.all_gather(gathered, packet, group=self._group)
        self.collectives += 1
        stacked = torch.stack(gathered)
        a, b = sums.numel(), sums.numel() + lows.numel()
        return (
            stacked[:, :a].sum(0).reshape(shapes[0]).to(sums.dtype),
            stacked[:, a:b].amin(0).reshape(shapes[1]).to(lows.dtype),
            stacked[:, b:].amax(0).reshape(shapes[2]).to(highs.dtype),
        )

    def counts(self, counts):
        """Sum of integer `counts` over ranks (one all_reduce)."""
        out = counts.to(torch.int64).clone()
        dist.all_reduce(out, op=dist.ReduceOp.SUM, group=self._group)
        self.collectives += 1
        return out.to(counts.dtype)

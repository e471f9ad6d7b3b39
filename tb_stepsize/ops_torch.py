"""The `stats_kernel` / `update_stats` adapter for torch tensors, on their own device.

Public torch ops only, none of which copies to the host or waits for the
device: results stay tensors until a caller moves the small summaries.
"""

import torch

_DTYPES = {"int32": torch.int32, "float32": torch.float32, "float64": torch.float64, "bool": torch.bool}


class TorchOps:
    def __init__(self, device=None):
        self.device = device

    def _device_of(self, *xs):
        for x in xs:
            if isinstance(x, torch.Tensor):
                return x.device
        return self.device

    def abs_bits(self, x):
        """Bit patterns of |x| as int32 (order-preserving for non-negative floats)."""
        return x.detach().to(torch.float32).reshape(-1).view(torch.int32) & 0x7FFFFFFF

    def float_of_bits(self, bits):
        return bits.contiguous().view(torch.float32)

    def float32(self, x):
        return x.detach().to(torch.float32).reshape(-1)

    def where(self, condition, a, b):
        if not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor):
            a = torch.tensor(a, device=condition.device)
        return torch.where(condition, a, b)

    def full(self, shape, value, dtype):
        return torch.full(shape, value, dtype=_DTYPES[dtype], device=self.device)

    def constant(self, values, dtype):
        return torch.tensor(values, dtype=_DTYPES[dtype], device=self.device)

    def arange(self, n):
        return torch.arange(n, dtype=torch.int32, device=self.device)

    def cast(self, x, dtype):
        return x.to(_DTYPES[dtype])

    def reshape(self, x, shape):
        return torch.reshape(x, shape)

    def stack(self, xs, axis):
        return torch.stack(xs, axis)

    def concat(self, xs, axis):
        return torch.cat(xs, axis)

    def cumsum(self, x, axis):
        return torch.cumsum(x, axis, dtype=x.dtype)

    def sum(self, x, axis):
        return torch.sum(x, axis, dtype=x.dtype)

    def any(self, x, axis):
        return torch.any(x, axis)

    def argmax(self, x, axis):
        return torch.argmax(x.to(torch.int32), axis).to(torch.int32)

    def min(self, x):
        return torch.amin(x) if x.numel() else torch.tensor(0x7F800000, dtype=x.dtype, device=x.device)

    def max(self, x):
        return torch.amax(x) if x.numel() else torch.tensor(0, dtype=x.dtype, device=x.device)

    def minimum(self, a, b):
        return torch.minimum(a, b) if isinstance(b, torch.Tensor) else torch.clamp(a, max=b)

    def maximum(self, a, b):
        return torch.maximum(a, b) if isinstance(b, torch.Tensor) else torch.clamp(a, min=b)

    def sqrt(self, x):
        return torch.sqrt(x)

    def accurate_sum(self, x):
        """float32 sum of a float32 tensor, accumulated in float64."""
        return torch.sum(x, dtype=torch.float64).to(torch.float32)

    def bincount(self, indices, size):
        return torch.bincount(indices.reshape(-1), minlength=size).to(torch.int32)

    def segment_max(self, data, segment_ids, segments):
        lowest = torch.iinfo(data.dtype).min if not data.dtype.is_floating_point else float("-inf")
        out = torch.full((segments,) + tuple(data.shape[1:]), lowest, dtype=data.dtype, device=data.device)
        index = segment_ids.to(torch.int64).reshape((-1,) + (1,) * (data.dim() - 1)).expand_as(data)
        return out.scatter_reduce(0, index, data, "amax", include_self=True)

    def segment_sum(self, data, segment_ids, segments):
        out = torch.zeros((segments,) + tuple(data.shape[1:]), dtype=torch.float64, device=data.device)
        return out.index_add(0, segment_ids.to(torch.int64), data.to(torch.float64)).to(data.dtype)

    def take(self, table, indices):
        return table[indices.to(torch.int64)]

    def gather_rows(self, params, indices):
        """`params[g, indices[g, k], ...]` for every row g: `[G, K, ...]`."""
        rows = torch.arange(params.shape[0], device=params.device)[:, None]
        return params[rows, indices.to(torch.int64)]


OPS = TorchOps()

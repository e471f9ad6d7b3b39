"""Reduces logged torch updates to per-layer summaries on the parameters' device.

`torch_capture` hands over `(Watched, old)` pairs after a logged step;
this module builds each parameter's flat float32 `(old, new, parts, decay)`
(the formula's parts from `torch_rules`, read from the optimizer's state)
and reduces it with the core (`update_stats`, `stats_kernel`) through
`ops_torch` -- torch ops on the tensors' device, nothing sent to the host:

* small parameters together, concatenated with segment ids (one op
  sequence for all of them);
* a big parameter `CHUNK` elements at a time (chunk-sized temporaries);
* sharded parameters (FSDP2, `combiner` given): every layer's first pass on
  the local shard, one combination across ranks, the quantile targets from
  the combined counts, the second pass, one more combination, then the
  statistics -- so they equal the unsharded run's.

`Result` is one logged update's `[L, ...]` rows, still on the device;
`to_host` moves many of them in one copy.
"""

import torch

from tb_stepsize import metadata, stats_kernel, update_stats
from tb_stepsize.ops_torch import TorchOps
from tb_stepsize.torch_capture import SMALL_MAX
from tb_stepsize.torch_distributed import local

CHUNK = 1 << 20  # elements of a big parameter reduced at once


_OPS = {}


def ops_on(device):
    """The `ops_torch` adapter creating its constants on `device`."""
    if device not in _OPS:
        _OPS[device] = TorchOps(device)
    return _OPS[device]


class Result:
    """One logged update on the device: `stats[m]` `[L, S]`, `hists[m]` `[L, HIST_BINS]`.

    `skipped` and `count` (device scalars or None) come from a step that got
    GradScaler's `found_inf` (fused optimizers): a step with infinite
    gradients did not update, and the optimizer's own count numbers the steps.
    """

    def __init__(self, step, stats, hists, lr, loss, skipped=None, count=None):
        self.step, self.stats, self.hists, self.lr, self.loss = step, stats, hists, lr, loss
        self.skipped, self.count = skipped, count

    def scalars(self):
        return (self.lr, self.loss, self.skipped, self.count)

    def tensors(self):
        scalars = [torch.as_tensor(x, dtype=torch.float64).reshape(1) for x in self.scalars() if x is not None]
        return [*self.stats.values(), *self.hists.values(), *scalars]


def to_host(results):
    """`[(step, stats, hists, lr, loss)]` as numpy, from one device-to-host copy of everything
    (skipped steps left out)."""
    tensors = [t.detach() for r in results for t in r.tensors()]
    device = tensors[0].device
    flat = torch.cat([t.to(device=device, dtype=torch.float64).reshape(-1) for t in tensors]).cpu().numpy()
    out, start = [], 0

    def take(like, dtype):
        nonlocal start
        piece = flat[start : start + like.numel()].reshape(tuple(like.shape)).astype(dtype)
        start += like.numel()
        return piece

    for r in results:
        stats = {m: take(s, "float32") for m, s in r.stats.items()}
        hists = {m: take(h, "int64") for m, h in r.hists.items()}
        lr, loss, skipped, count = (float(take(torch.empty(1), "float64")[0]) if x is not None else None for x in r.scalars())
        if not skipped:
            out.append((r.step if count is None else int(count), stats, hists, lr, loss))
    return out


class Reducer:
    """Reduces the watched parameters of `optimizer` (rule: `torch_rules.Rule` or None)."""

    def __init__(self, optimizer, watched, rule, metrics, combiner=None):
        self._opt = optimizer
        self._rule = rule
        self._rows = len(watched)
        self._wanted = tuple(metrics)
        self._elementwise = [m for m in metrics if metadata.METRICS[m].elementwise]
        self._combiner = combiner
        self._open = []  # (rows, stats, hists, scalars) of the logged step being reduced

    def _piece(self, w, old):
        """`piece(start, size)` -> the flat `(old, new, parts, None)` of that slice of `w`.

        old and new are float32, so are the formula's parts -- in float64
        when the rule says the update's terms can cancel
        (`Rule.needs_float64`; a decoupled decay is folded into `update`),
        so that a small intended step is still right to float32 rounding.
        """
        flat = local(w.param).detach().reshape(-1)
        state = self._opt.state.get(w.param, {})
        dtype = torch.float64 if self._rule is not None and self._rule.needs_float64(w.group) else torch.float32

        def piece(start, size):
            span = slice(start, start + size)
            o, new = old[span], flat[span].to(torch.float32)
            if self._rule is None:
                return o, new, None, None

            def get(name):
                if name == "old":
                    return o.to(dtype)
                tensor = w.param.grad if name == "grad" else state[name]
                return local(tensor).detach().reshape(-1)[span].to(dtype)

            parts, decay = self._rule.parts(w.group, state, get)
            if decay is not None:
                parts["update"] = parts["update"] + get("old") * decay
            return o, new, parts, None

        return piece

    def add(self, logged, pairs):
        """Reduce `(Watched, old)` pairs of logged update `logged`."""
        if self._combiner is not None:
            self._open.append(self._combined(pairs))
            return
        ops = ops_on(pairs[0][1].device)
        small = [(w, old) for w, old in pairs if w.numel() <= SMALL_MAX]
        if small:
            self._open.append(([w.row for w, _ in small], *self._together(ops, small)))
        for w, old in pairs:
            if w.numel() > SMALL_MAX:  # one pass over each chunk (the formula computed once)
                out = update_stats.reduce_chunked(ops, w.numel(), self._piece(w, old), CHUNK, self._wanted)
                self._open.append(([w.row], *out))

    def _together(self, ops, pairs):
        pieces = [self._piece(w, old)(0, w.numel()) for w, old in pairs]
        sizes = [w.numel() for w, _ in pairs]
        device = pieces[0][1].device
        old = torch.cat([p[0] for p in pieces])
        new = torch.cat([p[1] for p in pieces])
        parts = None
        if self._rule is not None:
            parts = {k: torch.cat([p[2][k].reshape(-1) for p in pieces]) for k in pieces[0][2]}
        # output_size: no device-to-host read of the total (a sync on CUDA)
        ids = torch.repeat_interleave(
            torch.arange(len(pairs), device=device, dtype=torch.int32), torch.tensor(sizes, device=device), output_size=sum(sizes)
        )
        counts = torch.tensor(sizes, dtype=torch.float32, device=device)
        return update_stats.reduce_update(ops, old, new, parts, None, ids, len(pairs), counts, self._wanted)

    def _combined(self, pairs):
        """All layers' statistics over every rank's shard (two collectives)."""
        g = len(pairs)
        device = pairs[0][1].device
        ops = ops_on(device)
        pieces = [self._piece(w, old) for w, old in pairs]
        spans = [[(s, min(CHUNK, w.numel() - s)) for s in range(0, w.numel(), CHUNK)] for w, _ in pairs]
        partials, sums = [], []
        for piece, chunks in zip(pieces, spans):
            first, layer_sums = None, None
            for start, size in chunks:
                metrics, terms = update_stats.update_terms(ops, *piece(start, size), wanted=self._wanted)
                of = {m: stats_kernel.Partials.of(ops, metrics[m]) for m in self._elementwise}
                first = of if first is None else {m: first[m].merge(of[m], ops) for m in of}
                chunk_sums = {k: torch.sum(v, dtype=torch.float64) for k, v in terms.items()}
                layer_sums = chunk_sums if layer_sums is None else {k: layer_sums[k] + v for k, v in chunk_sums.items()}
            partials.append(first or {m: stats_kernel.Partials.empty(ops, 1) for m in self._elementwise})
            sums.append(layer_sums)
        keys = self._term_keys()
        sums = torch.stack([torch.stack([s[k] if s else torch.zeros((), dtype=torch.float64, device=device) for k in keys]) for s in sums])
        stacked = {m: [torch.cat([p[m].as_tuple()[i] for p in partials]) for i in range(5)] for m in self._elementwise}
        packed = torch.cat([sums.reshape(-1)] + [torch.cat([f[2], f[3], f[4].reshape(-1).double()]) for f in (stacked[m] for m in self._elementwise)])
        lows = torch.cat([stacked[m][0] for m in self._elementwise])
        highs = torch.cat([stacked[m][1] for m in self._elementwise])
        packed, lows, highs = self._combiner.first_pass(packed, lows, highs)
        sums = {k: sums_col.to(torch.float32) for k, sums_col in zip(keys, packed[: g * len(keys)].reshape(g, len(keys)).T)}
        combined, offset = {}, g * len(keys)
        for i, m in enumerate(self._elementwise):
            width = 2 * g + g * metadata.HIST_BINS
            block = packed[offset : offset + width]
            offset += width
            combined[m] = stats_kernel.Partials(
                lows[i * g : (i + 1) * g], highs[i * g : (i + 1) * g], block[:g].float(), block[g : 2 * g].float(),
                block[2 * g :].reshape(g, metadata.HIST_BINS).to(torch.int32),
            )
        targets = {m: stats_kernel.QuantileTargets(ops, p) for m, p in combined.items()}
        fine = {m: torch.zeros((g, stats_kernel.RANKS, 64), dtype=torch.int32, device=device) for m in self._elementwise}
        for row, (piece, chunks) in enumerate(zip(pieces, spans)):
            for start, size in chunks:
                metrics, _ = update_stats.update_terms(ops, *piece(start, size), wanted=self._wanted)
                ids = torch.full((size,), row, dtype=torch.int32, device=device)
                for m in fine:
                    fine[m] = fine[m] + stats_kernel.fine_counts(ops, metrics[m], targets[m].table, ids, g)
        counts = self._combiner.counts(torch.stack([fine[m] for m in self._elementwise]))
        stats = {m: stats_kernel.finish(ops, combined[m], targets[m], counts[i]) for i, m in enumerate(self._elementwise)}
        sizes = torch.tensor([float(w.param.numel()) for w, _ in pairs], device=device)
        scalars = update_stats.layer_scalars(ops, sums, sizes, self._wanted)
        return [w.row for w, _ in pairs], stats, {m: p.hist for m, p in combined.items()}, scalars

    def _term_keys(self):
        return ("delta_sq", "old_sq", "lost", "norm_sq") if self._rule is not None else ("delta_sq", "old_sq")

    def finish(self, logged):
        """The logged update's `Result`: every layer's rows (NaN / zero for those not updated)."""
        parts, self._open = self._open, []
        device = parts[0][1]["step"].device if parts else torch.device("cpu")
        stats, hists = {}, {}
        for m in self._wanted:
            elementwise = metadata.METRICS[m].elementwise
            width = len(stats_kernel.DEVICE_STATS) if elementwise else 1
            stats[m] = torch.full((self._rows, width), float("nan"), device=device)
            if elementwise:
                hists[m] = torch.zeros((self._rows, metadata.HIST_BINS), dtype=torch.int32, device=device)
            for rows, s, h, c in parts:
                index = torch.tensor(rows, device=device)
                stats[m][index] = (s[m] if elementwise else c[m].reshape(-1, 1)).to(torch.float32)
                if elementwise:
                    hists[m][index] = h[m].to(torch.int32)
        return Result(logged.t, stats, hists, logged.lr, logged.loss, logged.skipped, logged.count)

"""`StepSizeMonitor` for plain PyTorch: per-layer step sizes of a `torch.optim` optimizer.

    import torch, tb_stepsize.torch as tbs
    with tbs.StepSizeMonitor("logs/run1", opt, model=model, every_n_steps=10) as monitor:
        for x, y in loader:
            loss = loss_fn(model(x), y); loss.backward(); opt.step(); opt.zero_grad()
            monitor.after_step(loss=loss)      # optional: writes the loss beside the steps

The optimizer's step hooks (`torch_capture`) read each watched parameter
around a logged update; `torch_reduce` reduces the update on the
parameters' device with torch ops (the core's statistics kernel through
`ops_torch`), results stay there, and the host pulls the small per-layer
summaries only when `max_pending` logged updates wait or `flush_secs`
have passed (`step_output.StepOutput` writes them, with the learning rate
and the loss, and feeds the training-time findings).  Unlogged steps cost
no torch op and no sync.  Under DDP rank 0 records; under FSDP2 every rank
reduces its shard and the partials are combined (`torch_distributed`).
Imports no TensorFlow.
"""

import atexit
import time
import warnings

import torch

from tb_stepsize import live_findings, metadata, monitor_base, torch_distributed, torch_reduce, torch_rules, update_stats
from tb_stepsize.monitor_base import MonitorError
from tb_stepsize.step_output import StepOutput
from tb_stepsize.summary import StepWriter
from tb_stepsize.torch_capture import StepHooks, Watched, per_parameter

__all__ = ["StepSizeMonitor", "MonitorError"]


def _unwrapped(model):
    """The module whose parameter names the user wrote: DDP's `.module`, a compiled model's original."""
    model = getattr(model, "module", model) if isinstance(model, torch.nn.parallel.DistributedDataParallel) else model
    return getattr(model, "_orig_mod", model)  # torch.compile's OptimizedModule keeps the module there


def named_parameters(optimizer, model=None):
    """`[(name, param, group)]` of the optimizer's parameters: in `model`'s order with its
    names, then any the model does not have as `group{i}/param{j}`."""
    where = {}
    for i, group in enumerate(optimizer.param_groups):
        for j, p in enumerate(group["params"]):
            where.setdefault(id(p), (f"group{i}/param{j}", p, group))
    named = []
    if model is not None:
        for name, p in _unwrapped(model).named_parameters():
            if id(p) in where:
                named.append((name, p, where.pop(id(p))[2]))
    return named + list(where.values())


def _unreadable_warning(optimizer):
    """The warning for an optimizer whose state the formulas cannot read, or None."""
    cls = type(optimizer)
    if torch_rules.rule_for(optimizer) is not None:
        return None
    if cls.__module__.startswith("torch.optim") and not torch_rules.is_adam_family(optimizer):
        return None  # SGD, RMSprop, ...: step and update_ratio, as documented
    return (
        f"tb_stepsize: cannot read the state of {cls.__module__}.{cls.__qualname__} "
        "(not a torch.optim Adam-family class); recording `step` and `update_ratio` only."
    )


class StepSizeMonitor(monitor_base.Lifecycle):
    """Records per-layer step sizes of the updates `optimizer` applies.

    Args:
      log_dir: directory of the run's event files (created if missing).
      optimizer: a `torch.optim.Optimizer` (any class: the Adam family gets
        every metric, the others `step` and `update_ratio`).
      model: the `nn.Module` whose `named_parameters()` name the layers
        (model order); without it they are `group{i}/param{j}`.
      every_n_steps: log the first update and every N-th after it.
      include, exclude: regular expressions searched in the layer names.
      metrics: the metrics to record (default: all the optimizer allows;
        `step` always).
      histograms: also write half-octave histograms.
      max_pending: logged updates kept on the device between two pulls.
      flush_secs: logged updates reach the event file at most this long
        after they happened (and at `flush()` and `close()`).
      on_error: "warn" (one warning, training goes on unmonitored) or "raise".
      on_finding, stop_on: as the Keras monitor's (`stop_requested`).

    Use it as a context manager, or call `close()` (also run at exit).
    """

    def __init__(
        self,
        log_dir,
        optimizer,
        model=None,
        *,
        every_n_steps=1,
        include=None,
        exclude=None,
        metrics=None,
        histograms=True,
        max_pending=64,
        flush_secs=5.0,
        on_error="warn",
        on_finding=None,
        stop_on=(),
    ):
        self._configure(every_n_steps, metrics, flush_secs, on_error, on_finding, stop_on)
        self._max_pending = max(1, int(max_pending))
        self._hooks = self._output = self._live = None
        self._pending = []  # logged updates on the device, not pulled yet
        self._peak_snapshot_bytes = self._steps = 0
        self._attach_guarded(log_dir, optimizer, model, include, exclude, metrics, histograms)

    def _release(self):
        hooks, self._hooks = self._hooks, None
        if hooks is not None:
            hooks.remove()
            self._peak_snapshot_bytes, self._steps = hooks.peak_snapshot_bytes, hooks.t

    def _attach(self, log_dir, optimizer, model, include, exclude, metrics, histograms):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise MonitorError(f"{type(optimizer).__name__} is not a torch.optim.Optimizer")
        named = named_parameters(optimizer, model)
        records, writes, sharded = torch_distributed.role([p for _, p, _ in named])
        if not records:
            return  # DDP: rank 0 records the run
        chosen = monitor_base.select([(name, (p, g)) for name, p, g in named if p.requires_grad], include, exclude)
        if not chosen:
            raise MonitorError(
                "no parameters to watch" + (f" (include={include!r}, exclude={exclude!r})" if include or exclude else "")
            )
        if writes:
            monitor_base.check_writable(log_dir)
        problem = _unreadable_warning(optimizer)
        if problem:
            warnings.warn(problem, stacklevel=3)
        rule = torch_rules.rule_for(optimizer)
        watched = [Watched(row, name, p, g) for row, (name, (p, g)) in enumerate(chosen)]
        self.layers = [
            {"path": w.name, "shape": torch_distributed.global_shape(w.param), "dtype": str(w.param.dtype).replace("torch.", "")}
            for w in watched
        ]
        allowed = update_stats.available(rule is not None)
        self.metrics = [m for m in metadata.METRICS if m in allowed and (metrics is None or m in metrics or m == "step")]
        combiner = torch_distributed.ShardCombiner() if sharded else None
        self._reducer = torch_reduce.Reducer(optimizer, watched, rule, self.metrics, combiner)
        if writes:
            self._writer = StepWriter(log_dir, self.layers, self.metrics, type(optimizer).__name__, histograms=histograms)
            self._live = live_findings.LiveFindings(self.layers, self.metrics, **self._findings_args)
            self._output = StepOutput(self._writer, self._live, self.metrics)
        self._last_flush = time.monotonic()
        self._hooks = StepHooks(
            optimizer, watched, self.every_n_steps, _steps_so_far(optimizer, watched), per_parameter(optimizer) and not sharded,
            self._reducer.add, self._logged, self._hook_failed,
        )
        atexit.register(self.close)
        self.enabled = True

    def _hook_failed(self, error):
        self._fail(f"reducing a logged update failed: {type(error).__name__}: {error}")

    # ------------------------------------------------------------- host side
    def _logged(self, logged):
        """A logged update is reduced (on the device): keep it; pull when due."""
        self._pending.append(self._reducer.finish(logged))
        if len(self._pending) >= self._max_pending or time.monotonic() - self._last_flush >= self._flush_secs:
            self.collect()

    @property
    def step(self):
        """Updates so far (`optimizer.step()` calls that ran)."""
        return self._hooks.t if self._hooks is not None else self._steps

    def after_step(self, loss=None):
        """Optional, after `optimizer.step()`: writes `loss` (a number or a tensor, read only
        when pulled) beside the step just taken if it is logged; pulls when due."""
        if not self.enabled:
            return
        if loss is not None and self._pending and self._pending[-1].step == self.step:
            self._pending[-1].loss = loss
        if self._pending and time.monotonic() - self._last_flush >= self._flush_secs:
            self.collect()

    def _collect(self, wait=False):  # every pull waits for the device
        pending, self._pending = self._pending, []
        if not pending:
            return
        self.host_reads += 1
        if self._output is None:
            return  # an FSDP2 rank other than 0: rank 0 writes the same numbers
        for step, stats, hists, lr, loss in torch_reduce.to_host(pending):
            self._output.write(step, stats, hists, learning_rate=lr, loss=loss)
        self.logged_steps += len(pending)
        if time.monotonic() - self._last_flush >= self._flush_secs:
            self._flush_file()

    def _flush_file(self):
        if self._writer is not None:
            self._writer.flush()
        self._last_flush = time.monotonic()

    @property
    def peak_snapshot_bytes(self):
        """The most bytes of parameter copies alive at once at a logged step."""
        return self._hooks.peak_snapshot_bytes if self._hooks is not None else self._peak_snapshot_bytes


def _steps_so_far(optimizer, watched):
    """Updates the optimizer made before the monitor (a resumed run): the first state's `step`
    (read once, at attach)."""
    for w in watched:
        step = optimizer.state.get(w.param, {}).get("step")
        if step is not None:
            return int(float(step))
    return 0

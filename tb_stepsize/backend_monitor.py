"""The monitor on Keras' JAX and torch backends: attach-time checks, set-up,
when to write, lifecycle.  No TensorFlow, no JAX, no torch here.

On those backends a logged update leaves the device as small finished
per-group summaries (`update_groups`), so there is no ring buffer to pull:
the backend's *capture* (`keras_jax.JaxCapture`, `keras_torch.TorchCapture`)
hooks the optimizer, reduces each logged update on the device and hands the
results over -- JAX from a host callback of the compiled step, torch as
device tensors copied to the host when they are taken.  This class decides
when to take them (`after_steps`: every `flush_secs`, or when
`max_pending` logged updates wait) and writes them with the core's
`StepOutput`, with the loss the caller reported and findings during
training, exactly as the TensorFlow monitor (`monitor.StepSizeMonitor`)
writes its buffer.  Its public API is that monitor's.
"""

import atexit
import time
import warnings
import weakref

import keras

from tb_stepsize import keras_internals, live_findings, monitor_base, optimizer_rules, update_groups
from tb_stepsize.monitor_base import MonitorError
from tb_stepsize.step_output import StepOutput
from tb_stepsize.summary import StepWriter

MAX_PENDING = 64  # logged updates waiting on the host (torch: on the device) before they are written


class BackendMonitor(monitor_base.Lifecycle):
    """Records per-layer step sizes of the updates `optimizer` applies (JAX and torch backends).

    Arguments as `monitor.StepSizeMonitor`'s.  Subclasses name their
    capture (`_capture_class`); on any other backend the attach check fails
    with one clear message and training goes on unmonitored.
    """

    _capture_class = None

    def __init__(
        self,
        log_dir,
        optimizer,
        variables=None,
        *,
        every_n_steps=1,
        include=None,
        exclude=None,
        metrics=None,
        histograms=True,
        max_pending=None,
        steps_per_call=1,
        flush_secs=5.0,
        on_error="warn",
        on_finding=None,
        stop_on=(),
    ):
        self._configure(every_n_steps, metrics, flush_secs, on_error, on_finding, stop_on)
        self._max_pending = int(max_pending or MAX_PENDING)
        self._paused = False
        self._capture = None
        self._live = None
        self._attach_guarded(log_dir, optimizer, variables, include, exclude, metrics, histograms)

    # ----------------------------------------------------------------- set-up
    def _release(self):
        """Stop recording: unhook the optimizer (`Lifecycle`)."""
        capture, self._capture = self._capture, None
        if capture is not None:
            capture.remove()

    def _attach(self, log_dir, optimizer, variables, include, exclude, metrics, histograms):
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        problem = keras_internals.attach_problem(inner, type(optimizer).__name__)
        if problem is None and self._capture_class is None:  # a backend keras_internals accepts but no module records
            problem = f"Keras backend {keras.backend.backend()!r} has no capture module"
        if problem:
            raise MonitorError(problem)  # before anything is created: nothing touches log_dir
        old_keras = keras_internals.old_keras_warning()
        if old_keras:
            warnings.warn(f"tb_stepsize: {old_keras}.", stacklevel=4)
        watched = self._watched(optimizer, inner, variables, include, exclude)
        monitor_base.check_writable(log_dir)
        previous = getattr(inner, "_tb_stepsize_monitor", None)
        if previous is not None and previous() is not None:
            previous().close()  # a monitor left behind by an interrupted fit

        self._optimizer = inner
        rule = optimizer_rules.rule_for(inner)
        if rule is None and isinstance(inner, keras.optimizers.Adam):
            warnings.warn(
                f"tb_stepsize: {type(inner).__name__} subclasses Adam but may change its "
                "update; recording `step` and `update_ratio` only.",
                stacklevel=4,
            )
        self.metrics = update_groups.chosen_metrics(rule, metrics)
        if not update_groups.needs_rule(self.metrics):
            rule = None
        self.layers = [{"path": v.path, "shape": [int(d) for d in v.shape], "dtype": str(v.dtype)} for v in watched]
        self._accumulation = int(inner.gradient_accumulation_steps or 1)
        self._calls_host = keras_internals.apply_call_count(inner)
        self._losses = {}
        self._unflushed = False
        self._last_flush = self._last_take = time.monotonic()
        self._writer = StepWriter(log_dir, self.layers, self.metrics, type(optimizer).__name__, histograms=histograms)
        self._live = live_findings.LiveFindings(self.layers, self.metrics, **self._findings_args)
        self._output = StepOutput(self._writer, self._live, self.metrics)
        self._capture = self._capture_class(inner, watched, rule, self.metrics, self.every_n_steps, self._accumulation)
        inner._tb_stepsize_monitor = weakref.ref(self)
        atexit.register(self.close)
        self.enabled = True

    @staticmethod
    def _watched(optimizer, inner, variables, include, exclude):
        variables, watched = keras_internals.watched_variables(optimizer, inner, variables, include, exclude)
        if not optimizer.built:
            optimizer.build([v for v in variables if v.trainable])  # what its first apply() would do
        return watched

    # ------------------------------------------------------------- host side
    def after_steps(self, n=1, loss=None):
        """Tell the monitor that `n` more train steps ran; writes what they logged
        every `flush_secs` (or when `max_pending` logged updates wait).

        `loss` (a number or a scalar array, read only when its step is
        written) is written as `metadata.LOSS_TAG` if the last of these
        steps is logged.  No call waits for the device.
        """
        if not self.enabled or self._paused:
            return
        before, self._calls_host = self._calls_host, self._calls_host + int(n)
        _, last = monitor_base.completed_updates(before, self._calls_host, self._accumulation, self.every_n_steps)
        if loss is not None and last is not None:
            self._losses[last] = loss
        due = time.monotonic() - self._last_take >= self._flush_secs
        if due or self._capture.pending() >= self._max_pending:
            self.collect()

    def _collect(self, wait):
        updates, synced = self._capture.take(wait)
        self.host_reads += synced
        self._last_take = time.monotonic()
        for step, learning_rate, results in sorted(updates, key=lambda u: u[0]):
            stats, hists = update_groups.assemble(len(self.layers), self.metrics, results)
            self._output.write(step, stats, hists, learning_rate=learning_rate, loss=self._losses.pop(step, None))
        if updates:
            last = max(u[0] for u in updates)
            self._losses = {t: v for t, v in self._losses.items() if t > last}  # steps never logged (skipped)
            self.logged_steps += len(updates)
            self._unflushed = True
        if self._unflushed and time.monotonic() - self._last_flush >= self._flush_secs:
            self._flush_file()

    def _flush_file(self):
        self._writer.flush()
        self._unflushed = False
        self._last_flush = time.monotonic()

    def attached_to(self, optimizer):
        """True while this monitor records `optimizer`'s updates."""
        return self.enabled and getattr(optimizer, "inner_optimizer", optimizer) is self._optimizer

    def pause(self):
        """Write what is pending and stop recording until `resume()`."""
        if self.enabled:
            self.flush()
            self._capture.active = False
            self._paused = True

    def resume(self):
        """Record again (e.g. the next `fit` with the same compiled step)."""
        if self.enabled and self._paused:
            self._calls_host = keras_internals.apply_call_count(self._optimizer)
            self._capture.resume(self._calls_host)
            self._paused = False

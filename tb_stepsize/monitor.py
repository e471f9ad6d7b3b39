"""Records the step every optimizer update applies, per watched variable.

`StepSizeMonitor` hooks one Keras 3 optimizer instance (`update_hooks`, after
the attach-time checks of `keras_internals` and `keras_tf`).  Inside the train
step, at a logged update, each watched variable is read before and after its
update and reduced on the device (`reduction`) to per-layer statistics
written into small ring-buffer variables.  On the host, `after_steps()`
pulls the buffer only when it is about to fill or `flush_secs` have passed
(one host/device sync for many logged updates, none for unlogged ones), and
`host_side.HostSide` writes them (`summary.StepWriter`), with the learning
rate of each logged update (kept in the buffer too) and the loss the caller
reported.  After each pull the findings rules run on the last logged steps
(`live_findings`), and each new finding is reported once.

Under MirroredStrategy and MultiWorkerMirroredStrategy one copy is recorded,
on replica 0's device, where the ring buffer lives (see `update_hooks`).
Only the chief (the worker that writes summaries) records; the other
workers train unhooked.
"""

import atexit
import time
import warnings
import weakref

import keras
import tensorflow as tf

from tb_stepsize import keras_internals, keras_tf, live_findings, metadata, monitor_base, optimizer_rules
from tb_stepsize.host_side import HostSide
from tb_stepsize.monitor_base import MonitorError
from tb_stepsize.reduction import Reducer
from tb_stepsize.summary import StepWriter
from tb_stepsize.update_hooks import UpdateHooks

_REPLICATING = (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)
BUFFER_BYTES = 32 << 20  # default size of the device ring buffer
MAX_CAPACITY = 64


def _default_capacity(variables, per_call):
    """Slots of the ring buffer: as many as fit in BUFFER_BYTES (a slot holds
    every variable's statistics and histograms), at least two calls' worth."""
    slot_bytes = len(variables) * 4 * (len(metadata.METRICS) * metadata.HIST_BINS)
    return max(2 * per_call, min(MAX_CAPACITY, BUFFER_BYTES // max(1, slot_bytes)))


def _watched(optimizer, inner, variables, include, exclude, strategy):
    """The variables to record; builds the optimizer for them if it is not built yet."""
    variables, watched = keras_internals.watched_variables(optimizer, inner, variables, include, exclude)
    if not optimizer.built:
        with strategy.scope():  # slots mirrored like the variables
            optimizer.build(variables)  # what its first apply() would do
    return watched


def _recording_device(strategy):
    """The device whose copy is recorded: replica 0's under a replicating strategy, else None."""
    if isinstance(strategy, _REPLICATING):
        return tf.DeviceSpec.from_string(strategy.extended.worker_devices[0])
    if strategy.num_replicas_in_sync > 1 or isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy):
        raise MonitorError(
            f"{type(strategy).__name__} is not supported "
            "(single device, MirroredStrategy and MultiWorkerMirroredStrategy are)"
        )
    return None


class StepSizeMonitor(monitor_base.Lifecycle):
    """Records per-layer step sizes of the updates `optimizer` applies.

    Args:
      log_dir: directory of the run's event files (created if missing).
      optimizer: a Keras 3 optimizer (a LossScaleOptimizer is unwrapped).
      variables: the variables to watch; default: all the optimizer's
        trainable variables (the optimizer must then be built).
      every_n_steps: log the first update and every N-th after it.
      include, exclude: regular expressions searched in `variable.path`.
      metrics: the metrics to record (names from `metadata.METRICS`); default
        all the optimizer allows.  `step` is always recorded; fewer
        elementwise metrics make a logged step cheaper, e.g.
        `("step", "update_ratio")` costs about half of all six.
      histograms: also write half-octave histograms (bigger event files).
      max_pending: logged updates the device buffer holds between two
        pulls (default: as many as fit in about `BUFFER_BYTES`, at most 64).
      steps_per_call: the most train steps one `after_steps(n)` call may
        report (Keras' `steps_per_execution`); sizes the buffer's minimum.
      flush_secs: logged updates reach the event file on disk at most this
        long after `after_steps()` reported them (and at `flush()`, `pause()`
        and `close()`): what a crash can lose.
      on_error: "warn" (default: one warning, training goes on without the
        monitor) or "raise".
      on_finding: called with each new `findings.Finding` (after its
        warning); its exceptions propagate (they are the caller's own).
      stop_on: finding kinds (`findings.KINDS`) that set `stop_requested`
        (the Keras callback then stops training, like `TerminateOnNaN`).

    The findings rules run on the last `live_findings.HISTORY` logged steps
    after each pull (`flush_secs`, or sooner when the buffer fills) and at
    every `flush()`: a new finding is reported at most one pull late.

    Use `after_steps(n)` after every n train steps (the Keras callback does
    it for you), and `close()` at the end (or use it as a context manager).
    Under MultiWorkerMirroredStrategy only the chief records: on the other
    workers the monitor stays disabled and writes nothing.
    """

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
        self._paused = False
        self._hooks = None
        self._host = None  # pulls and writes (`host_side`)
        self._attach_guarded(log_dir, optimizer, variables, include, exclude, metrics, histograms, max_pending, steps_per_call)

    # ----------------------------------------------------------------- set-up
    def _release(self):
        """Stop recording: the device stops logging, the optimizer is unhooked (`Lifecycle`)."""
        if hasattr(self, "_active"):
            self._active.assign(False)
        self._uninstall()

    @property
    def _live(self):
        return self._host.live if self._host is not None else None

    def _attach(self, log_dir, optimizer, variables, include, exclude, metrics, histograms, max_pending, steps_per_call):
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        # Before anything is created: on another backend nothing may touch log_dir.
        problem = keras_internals.attach_problem(inner, type(optimizer).__name__) or keras_tf.attach_problem()
        if problem:
            raise MonitorError(problem)
        old_keras = keras_internals.old_keras_warning()
        if old_keras:
            warnings.warn(f"tb_stepsize: {old_keras}.", stacklevel=3)
        strategy = keras_tf.strategy_of(inner)
        device = _recording_device(strategy)
        if not strategy.extended.should_save_summary:
            return  # a worker other than the chief: the chief records the run
        watched = _watched(optimizer, inner, variables, include, exclude, strategy)
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
                stacklevel=3,
            )
        self._keras_vars = {keras_internals.variable_key(inner, v): v for v in watched}
        self._rows = {key: row for row, key in enumerate(self._keras_vars)}
        self.layers = [
            {"path": v.path, "shape": [int(d) for d in v.shape], "dtype": str(v.dtype)}
            for v in watched
        ]
        self._accumulation = int(inner.gradient_accumulation_steps or 1)
        self._per_call = -(-int(steps_per_call) // self.every_n_steps) + 1  # logged updates one call can add
        self._capacity = int(max_pending or _default_capacity(watched, self._per_call))
        with keras_tf.plain_variables_on(device):
            self._reducer = Reducer(watched, inner, rule, self._capacity, bulk=device is None, metrics=metrics)
            # Off while paused or closed: a compiled train step that still
            # carries the hooks then records nothing.
            self._active = tf.Variable(True, trainable=False)
        self.metrics = self._reducer.metrics

        self._calls_host = int(keras_internals.apply_calls(inner).numpy())  # predicted calls, for pulls
        self._pending = 0  # logged updates (predicted) not pulled yet
        self._unflushed = False
        self._last_flush = time.monotonic()
        self._writer = StepWriter(log_dir, self.layers, self.metrics, type(optimizer).__name__, histograms=histograms)
        live = live_findings.LiveFindings(self.layers, self.metrics, **self._findings_args)
        self._host = HostSide(self._reducer, self._writer, live, self.metrics, self._capacity)
        self._hooks = UpdateHooks(
            inner, self._reducer, self._rows, device, self._active, self.every_n_steps, self._accumulation, self._capacity
        )
        inner._tb_stepsize_monitor = weakref.ref(self)
        atexit.register(self.close)
        self.enabled = True

    def _uninstall(self):
        hooks, self._hooks = self._hooks, None
        if hooks is not None:
            hooks.remove()

    # ------------------------------------------------------------- host side
    def after_steps(self, n=1, loss=None):
        """Tell the monitor that `n` more train steps ran; writes what they logged.

        Reads the device buffer only when it could fill before the next call
        or `flush_secs` have passed since the last flush, so most steps --
        logged or not -- cost no host/device sync.  `loss`, the loss of the
        last of these steps (a number or a scalar tensor, read only when
        the step is written: no sync of its own), is written as
        `metadata.LOSS_TAG` if that step is logged.
        """
        if not self.enabled or self._paused:
            return
        before, self._calls_host = self._calls_host, self._calls_host + int(n)
        logged, last = monitor_base.completed_updates(before, self._calls_host, self._accumulation, self.every_n_steps)
        self._pending += logged
        if loss is not None and last is not None:
            self._host.note_loss(last, loss)
        due = (self._pending or self._unflushed) and time.monotonic() - self._last_flush >= self._flush_secs
        if due or self._pending + self._per_call > self._capacity:
            self.collect()

    def _collect(self, wait=False):  # every pull waits for the device
        written = self._host.pull()
        self.host_reads += 1
        self._pending = 0
        self.logged_steps += written
        self._unflushed |= written > 0
        if self._unflushed and time.monotonic() - self._last_flush >= self._flush_secs:
            self._flush_file()

    def _flush_file(self):
        self._writer.flush()
        self._unflushed = False
        self._last_flush = time.monotonic()

    def attached_to(self, optimizer):
        """True while this monitor records `optimizer`'s updates."""
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        return self.enabled and inner is self._optimizer

    def pause(self):
        """Write what is pending and stop recording until `resume()`."""
        if self.enabled:
            self.flush()
            self._active.assign(False)
            self._paused = True

    def resume(self):
        """Record again (e.g. the next `fit` with the same compiled step)."""
        if self.enabled and self._paused:
            self._calls_host = int(keras_internals.apply_calls(self._optimizer).numpy())
            self._active.assign(True)
            self._paused = False

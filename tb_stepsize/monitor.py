"""Records the step every optimizer update applies, per watched variable.

`StepSizeMonitor` hooks one Keras 3 optimizer instance.  Inside the train
step, at a logged update, each watched variable is read before and after its
update and reduced on the device to per-layer statistics written into small
ring-buffer variables.  On the host, `after_steps()` pulls the buffer only
when it is about to fill or `flush_secs` have passed (one host/device sync
for many logged updates, none for unlogged ones), and `summary.StepWriter`
writes them.

Hooks (instance attributes set by `keras_internals.Hooks`, removed by
`close()`; the monitor checks at attach time that Keras defines them as it
expects):

* `_backend_apply_gradients`: decides once per call whether it makes an
  update that is logged: update t (`optimizer.iterations` after it, which
  Keras counts in real updates even with gradient accumulation) is logged
  when (t - 1) % every_n_steps == 0, so the first update is always logged.
  A logged update first snapshots all small variables with one concat.
* `_backend_update_step`: after Keras updated every variable, reduces the
  small ones together from that snapshot and the gradients it was given
  (after Keras' clipping and accumulation), and publishes the slot.  So a
  small variable adds no op of its own to the train step: the cost of a
  model with thousands of variables does not grow per variable.
* `update_step`: a large variable (a snapshot of all of them would double
  their memory) is read before and after Keras' own update inside its own
  `tf.cond` and reduced on its own, chunk by chunk.
* `_apply_weight_decay`: defers decoupled weight decay of a variable that
  is recorded on its own to its `update_step`, so that its "before" snapshot
  includes it and only one such snapshot is alive at a time.  Decay of a
  variable depends only on that variable, so deferring it changes no value.

Under MirroredStrategy and MultiWorkerMirroredStrategy the replicas hold
identical copies after the all-reduce, so only one copy is recorded: replica
0 decides and publishes the logged update, and `update_step` records the copy
on replica 0's device (the other copies run the plain update); there every
variable is recorded in its own `update_step`, since the all-reduced
gradients exist only there.  The ring
buffer is a plain variable on that device, so nothing is counted twice and
recording needs no collective.  Only the chief (the worker that writes
summaries) records; the other workers train unhooked.
"""

import atexit
import os
import re
import tempfile
import threading
import time
import warnings
import weakref

import keras
import numpy as np
import tensorflow as tf

from tb_stepsize import keras_internals, keras_tf, metadata, optimizer_rules
from tb_stepsize.reduction import Reducer
from tb_stepsize.summary import StepWriter

_REPLICATING = (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)
BUFFER_BYTES = 32 << 20  # default size of the device ring buffer
MAX_CAPACITY = 64


def _default_capacity(variables, per_call):
    """Slots of the ring buffer: as many as fit in BUFFER_BYTES (a slot holds
    every variable's statistics and histograms), at least two calls' worth."""
    slot_bytes = len(variables) * 4 * (len(metadata.METRICS) * metadata.HIST_BINS)
    return max(2 * per_call, min(MAX_CAPACITY, BUFFER_BYTES // max(1, slot_bytes)))


class MonitorError(RuntimeError):
    """The monitor cannot record (raised only with `on_error="raise"`)."""


def _select(variables, include, exclude):
    inc = re.compile(include) if include else None
    exc = re.compile(exclude) if exclude else None
    return [
        v
        for v in variables
        if v.trainable
        and (inc is None or inc.search(v.path))
        and (exc is None or not exc.search(v.path))
    ]


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


def _gradient_as_used(gradient, variable):
    """The gradient in float32 as the optimizer applies it: cast to the variable's dtype first."""
    return tf.cast(tf.cast(tf.convert_to_tensor(gradient), variable.dtype), tf.float32)


class _Trace:
    """Per-trace state shared by the hooks of one `apply` call on one replica.

    `log` is None on a replica that only updates (not replica 0).
    """

    def __init__(self, log=None, slot=None, t=None):
        self.log = log
        self.slot = slot
        self.t = t
        self.deferred_decay = {}
        self.chain = []


class StepSizeMonitor:
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
    ):
        if on_error not in ("warn", "raise"):
            raise ValueError(f"on_error must be 'warn' or 'raise', not {on_error!r}")
        if int(every_n_steps) < 1:
            raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps!r}")
        unknown = set(metrics or ()) - set(metadata.METRICS)
        if unknown or isinstance(metrics, str):
            raise ValueError(f"metrics must be a list of {sorted(metadata.METRICS)}, got {metrics!r}")
        self.every_n_steps = int(every_n_steps)
        self._on_error = on_error
        self._flush_secs = flush_secs
        self.enabled = False
        self._paused = False
        self.host_reads = 0  # buffer pulls, a host/device sync each
        self.logged_steps = 0
        self._writer = None
        self._hooks = None
        self._failed = False
        try:
            self._attach(log_dir, optimizer, variables, include, exclude, metrics, histograms, max_pending, steps_per_call)
        except MonitorError as e:
            self._fail(str(e))
        except Exception as e:  # never let the monitor break training
            self._fail(f"setting up failed: {type(e).__name__}: {e}")

    # ----------------------------------------------------------------- set-up
    def _fail(self, message):
        """Stop recording for good, then warn once (or raise)."""
        first, self._failed = not self._failed, True
        self._shutdown()
        if not first:  # e.g. closing the file failed too while failing: one report only
            return
        if self._on_error == "raise":
            raise MonitorError(message)
        warnings.warn(f"tb_stepsize: {message}; step sizes are not recorded.", stacklevel=3)

    def _shutdown(self):
        """Stop recording and release the optimizer and the event file, without flushing."""
        self.enabled = False
        if hasattr(self, "_active"):
            self._active.assign(False)
        self._uninstall()
        writer, self._writer = self._writer, None
        atexit.unregister(self.close)
        if writer is not None:
            try:
                writer.close()
            except Exception as e:  # e.g. the disk filled up: what was flushed stays readable
                self._fail(f"closing the event file failed: {type(e).__name__}: {e}")

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
        if variables is None:
            if not optimizer.built:
                raise MonitorError("the optimizer is not built: pass `variables` or build it first")
            variables = keras_internals.built_variables(inner)
        variables = list(variables)
        watched = _select(variables, include, exclude)
        if not watched:
            raise MonitorError(
                "no trainable variables to watch"
                + (f" (include={include!r}, exclude={exclude!r})" if include or exclude else "")
            )
        if not optimizer.built:
            with strategy.scope():  # slots mirrored like the variables
                optimizer.build(variables)  # what its first apply() would do
        try:
            os.makedirs(log_dir, exist_ok=True)
            tempfile.TemporaryFile(dir=log_dir).close()
        except OSError as e:
            raise MonitorError(f"log_dir {log_dir!r} is not writable: {e}") from None

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
        self._device = device
        # Under a strategy Keras' decay cannot run inside one copy's update (it
        # merges across replicas), so `_decay` runs Keras' per-variable decay
        # on each copy; an optimizer with a decay of its own (Muon) keeps it
        # where Keras runs it.
        self._defers_decay = device is None or not keras_internals.has_own_weight_decay(inner)
        with keras_tf.plain_variables_on(device):
            self._reducer = Reducer(watched, inner, rule, self._capacity, bulk=device is None, metrics=metrics)
            # Off while paused or closed: a compiled train step that still
            # carries the hooks then records nothing.
            self._active = tf.Variable(True, trainable=False)
        self._own_rows = set(self._reducer.own_rows)  # recorded in their own update_step
        self.metrics = self._reducer.metrics

        self._calls_host = int(keras_internals.apply_calls(inner).numpy())  # predicted calls, for pulls
        self._seen = 0
        self._pending = 0  # logged updates (predicted) not pulled yet
        self._unflushed = False
        self._last_flush = time.monotonic()
        self._writer = StepWriter(log_dir, self.layers, self.metrics, type(optimizer).__name__, histograms=histograms)
        self._install()
        inner._tb_stepsize_monitor = weakref.ref(self)
        atexit.register(self.close)
        self.enabled = True

    def _install(self):
        self._hooks = keras_internals.Hooks(
            self._optimizer,
            apply_gradients=self._hook_apply_gradients,
            update_all=self._hook_update_all,
            weight_decay=self._hook_weight_decay,
            update_step=self._hook_update_step,
        )
        self._originals = self._hooks.original
        # Replicas trace `apply` concurrently, one thread each: each has its own trace.
        self._local = threading.local()
        self._recording = None  # replica 0's trace while it runs `apply`

    def _uninstall(self):
        hooks, self._hooks = self._hooks, None
        if hooks is not None:
            hooks.remove()

    def _trace(self):
        """The trace of the `apply` this thread runs, else replica 0's.

        A merge call runs the update functions of all copies in the thread
        that called `strategy.run`, while the replicas wait in theirs.
        """
        return getattr(self._local, "trace", None) or self._recording

    def _records_here(self):
        """Whether this replica decides and publishes logged updates (replica 0 only)."""
        if self._device is None:
            return True
        context = tf.distribute.get_replica_context()
        return context is not None and tf.get_static_value(context.replica_id_in_sync_group) == 0

    def _records_copy(self, variable):
        """Whether `variable` (one device's copy under a strategy) is the recorded one."""
        return self._device is None or tf.DeviceSpec.from_string(variable.device) == self._device

    def _run_apply(self, trace, grads, trainable_variables):
        """Keras' own `_backend_apply_gradients`, with `trace` visible to the hooks it calls."""
        self._local.trace = trace
        if trace.log is not None:
            self._recording = trace
        try:
            self._originals["apply_gradients"](grads, trainable_variables)
        finally:
            self._local.trace = None
            if trace.log is not None:
                self._recording = None

    # ------------------------------------------------------ device-side hooks
    def _hook_apply_gradients(self, grads, trainable_variables):
        if not self._records_here():
            self._run_apply(_Trace(), grads, trainable_variables)
            return
        # Keras counts calls in `_iterations` and updates in `iterations`
        # (calls // gradient_accumulation_steps); t is the update this call makes.
        calls = tf.cast(keras_internals.apply_calls(self._optimizer), tf.int64) + 1
        k = self._accumulation
        t = calls // k
        log = self._active & tf.equal(calls % k, 0) & tf.equal((t - 1) % self.every_n_steps, 0)
        reducer = self._reducer
        slot = tf.cast(reducer.count % self._capacity, tf.int32)  # the host reads slots in count order

        keras_tf.run_if(log, lambda: reducer.begin(slot))
        self._run_apply(_Trace(log, slot, t), grads, trainable_variables)

    def _hook_update_all(self, grads, trainable_variables, learning_rate):
        self._originals["update_all"](grads, trainable_variables, learning_rate)
        trace = self._trace()
        if trace is None or trace.log is None:
            return
        small = {}  # gradients of the variables reduced in bulk, by row
        for g, v in zip(grads, trainable_variables):
            row = self._rows.get(keras_internals.variable_key(self._optimizer, v))
            if row is not None and row not in self._own_rows:
                small[row] = _gradient_as_used(g, v)

        def end():
            with tf.control_dependencies(trace.chain):
                self._reducer.end(trace.slot, trace.t, learning_rate, small)

        keras_tf.run_if(trace.log, end)

    def _hook_weight_decay(self, variables):
        trace = self._trace()
        opt = self._optimizer
        if trace is None or opt.weight_decay is None or not self._defers_decay:
            return self._originals["weight_decay"](variables)
        others = []
        for v in variables:
            key = keras_internals.variable_key(opt, v)
            if self._rows.get(key) in self._own_rows:
                trace.deferred_decay[key] = v
            else:
                others.append(v)
        if others:
            self._originals["weight_decay"](others)

    def _decay(self, variable, decayed):
        """Apply the weight decay deferred for `decayed`; `variable` is the copy being updated."""
        if self._device is None:
            self._originals["weight_decay"]([decayed])
        else:  # one copy under a strategy: Keras' decay of that one variable
            keras_internals.decay_one(self._optimizer, variable)

    def _hook_update_step(self, gradient, variable, learning_rate):
        opt = self._optimizer
        trace = self._trace()
        key = keras_internals.variable_key(opt, variable)
        row = self._rows.get(key)
        if trace is None or row not in self._own_rows:
            return self._originals["update_step"](gradient, variable, learning_rate)
        decayed = trace.deferred_decay.get(key)

        def update():
            if decayed is not None:
                self._decay(variable, decayed)
            self._originals["update_step"](gradient, variable, learning_rate)

        if trace.log is None or not self._records_copy(variable):
            update()  # another device's copy: updated, not recorded
            return

        def plain():
            update()
            return tf.constant(0)

        def logged():
            before = variable.read_value()
            update()
            after = variable.read_value()
            grad = _gradient_as_used(gradient, variable)
            decay = None
            if decayed is not None and keras_internals.decays(opt, decayed):
                decay = tf.cast(opt.weight_decay, tf.float32) * tf.cast(learning_rate, tf.float32)
            self._reducer.record(row, trace.slot, before, after, grad, variable, learning_rate, decay)
            return tf.constant(0)

        with tf.control_dependencies(trace.chain):
            done = tf.cond(trace.log, logged, plain)
        trace.chain = [done]

    # ------------------------------------------------------------- host side
    def after_steps(self, n=1):
        """Tell the monitor that `n` more train steps ran; writes what they logged.

        Reads the device buffer only when it could fill before the next call
        or `flush_secs` have passed since the last flush, so most steps --
        logged or not -- cost no host/device sync.
        """
        if not self.enabled or self._paused:
            return
        before, self._calls_host = self._calls_host, self._calls_host + int(n)
        k, n_every = self._accumulation, self.every_n_steps
        t_lo, t_hi = before // k, self._calls_host // k
        self._pending += (t_hi - 1) // n_every - (t_lo - 1) // n_every
        due = (self._pending or self._unflushed) and time.monotonic() - self._last_flush >= self._flush_secs
        if due or self._pending + self._per_call > self._capacity:
            self.collect()

    def collect(self):
        """Pull logged updates from the device and write them."""
        if not self.enabled:
            return
        try:
            self._collect()
        except Exception as e:  # never let the monitor break training
            self._fail(f"writing step sizes failed: {type(e).__name__}: {e}")

    def _collect(self):
        count, steps, stats, hists = tf.nest.map_structure(lambda x: x.numpy(), self._reducer.read())
        count = int(count)
        self.host_reads += 1
        self._pending = 0
        new = count - self._seen
        if new > 0:
            self._write(count, steps, stats, hists)
        if self._unflushed and time.monotonic() - self._last_flush >= self._flush_secs:
            self._flush_file()

    def _write(self, count, steps, stats, hists):
        new = count - self._seen
        if new > self._capacity:
            warnings.warn(
                f"tb_stepsize: {new - self._capacity} logged updates were overwritten "
                "before they were read; call after_steps() more often or raise max_pending.",
                stacklevel=3,
            )
        slots = [i % self._capacity for i in range(max(self._seen, count - self._capacity), count)]
        for slot in sorted(slots, key=lambda s: steps[s]):
            out = {}
            for m in self.metrics:
                if m in hists:
                    out[m] = self._writer.element_stats(stats[m][slot], hists[m][slot])
                else:
                    out[m] = stats[m][slot]
            self._writer.write(steps[slot], out, {m: h[slot] for m, h in hists.items()})
            self.logged_steps += 1
        self._seen = count
        self._unflushed = True

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

    def flush(self):
        """Write everything logged so far to disk."""
        self.collect()
        if self._writer is not None:
            try:
                self._flush_file()
            except Exception as e:  # a full disk, a removed log_dir: never break training
                self._fail(f"flushing the event file failed: {type(e).__name__}: {e}")

    def close(self):
        """Write what is pending, close the event file and unhook the optimizer."""
        if self.enabled:
            self.flush()
        self._shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

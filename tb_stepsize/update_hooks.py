"""The device side of the monitor: hooks on one optimizer that record its logged updates.

`UpdateHooks` replaces four methods on the optimizer instance (through
`keras_internals.Hooks`, so they are removed again by `remove()`; the
monitor checks at attach time that Keras defines them as expected) and runs
`reduction.Reducer` inside Keras' own update:

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

import threading

import tensorflow as tf

from tb_stepsize import keras_internals, keras_tf


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


class UpdateHooks:
    """Hooks `optimizer` so that each logged update lands in `reducer`'s ring buffer.

    `rows` maps `keras_internals.variable_key` of each watched variable to
    its row; `device` is the recorded copy's device under a replicating
    strategy (None on one device); `active` a boolean variable, false while
    the monitor is paused or closed (a compiled train step that still
    carries the hooks then records nothing).
    """

    def __init__(self, optimizer, reducer, rows, device, active, every_n_steps, accumulation, capacity):
        self._optimizer = optimizer
        self._reducer = reducer
        self._rows = rows
        self._own_rows = set(reducer.own_rows)  # recorded in their own update_step
        self._device = device
        self._active = active
        self.every_n_steps = every_n_steps
        self._accumulation = accumulation
        self._capacity = capacity
        # Under a strategy Keras' decay cannot run inside one copy's update (it
        # merges across replicas), so `_decay` runs Keras' per-variable decay
        # on each copy; an optimizer with a decay of its own (Muon) keeps it
        # where Keras runs it.
        self._defers_decay = device is None or not keras_internals.has_own_weight_decay(optimizer)
        # Replicas trace `apply` concurrently, one thread each: each has its own trace.
        self._local = threading.local()
        self._recording = None  # replica 0's trace while it runs `apply`
        self._hooks = keras_internals.Hooks(
            optimizer,
            apply_gradients=self._hook_apply_gradients,
            update_all=self._hook_update_all,
            weight_decay=self._hook_weight_decay,
            update_step=self._hook_update_step,
        )
        self._originals = self._hooks.original

    def remove(self):
        """Give the optimizer its own methods back."""
        self._hooks.remove()

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

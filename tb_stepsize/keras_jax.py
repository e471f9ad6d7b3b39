"""Recording on Keras' JAX backend: the capture inside the compiled train step.

On JAX `fit`'s train step is one pure jitted function: the trainer calls
`optimizer.stateless_apply(optimizer_variables, grads, trainable_variables)`
(keras/src/backend/jax/trainer.py `train_step`, 3.12-3.15), which runs the
ordinary `apply` inside a `StatelessScope`, where every `variable.value` is
the traced array of this step.  `JaxCapture` replaces two optimizer methods
on the instance (`keras_internals.Hooks`), so it is traced into the step:

* `_backend_apply_gradients` keeps the traced values of the watched
  variables before the update (before decoupled weight decay);
* `_backend_update_step`, after Keras' own update, decides on the device
  whether this update is logged -- update t = (`_iterations` + 1) //
  gradient_accumulation_steps, logged when the call completes an update and
  (t - 1) % every_n_steps == 0 -- and only then (`jax.lax.cond`) reduces
  each group (`update_groups`, over `ops_jax`) and ships the small
  summaries to the host with `jax.debug.callback`.  The callback is
  asynchronous: the step's dispatch does not wait for it, and an unlogged
  update runs the untaken branch of one conditional and nothing else.

Installing or removing the hooks clears JAX's compilation caches, so every
jitted step traces again (`_retrace`).  The same hooks record a user's own jitted step that calls
`optimizer.stateless_apply` (or an eager `optimizer.apply`).  Under a
`keras.distribution` (DataParallel, ModelParallel) the step is one SPMD
program over global arrays: the reductions are global, so a sharded
variable's statistics combine its shards exactly (XLA inserts the
collectives), and the callback runs once, with the combined summaries.

Large variables are reduced by the kernel directly, each in one call: its
temporaries are a few arrays of the variable's size, alive only in the
logged branch (XLA frees them before the next op that needs memory).  The
ordering of callbacks is not guaranteed across steps (ordered effects are
refused on several devices), so each carries its step and the monitor sorts.
"""

import collections

import jax
import jax.numpy as jnp

from tb_stepsize import keras_internals, ops_jax, update_groups
from tb_stepsize.backend_monitor import BackendMonitor


def _retrace():
    """Make the next call of any jitted step trace again (with or without the hooks).

    JAX keeps a trace per function: Keras' `make_train_function(force=True)`
    jits the same `model.train_step` again, and a user's step is the same
    function, so without this a step traced before the hooks were installed
    (or after they were removed) would run its old program.  Clearing costs
    one recompilation of each jitted function, at attach and at close only.
    """
    jax.clear_caches()


class JaxCapture(update_groups.Capture):
    """Hooks one optimizer so that each logged update arrives on the host as numpy summaries.

    `take()` returns what arrived: a list of `(step, learning_rate,
    [(rows, (stats, hists, scalars))])`.  While not `active` (the monitor
    is paused or closed) arrivals are dropped: a compiled step keeps its
    hooks until Keras retraces it.
    """

    def __init__(self, *args):
        super().__init__(*args)
        self._arrived = collections.deque()  # appended by the runtime's callback thread
        _retrace()

    def remove(self):
        super().remove()
        _retrace()

    def resume(self, calls):
        self.active = True

    def pending(self):
        return len(self._arrived)

    def take(self, wait=False):
        """`(updates, syncs)`: what arrived; with `wait`, after every dispatched step ran (one sync)."""
        if wait:
            jax.effects_barrier()
        out = []
        while self._arrived:
            out.append(self._arrived.popleft())
        return out, int(wait)

    # ------------------------------------------------------- traced hooks
    def _hook_apply(self, grads, trainable_variables):
        self._before = self._values_before(trainable_variables, lambda v: v.value)  # traced values
        try:
            self._originals["apply_gradients"](grads, trainable_variables)
        finally:
            self._before = None

    def _hook_update_all(self, grads, trainable_variables, learning_rate):
        self._originals["update_all"](grads, trainable_variables, learning_rate)
        before = self._before
        if not before:
            return
        calls = jnp.asarray(keras_internals.apply_calls(self._optimizer).value, jnp.int32) + 1
        k = self._accumulation
        t = calls // k
        log = (calls % k == 0) & ((t - 1) % self.every_n_steps == 0)

        def logged():
            results = self._reduce_update(ops_jax.OPS, before, grads, trainable_variables, learning_rate)
            rows = [r for r, _ in results]
            jax.debug.callback(
                lambda t, lr, reduced: self._arrive(t, lr, list(zip(rows, reduced))),
                t,
                jnp.asarray(learning_rate, jnp.float32),
                [r for _, r in results],
            )

        jax.lax.cond(log, logged, lambda: None)

    def _arrive(self, t, learning_rate, results):
        if self.active:
            self._arrived.append((int(t), float(learning_rate), jax.tree_util.tree_map(jax.device_get, results)))


class JaxMonitor(BackendMonitor):
    """`StepSizeMonitor` on Keras' JAX backend (see `backend_monitor`, `JaxCapture`)."""

    _capture_class = JaxCapture

"""Recording on Keras' torch backend: the capture around the eager update.

On torch Keras runs `optimizer.apply` eagerly inside `train_step` (under
`torch.no_grad`, keras/src/backend/torch/trainer.py, 3.12-3.15), and for its
own optimizers `TorchOptimizer.__new__` swaps in subclasses whose
`_backend_update_step` updates every variable at once with `torch._foreach_*`
ops (keras/src/backend/torch/optimizers/), so `update_step` is never called.
`TorchCapture` therefore replaces the two methods every path goes through
(`keras_internals.Hooks`):

* `_backend_apply_gradients` counts calls on the host (read from
  `_iterations` once, at attach and resume: no device read per step),
  decides whether this call completes logged update t, and only then clones
  the watched variables (before decoupled weight decay);
* `_backend_update_step`, after Keras' own update, reduces each group
  (`update_groups`, over `ops_torch`) on the variables' device and keeps the
  small result tensors there.  Nothing is copied to the host until the
  monitor takes them (`take`: every `flush_secs` or `max_pending` logged
  updates), so unlogged steps add no device work and logged ones no sync.

With `jit_compile=True` Keras wraps the step in `torch.compile`: Keras' own
update stays compiled, and only the monitor's two parts (`_begin`, `_end`)
are excluded from compilation (`torch.compiler.disable`), so the counter is
plain Python (no guard on it, no recompilation) and a logged update is
reduced eagerly between the compiled graphs.
Large variables are reduced in chunks of `update_groups.CHUNK` elements
(`update_stats.reduce_chunked`), so the temporaries stay a few chunks.
"""

import torch
from keras import ops as kops

from tb_stepsize import keras_internals, ops_torch, update_groups, update_stats
from tb_stepsize.backend_monitor import BackendMonitor


class TorchCapture(update_groups.Capture):
    """Hooks one optimizer so that each logged update is reduced on its device.

    `take()` copies what waits to the host: a list of `(step,
    learning_rate, [(rows, (stats, hists, scalars))])`.
    """

    def __init__(self, optimizer, *args):
        super().__init__(optimizer, *args)
        self._calls = keras_internals.apply_call_count(optimizer)
        self._waiting = []  # (t, learning rate tensor, [(rows, device results)])
        self._t = None

    def resume(self, calls):
        self._calls = calls
        self.active = True

    def pending(self):
        return len(self._waiting)

    def take(self, wait=False):
        """`(updates, syncs)`: the waiting updates copied to the host (one sync if any)."""
        waiting, self._waiting = self._waiting, []
        out = []
        for t, learning_rate, results in waiting:
            host = [(rows, tuple({m: x.cpu().numpy() for m, x in part.items()} for part in result)) for rows, result in results]
            out.append((t, float(learning_rate), host))
        return out, int(bool(waiting))

    # --------------------------------------------------------------- hooks
    # Keras' own update runs inside the hooks, as it would without them (under
    # `torch.compile` it stays compiled); only the monitor's parts are
    # excluded from compilation.
    def _hook_apply(self, grads, trainable_variables):
        self._begin(trainable_variables)
        self._originals["apply_gradients"](grads, trainable_variables)

    def _hook_update_all(self, grads, trainable_variables, learning_rate):
        self._originals["update_all"](grads, trainable_variables, learning_rate)
        self._end(grads, trainable_variables, learning_rate)

    @torch.compiler.disable
    def _begin(self, trainable_variables):
        """Count the call; if it completes a logged update, clone the watched variables."""
        self._calls += 1
        self._before = None
        k = self._accumulation
        t = self._calls // k
        if self.active and self._calls % k == 0 and (t - 1) % self.every_n_steps == 0:
            self._before, self._t = self._values_before(trainable_variables, lambda v: v.value.detach().clone()), t

    @torch.compiler.disable
    def _end(self, grads, trainable_variables, learning_rate):
        """Reduce a logged update on the device; the results wait there for `take`."""
        before, self._before = self._before, None
        if not before:
            return
        with torch.no_grad():
            reduce = lambda *args: self._reduce(*args, learning_rate)  # noqa: E731
            results = self._reduce_update(ops_torch.OPS, before, grads, trainable_variables, learning_rate, reduce)
        self._waiting.append((self._t, kops.cast(learning_rate, "float32"), results))

    def _reduce(self, groups, index, variables, old, new, grads, learning_rate):
        """One group in one call, or a large variable in chunks of `update_groups.CHUNK`."""
        n = sum(int(v.numel()) for v in new)
        if len(variables) > 1 or n <= update_groups.CHUNK:
            inputs = update_groups.group_inputs(self._optimizer, self._rule, variables, old, new, grads, learning_rate)
            return update_groups.reduce_group(ops_torch.OPS, groups, index, inputs, learning_rate, self._metrics)
        decay = groups.decay(index, learning_rate)

        def piece(start, size):
            cut = lambda x: x[start : start + size]  # noqa: E731
            inputs = update_groups.group_inputs(self._optimizer, self._rule, variables, old, new, grads, learning_rate, cut)
            return inputs + (decay,)

        return update_stats.reduce_chunked(ops_torch.OPS, n, piece, update_groups.CHUNK, self._metrics)


class TorchMonitor(BackendMonitor):
    """`StepSizeMonitor` on Keras' torch backend (see `backend_monitor`, `TorchCapture`)."""

    _capture_class = TorchCapture

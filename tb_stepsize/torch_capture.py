"""Reads each watched parameter before and after a logged `optimizer.step()`.

Public hooks only: `Optimizer.register_step_pre_hook` and
`register_step_post_hook` (no subclassing, no patching), so the foreach,
fused, capturable and single-tensor implementations all run unchanged.

An unlogged step costs two Python calls that compare a counter: no tensor
op, no host/device sync.  At a logged step:

* the pre-hook runs the step's closure if it has one and the optimizer is
  one of `PER_PARAMETER` (they evaluate it exactly once: the step gets a
  closure returning that loss; an LBFGS keeps its own), notes
  which parameters have a gradient (the others are not updated and get a
  NaN row), the learning rate, and copies the *small* parameters
  (<= `SMALL_MAX` elements) into one float32 snapshot;
* a *big* parameter is not copied all at once: when the optimizer updates
  each parameter independently of the others (the `torch.optim` classes in
  `PER_PARAMETER`), the pre-hook sets its gradient aside, the step updates
  everything else, and the post-hook then, one big parameter at a time,
  copies it, gives back its gradient and runs the optimizer's own step
  function (without hooks) for it alone, and reduces it: the extra memory
  is the small snapshot plus one parameter.  The per-parameter state
  (`step`, moments) makes this the same update, bit for bit (tested);
* otherwise (another optimizer class, sharded parameters whose partials
  are combined in one pass) every watched parameter is copied before the
  step.

What the post-hook reduces -- `(watched, old)` pairs -- goes to the
monitor's `reduce` callback; results stay on the device.
"""

import torch

from tb_stepsize.torch_distributed import local

SMALL_MAX = 1 << 16  # elements: parameters up to this size share one snapshot
# Classes whose step updates each parameter from its own gradient and state only.
PER_PARAMETER = ("Adam", "AdamW", "NAdam", "Adamax", "RAdam", "SGD", "RMSprop", "Adagrad", "Adadelta", "Rprop", "ASGD")


class Watched:
    """One recorded parameter: its row in the run, name, tensor, group and group index."""

    def __init__(self, row, name, param, group):
        self.row, self.name, self.param, self.group = row, name, param, group

    def numel(self):
        return local(self.param).numel()


def per_parameter(optimizer):
    """True when each parameter can be stepped alone with the same result."""
    cls = type(optimizer)
    return cls.__module__.startswith("torch.optim") and cls.__name__ in PER_PARAMETER


def _closure_of(args, kwargs):
    if "closure" in kwargs:
        return kwargs["closure"]
    return args[1] if len(args) > 1 else None


def _with_closure(args, kwargs, closure):
    if "closure" in kwargs:
        return args, {**kwargs, "closure": closure}
    return (args[0], closure, *args[2:]), kwargs


class LoggedStep:
    """What the pre-hook captured of one logged update."""

    def __init__(self, t, watched, one_by_one, grads_known=True):
        self.t = t
        self.loss = None
        self.skipped = self.count = None  # GradScaler's found_inf, the optimizer's step count
        lr = watched[0].group["lr"]  # set by any scheduler for this step; group 0's is the run's scalar
        self.lr = lr.detach().clone() if torch.is_tensor(lr) else float(lr)
        # Before a closure ran (an optimizer that evaluates it itself), gradients are not known
        # yet: copy every parameter, and `settle()` after the step.
        self.updated = [w.param.grad is not None or not grads_known for w in watched]
        moving = [w for w, u in zip(watched, self.updated) if u]
        self.small = [w for w in moving if w.numel() <= SMALL_MAX or not one_by_one]
        self.big = [w for w in moving if w.numel() > SMALL_MAX and one_by_one]
        self.snapshot_bytes = 0
        self.old = {}  # row -> flat float32 values before the step
        by_device = {}
        for w in self.small:
            by_device.setdefault(local(w.param).device, []).append(w)
        for ws in by_device.values():
            flat = torch.cat([local(w.param).detach().reshape(-1).float() for w in ws])
            self.snapshot_bytes += flat.nbytes
            start = 0
            for w in ws:
                self.old[w.row] = flat[start : start + w.numel()]
                start += w.numel()
        self._watched = watched
        self.grads = {}
        for w in self.big:  # set aside: the step skips parameters without a gradient
            self.grads[w.row], w.param.grad = w.param.grad, None


    def settle(self):
        """After the step: parameters without a gradient were not updated."""
        self.updated = [u and (w.param.grad is not None or w.row in self.grads) for u, w in zip(self.updated, self._watched)]
        self.small = [w for w in self.small if w.param.grad is not None]


class StepHooks:
    """Hooks `optimizer`; every `every_n` updates (the first included) calls `reduce(logged, pairs)`.

    `t` counts the updates (`optimizer.step()` calls that ran; a step
    GradScaler skips never calls it), starting from `start`.  `reduce` gets
    the `LoggedStep` and a list of `(Watched, old flat float32)` pairs taken
    after the update, and may be called several times per logged step
    (once for the small parameters, once per big one); `done(logged)`
    follows the last call.  An exception of the monitor's own work goes to
    `fail(exc)` once the step is complete (every big parameter stepped, every
    gradient back), and the hooks do nothing from then on; the closure's own
    exceptions are the caller's and propagate.
    """

    def __init__(self, optimizer, watched, every_n, start, one_by_one, reduce, done, fail):
        self._opt = optimizer
        self._watched = watched
        self._every_n = every_n
        self.t = start
        self._one_by_one = one_by_one
        self._reduce, self._done, self._fail = reduce, done, fail
        self._logged = None
        self._error = None
        self._active = True
        self._inside = False  # the post-hook's own steps of big parameters
        self._running = 0  # hooks of this object on the stack
        self.peak_snapshot_bytes = 0  # largest copy alive at once at a logged step
        self._handles = [optimizer.register_step_pre_hook(self._pre), optimizer.register_step_post_hook(self._post)]

    def remove(self):
        """Unhook.  From inside a hook (a failure) only deactivate: the optimizer is iterating
        over its hooks, and removing one then would break that step; they stay as no-ops."""
        self._active = False
        self._give_back()
        if not self._running:
            for handle in self._handles:
                handle.remove()
            self._handles = []

    def _give_back(self):
        """A step that raised left its big gradients aside: return them."""
        logged, self._logged = self._logged, None
        for w in logged.big if logged else ():
            if w.row in logged.grads:
                w.param.grad = logged.grads.pop(w.row)

    def _safely(self, fn, *args):
        if self._error is None:
            try:
                return fn(*args)
            except Exception as e:  # the monitor's own failure: reported once the step is done
                self._error = e
        return None

    def _pre(self, optimizer, args, kwargs):
        if not self._active or self._inside or self.t % self._every_n:
            return None
        self._running += 1
        try:
            self._give_back()
            closure, changed = _closure_of(args, kwargs), None
            loss = None
            if closure is not None and self._one_by_one:  # these classes evaluate it exactly once
                with torch.enable_grad():
                    loss = closure()
                changed = _with_closure(args, kwargs, lambda: loss)
                closure = None
            self._logged = self._safely(LoggedStep, self.t + 1, self._watched, self._one_by_one, closure is None)
            if self._logged is not None:
                self._logged.loss = loss
                self.peak_snapshot_bytes = max(self.peak_snapshot_bytes, self._logged.snapshot_bytes)
            return changed
        finally:
            self._running -= 1

    def _post(self, optimizer, args, kwargs):
        if self._inside or not self._active:
            return
        self.t += 1
        logged, self._logged = self._logged, None
        if logged is None and self._error is None:
            return
        self._running += 1
        try:
            if logged is not None:
                logged.settle()
                self._note_skip(logged, kwargs)
                if logged.small:
                    self._safely(self._reduce, logged, [(w, logged.old.pop(w.row)) for w in logged.small])
                if logged.big:
                    self._one_at_a_time(logged, args, kwargs)
                self._safely(self._done, logged)
            error, self._error = self._error, None
            if error is not None:
                self._active = False
                self._fail(error)
        finally:
            self._running -= 1

    def _note_skip(self, logged, kwargs):
        """A fused optimizer under GradScaler gets `found_inf` and skips the update itself
        (rolling its step count back): keep both, read with the results (no sync here)."""
        found_inf = kwargs.get("found_inf", getattr(self._opt, "found_inf", None))  # GradScaler sets it for the step
        first = next((w for w, u in zip(self._watched, logged.updated) if u), None)
        if torch.is_tensor(found_inf) and first is not None and "step" in self._opt.state.get(first.param, {}):
            logged.skipped = found_inf.detach().clone()
            logged.count = self._opt.state[first.param]["step"].detach().clone()

    def _one_at_a_time(self, logged, args, kwargs):
        """Step each big parameter alone (always: the update must happen), reducing it if
        nothing failed."""
        optimizer = self._opt
        step = getattr(type(optimizer).step, "__wrapped__", None)  # the class's step without hooks
        others = [p for group in optimizer.param_groups for p in group["params"] if p.grad is not None]
        kept = [p.grad for p in others]
        for p in others:
            p.grad = None
        self._inside = True
        try:
            for w in logged.big:
                old = self._safely(lambda: local(w.param).detach().reshape(-1).to(torch.float32, copy=True))
                if old is not None:
                    self.peak_snapshot_bytes = max(self.peak_snapshot_bytes, logged.snapshot_bytes + old.nbytes)
                w.param.grad = logged.grads[w.row]
                if step is not None:
                    step(*args, **kwargs)
                else:
                    optimizer.step(*args[1:], **kwargs)
                if old is not None:
                    self._safely(self._reduce, logged, [(w, old)])
                w.param.grad = None
                del old
        finally:
            self._inside = False
            for p, g in zip(others, kept):
                p.grad = g
            for w in logged.big:
                w.param.grad = logged.grads.pop(w.row, w.param.grad)

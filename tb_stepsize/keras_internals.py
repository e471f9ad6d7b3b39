"""The only place that touches private names of Keras 3 (any backend).

Recording needs what Keras keeps private: the methods the monitor replaces
on the optimizer instance, the optimizer's call counter, its variable keys,
its weight-decay predicate and the Adam family's slot lists.  Each is
wrapped here in a small function commented with the Keras source it mirrors,
so that when Keras changes, this file shows what broke.  Every name was read
in Keras 3.12.0 and 3.15.1, where the code used is the same (the files named
are under `keras/src/optimizers/`).

Nothing here builds framework code: the TensorFlow backend's private names
are in `keras_tf`; the JAX and torch captures (`keras_jax`, `keras_torch`)
hook only `_backend_apply_gradients` and `_backend_update_step` through the
same `Hooks` (on torch Keras swaps its optimizers for fused subclasses whose
`update_step` is never called: `keras_class` maps them back).  `attach_problem` and `old_keras_warning` are the
checks the monitor runs before it creates anything.
"""

import inspect
import re

import keras

from tb_stepsize import monitor_base

_IMPORT_ERROR = None
try:  # base_optimizer.py (3.12-3.15): the backend-independent optimizer
    from keras.src.optimizers.base_optimizer import BaseOptimizer
except ImportError as e:  # moved in a later Keras: `attach_problem` says so
    BaseOptimizer, _IMPORT_ERROR = None, e

MIN_KERAS = (3, 12)  # the oldest Keras the capture tests pass on
SUPPORTED_BACKENDS = ("tensorflow", "jax", "torch")

# The optimizer methods the monitor replaces on the instance (role -> method,
# the parameters Keras passes), as base_optimizer.py calls them in 3.12-3.15:
# `apply` calls `_backend_apply_gradients(grads, trainable_variables)`, which
# calls `_apply_weight_decay(variables)` and then
# `_backend_update_step(grads, trainable_variables, learning_rate)`, which
# calls `update_step(gradient, variable, learning_rate)` per variable.
# `update_step` is the public method optimizers override, and they name its
# parameters freely (Keras' own Adadelta says `grad`): it is checked by count.
HOOKED_METHODS = {
    "apply_gradients": ("_backend_apply_gradients", ("grads", "trainable_variables")),
    "update_all": ("_backend_update_step", ("grads", "trainable_variables", "learning_rate")),
    "weight_decay": ("_apply_weight_decay", ("variables",)),
    "update_step": ("update_step", 3),
}


def keras_version():
    return keras.__version__


def _version_tuple(text):
    found = re.match(r"(\d+)\.(\d+)", text)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)


# ------------------------------------------------------------ attach checks
def old_keras_warning():
    """A warning to give when Keras is older than `MIN_KERAS`, else None."""
    if _version_tuple(keras_version()) >= MIN_KERAS:
        return None
    oldest = ".".join(map(str, MIN_KERAS))
    return (
        f"Keras {keras_version()} is older than {oldest}, the oldest version tb_stepsize "
        f"is tested with: recording may fail or be wrong; upgrade with pip install 'keras>={oldest}'"
    )


def attach_problem(optimizer, name=None):
    """Why the monitor cannot hook `optimizer` (the unwrapped Keras optimizer), or None.

    `name` is the class name to report (that of the optimizer the user gave).
    """
    backend = keras.backend.backend()
    if backend not in SUPPORTED_BACKENDS:
        names = ", ".join(map(repr, SUPPORTED_BACKENDS[:-1])) + f" and {SUPPORTED_BACKENDS[-1]!r}"
        return f"Keras backend {backend!r} is not supported (tb_stepsize records on {names}: set KERAS_BACKEND to one of them)"
    name = name or type(optimizer).__name__
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        return f"cannot decompose optimizer {name}: a Keras 3 optimizer (keras.optimizers.*) is needed"
    if BaseOptimizer is None:
        return f"Keras {keras_version()}: {_IMPORT_ERROR}"
    for method, expected in HOOKED_METHODS.values():
        problem = _signature_problem(optimizer, method, expected)
        if problem:
            return (
                f"Keras {keras_version()}: {name}.{problem}; tb_stepsize hooks the optimizer "
                f"as Keras {'.'.join(map(str, MIN_KERAS))} to 3.15 define it"
            )
    return None


def _signature_problem(optimizer, method, expected):
    """What is wrong with `optimizer.method` against `expected` (parameter names, or a count)."""
    bound = getattr(optimizer, method, None)
    if not callable(bound):
        return f"{method} does not exist"
    try:
        parameters = list(inspect.signature(bound).parameters.values())
    except (TypeError, ValueError):  # a builtin or C method: cannot tell, trust it
        return None
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return None
    names = tuple(p.name for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD))
    if names == expected or (isinstance(expected, int) and len(names) == expected):
        return None
    wanted = f"{expected} parameters" if isinstance(expected, int) else f"({', '.join(expected)})"
    return f"{method} takes ({', '.join(names)}), not {wanted}"


# -------------------------------------------------------------------- hooks
class Hooks:
    """Replaces the `HOOKED_METHODS` on one optimizer instance.

    The replacements are instance attributes, so `remove()` (popping them)
    brings back the class's methods; `original` holds the bound methods they
    replaced, by role.
    """

    def __init__(self, optimizer, **replacements):
        self._optimizer = optimizer
        self.original = {role: getattr(optimizer, method) for role, (method, _) in HOOKED_METHODS.items()}
        for role, function in replacements.items():
            setattr(optimizer, HOOKED_METHODS[role][0], function)

    def remove(self):
        for method, _ in HOOKED_METHODS.values():
            self._optimizer.__dict__.pop(method, None)


# --------------------------------------------------------- optimizer state
def apply_calls(optimizer):
    """The variable counting `apply` calls (base_optimizer.py `_iterations`).

    The public `iterations` counts updates: `_iterations //
    gradient_accumulation_steps` with gradient accumulation.
    """
    return optimizer._iterations


def apply_call_count(optimizer):
    """`apply_calls(optimizer)` read on the host (one device read)."""
    return int(keras.ops.convert_to_numpy(optimizer._iterations.value))


def built_variables(optimizer):
    """The variables `optimizer.build` was given (base_optimizer.py `build`: `_trainable_variables`)."""
    return optimizer._trainable_variables


def watched_variables(optimizer, inner, variables, include, exclude):
    """`(variables, watched)`: the variables the optimizer updates (its own if
    `variables` is None; it must then be built) and the trainable ones of them to
    record (`include`/`exclude` searched in `variable.path`), the same on every
    backend.  Building an unbuilt optimizer is the caller's: where it builds
    (a distribution strategy's scope) depends on the backend."""
    if variables is None:
        if not optimizer.built:
            raise monitor_base.MonitorError("the optimizer is not built: pass `variables` or build it first")
        variables = built_variables(inner)
    variables = list(variables)
    trainable = [(v.path, v) for v in variables if v.trainable]
    watched = [v for _, v in monitor_base.select(trainable, include, exclude)]
    if not watched:
        raise monitor_base.MonitorError(
            "no trainable variables to watch"
            + (f" (include={include!r}, exclude={exclude!r})" if include or exclude else "")
        )
    return variables, watched


def variable_key(optimizer, variable):
    """The optimizer's key for `variable`, the same for all copies of a
    distributed one (`_var_key`: `id` in base_optimizer.py, the distributed
    container's `_unique_id` in the TensorFlow backend's optimizer.py)."""
    return optimizer._var_key(variable)


def decays(optimizer, variable):
    """Whether `optimizer` applies decoupled weight decay to `variable`
    (`weight_decay` set and base_optimizer.py `_use_weight_decay`, which
    honours `exclude_from_weight_decay`)."""
    return optimizer.weight_decay is not None and bool(optimizer._use_weight_decay(variable))


def has_own_weight_decay(optimizer):
    """Whether `optimizer`'s class overrides Keras' `_apply_weight_decay` (Muon does)."""
    return type(optimizer)._apply_weight_decay is not keras.optimizers.Optimizer._apply_weight_decay


def decay_one(optimizer, variable):
    """Keras' own weight decay, applied to exactly `variable`.

    The backend-independent `BaseOptimizer._apply_weight_decay`
    (base_optimizer.py: `variable - variable * wd * lr` for each variable
    `_use_weight_decay` accepts), which backends override only to distribute
    it: the TensorFlow backend decays every copy of a mirrored variable in one
    merge call, which cannot run inside one copy's `update_step`.
    """
    BaseOptimizer._apply_weight_decay(optimizer, [variable])


def keras_class(optimizer):
    """The public Keras class `optimizer` was made as.

    On the torch backend `TorchOptimizer.__new__` (keras/src/backend/torch/
    optimizers/torch_optimizer.py, 3.12-3.15) returns an instance of a
    subclass from `keras.src.backend.torch.optimizers` (e.g. `torch_adam.Adam`
    for `keras.optimizers.Adam`) whose fused `_parallel_update_step` computes
    Keras' own formulas; this maps it back to the class the user asked for.
    """
    cls = type(optimizer)
    if not cls.__module__.startswith(_TORCH_SWAPS):
        return cls
    for base in cls.__mro__[1:]:
        if base.__name__ == cls.__name__ and not base.__module__.startswith(_TORCH_SWAPS):
            return base
    return cls


_TORCH_SWAPS = "keras.src.backend.torch.optimizers."


def _index(optimizer, variable):
    """The variable's position in the slot lists (base_optimizer.py `_get_variable_index`)."""
    return optimizer._get_variable_index(variable)


def adam_moments(optimizer, variable):
    """(m, v) of Adam and AdamW, v being the running maximum with `amsgrad`
    (adam.py `build`: `_momentums`, `_velocities`, `_velocity_hats`; AdamW
    subclasses Adam)."""
    index = _index(optimizer, variable)
    v = optimizer._velocity_hats if optimizer.amsgrad else optimizer._velocities
    return optimizer._momentums[index], v[index]


def nadam_moments(optimizer, variable):
    """(m, v) of Nadam (nadam.py `build`: `_momentums`, `_velocities`)."""
    index = _index(optimizer, variable)
    return optimizer._momentums[index], optimizer._velocities[index]


def nadam_u_product(optimizer):
    """Nadam's running product of momentum-schedule factors (nadam.py `_u_product`)."""
    return optimizer._u_product


def adamax_moments(optimizer, variable):
    """(m, u) of Adamax (adamax.py `build`: `_m`, `_u`)."""
    index = _index(optimizer, variable)
    return optimizer._m[index], optimizer._u[index]

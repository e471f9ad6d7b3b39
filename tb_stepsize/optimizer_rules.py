"""What the Adam family computes for one variable, rebuilt from its state.

Evaluated right after Keras' own `update_step` for a variable, so the slots
hold m_t, v_t (and Nadam's u-product) of this step and `optimizer.iterations`
is still t - 1.  Each rule mirrors its optimizer's Keras 3 `update_step`
operation for operation, in float32, in three parts: `scalars` computes the
per-step constants (the same for every variable), `slots` names a variable's
slot tensors (read through `keras_internals`, as Keras keeps them private),
and `elementwise` maps (slices or concatenations of) slots and
gradients to

* `effective_lr`: the per-parameter factor the first moment is multiplied by,
* `update`: the signed step before it is rounded into the weight (without
  decoupled weight decay, which the monitor adds),
* `normalized_grad`: g_t / sqrt(v_hat_t), with v_hat_t the bias-corrected
  second moment the optimizer divides by (0 where v_hat_t is 0).

The formulas are written once with `keras.ops`, so the same rule serves the
TensorFlow, JAX and torch backends, on that backend's tensors (inside a
`tf.function`, a jitted JAX step or eagerly on a torch device).  Keras'
torch backend swaps these classes for subclasses with a fused
`_parallel_update_step` (`keras/src/backend/torch/optimizers/`) that computes
the same expressions; `rule_for` accepts exactly those swapped classes too
(`keras_internals.keras_class`).

Formulas (t = iterations + 1, lr the learning rate at t):

* Adam, AdamW, AMSGrad: alpha = lr * sqrt(1 - b2^t) / (1 - b1^t);
  effective_lr = alpha / (sqrt(v_t) + eps) (AMSGrad: the running max of v);
  update = m_t * alpha / (sqrt(v_t) + eps).
* Nadam: effective_lr = lr / (sqrt(v_t / (1 - b2^t)) + eps);
  update = m_hat_t * effective_lr with Keras' momentum-schedule m_hat_t.
* Adamax: effective_lr = lr / ((1 - b1^t) * (u_t + eps));
  update = m_t * effective_lr; normalized_grad = g_t / u_t.
"""

import collections

import keras
from keras import ops

from tb_stepsize import keras_internals

Rule = collections.namedtuple("Rule", ["scalars", "slots", "elementwise"])


def _f32(x):
    return ops.cast(x, "float32")


def _step(optimizer):
    return _f32(optimizer.iterations + 1)


def _safe_ratio(g, denom_sq):
    positive = denom_sq > 0
    return ops.where(positive, g / ops.sqrt(ops.where(positive, denom_sq, 1.0)), 0.0)


def _adam_scalars(optimizer, learning_rate):
    t = _step(optimizer)
    beta_1_power = ops.power(_f32(optimizer.beta_1), t)
    beta_2_power = ops.power(_f32(optimizer.beta_2), t)
    alpha = _f32(learning_rate) * ops.sqrt(1 - beta_2_power) / (1 - beta_1_power)
    return {"alpha": alpha, "v_correction": 1 - beta_2_power, "epsilon": optimizer.epsilon}


def _adam_slots(optimizer, variable):
    return dict(zip("mv", keras_internals.adam_moments(optimizer, variable)))


def _adam_elementwise(s, a, g):
    m, v = _f32(a["m"]), _f32(a["v"])
    denom = ops.sqrt(v) + s["epsilon"]
    return {
        "effective_lr": s["alpha"] / denom,
        "update": (m * s["alpha"]) / denom,
        "normalized_grad": _safe_ratio(g, v / s["v_correction"]),
    }


def _nadam_scalars(optimizer, learning_rate):
    t = _step(optimizer)
    beta_1 = _f32(optimizer.beta_1)
    decay = _f32(0.96)
    u_t = beta_1 * (1.0 - 0.5 * ops.power(decay, t))
    u_t_1 = beta_1 * (1.0 - 0.5 * ops.power(decay, t + 1))
    u_product_t = _f32(keras_internals.nadam_u_product(optimizer))
    return {
        "lr": _f32(learning_rate),
        "u_t": u_t,
        "u_t_1": u_t_1,
        "u_product_t": u_product_t,
        "u_product_t_1": u_product_t * u_t_1,
        "v_correction": 1 - ops.power(_f32(optimizer.beta_2), t),
        "epsilon": optimizer.epsilon,
    }


def _nadam_slots(optimizer, variable):
    return dict(zip("mv", keras_internals.nadam_moments(optimizer, variable)))


def _nadam_elementwise(s, a, g):
    m, v_hat = _f32(a["m"]), _f32(a["v"]) / s["v_correction"]
    m_hat = (s["u_t_1"] * m) / (1 - s["u_product_t_1"]) + ((1 - s["u_t"]) * g) / (1 - s["u_product_t"])
    denom = ops.sqrt(v_hat) + s["epsilon"]
    return {
        "effective_lr": s["lr"] / denom,
        "update": (m_hat * s["lr"]) / denom,
        "normalized_grad": _safe_ratio(g, v_hat),
    }


def _adamax_scalars(optimizer, learning_rate):
    beta_1_power = ops.power(_f32(optimizer.beta_1), _step(optimizer))
    return {"lr": _f32(learning_rate), "correction": 1 - beta_1_power, "epsilon": optimizer.epsilon}


def _adamax_slots(optimizer, variable):
    return dict(zip("mu", keras_internals.adamax_moments(optimizer, variable)))


def _adamax_elementwise(s, a, g):
    m, u = _f32(a["m"]), _f32(a["u"])
    denom = s["correction"] * (u + s["epsilon"])
    return {
        "effective_lr": s["lr"] / denom,
        "update": (s["lr"] * m) / denom,
        "normalized_grad": _safe_ratio(g, ops.square(u)),
    }


ADAM = Rule(_adam_scalars, _adam_slots, _adam_elementwise)
# Exact classes only: a subclass may change update_step, and then these
# formulas would describe something the optimizer no longer does.
RULES = {
    keras.optimizers.Adam: ADAM,
    keras.optimizers.AdamW: ADAM,
    keras.optimizers.Nadam: Rule(_nadam_scalars, _nadam_slots, _nadam_elementwise),
    keras.optimizers.Adamax: Rule(_adamax_scalars, _adamax_slots, _adamax_elementwise),
}


def rule_for(optimizer):
    """The rule for `optimizer`'s exact class (or its torch-backend swap), or None."""
    return RULES.get(keras_internals.keras_class(optimizer))

"""What the Adam family computes for one variable, rebuilt from its state.

Called right after Keras' own `update_step` for a variable, so the slots
hold m_t, v_t (and Nadam's u-product) of this step and `optimizer.iterations`
is still t - 1.  Each rule mirrors its optimizer's Keras 3 `update_step`
operation for operation, in float32, and returns

* `effective_lr`: the per-parameter factor the first moment is multiplied by,
* `update`: the signed step before it is rounded into the weight (without
  decoupled weight decay, which the monitor adds),
* `normalized_grad`: g_t / sqrt(v_hat_t), with v_hat_t the bias-corrected
  second moment the optimizer divides by (0 where v_hat_t is 0).

Formulas (t = iterations + 1, lr the learning rate at t):

* Adam, AdamW, AMSGrad: alpha = lr * sqrt(1 - b2^t) / (1 - b1^t);
  effective_lr = alpha / (sqrt(v_t) + eps) (AMSGrad: max of v over time);
  update = m_t * alpha / (sqrt(v_t) + eps).
* Nadam: effective_lr = lr / (sqrt(v_t / (1 - b2^t)) + eps);
  update = m_hat_t * effective_lr with Keras' momentum-schedule m_hat_t.
* Adamax: effective_lr = lr / ((1 - b1^t) * (u_t + eps));
  update = m_t * effective_lr; normalized_grad = g_t / u_t.
"""

import keras
import tensorflow as tf


def _f32(x):
    return tf.cast(x, tf.float32)


def _common(optimizer, variable, learning_rate):
    index = optimizer._get_variable_index(variable)
    t = _f32(optimizer.iterations + 1)
    return index, t, _f32(learning_rate)


def _safe_ratio(g, denom_sq):
    return tf.where(denom_sq > 0, g / tf.sqrt(tf.where(denom_sq > 0, denom_sq, 1.0)), 0.0)


def adam(optimizer, variable, gradient, learning_rate):
    index, t, lr = _common(optimizer, variable, learning_rate)
    m = _f32(optimizer._momentums[index])
    v = _f32((optimizer._velocity_hats if optimizer.amsgrad else optimizer._velocities)[index])
    beta_2_power = tf.pow(tf.constant(optimizer.beta_2, tf.float32), t)
    beta_1_power = tf.pow(tf.constant(optimizer.beta_1, tf.float32), t)
    alpha = lr * tf.sqrt(1 - beta_2_power) / (1 - beta_1_power)
    denom = tf.sqrt(v) + optimizer.epsilon
    return {
        "effective_lr": alpha / denom,
        "update": (m * alpha) / denom,
        "normalized_grad": _safe_ratio(_f32(gradient), v / (1 - beta_2_power)),
    }


def nadam(optimizer, variable, gradient, learning_rate):
    index, t, lr = _common(optimizer, variable, learning_rate)
    g = _f32(gradient)
    beta_1 = tf.constant(optimizer.beta_1, tf.float32)
    beta_2 = tf.constant(optimizer.beta_2, tf.float32)
    decay = tf.constant(0.96, tf.float32)
    u_t = beta_1 * (1.0 - 0.5 * tf.pow(decay, t))
    u_t_1 = beta_1 * (1.0 - 0.5 * tf.pow(decay, t + 1))
    u_product_t = _f32(optimizer._u_product)
    u_product_t_1 = u_product_t * u_t_1
    m = _f32(optimizer._momentums[index])
    v_hat = _f32(optimizer._velocities[index]) / (1 - tf.pow(beta_2, t))
    m_hat = (u_t_1 * m) / (1 - u_product_t_1) + ((1 - u_t) * g) / (1 - u_product_t)
    denom = tf.sqrt(v_hat) + optimizer.epsilon
    return {
        "effective_lr": lr / denom,
        "update": (m_hat * lr) / denom,
        "normalized_grad": _safe_ratio(g, v_hat),
    }


def adamax(optimizer, variable, gradient, learning_rate):
    index, t, lr = _common(optimizer, variable, learning_rate)
    m = _f32(optimizer._m[index])
    u = _f32(optimizer._u[index])
    beta_1_power = tf.pow(tf.constant(optimizer.beta_1, tf.float32), t)
    denom = (1 - beta_1_power) * (u + optimizer.epsilon)
    return {
        "effective_lr": lr / denom,
        "update": (lr * m) / denom,
        "normalized_grad": _safe_ratio(_f32(gradient), tf.square(u)),
    }


# Exact classes only: a subclass may change update_step, and then these
# formulas would describe something the optimizer no longer does.
RULES = {
    keras.optimizers.Adam: adam,
    keras.optimizers.AdamW: adam,
    keras.optimizers.Nadam: nadam,
    keras.optimizers.Adamax: adamax,
}


def rule_for(optimizer):
    """The rule for `optimizer`'s exact class, or None."""
    return RULES.get(type(optimizer))

"""Each optimizer rule against the change Keras' own `update_step` makes.

The rule is evaluated where the monitor evaluates it: right after Keras'
`update_step` for a variable, before `iterations` moves on.  Its `update`
rounded into the old weight must give exactly the weight Keras wrote
(`update` is Keras' own step, operation for operation), its
`effective_lr` times the first moment Keras used must give that step, and
all three parts must match `reference`'s independent numpy formulas.  SGD
and RMSprop have no rule (only `step` and `update_ratio` are recorded).
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import reference  # noqa: E402
from tb_stepsize import keras_internals, optimizer_rules  # noqa: E402

OPTIMIZERS = {
    "adam": lambda: keras.optimizers.Adam(3e-2),
    "adamw": lambda: keras.optimizers.AdamW(3e-2, weight_decay=0.1),
    "amsgrad": lambda: keras.optimizers.Adam(3e-2, amsgrad=True),
    "nadam": lambda: keras.optimizers.Nadam(3e-2),
    "adamax": lambda: keras.optimizers.Adamax(3e-2),
}
WARM_UP = 3  # updates before the checked one: slots and the Nadam product are non-trivial


def _gradient(rng, shape, t):
    g = rng.standard_normal(shape).astype("float32") * np.float32(10.0 ** -(t % 3))
    g.flat[0] = 0.0  # a zero gradient with a zero second moment: the safe ratio's 0
    return g


def _one_update(name):
    """(optimizer, rule parts, w_old, w_new, g, t, lr, slots after) of one checked update."""
    rng = np.random.default_rng(7)
    optimizer = OPTIMIZERS[name]()
    variable = keras.Variable(rng.standard_normal((6, 5)).astype("float32"), name="kernel")
    optimizer.build([variable])
    for t in range(1, WARM_UP + 1):
        g = _gradient(rng, variable.shape, t)
        optimizer.apply([tf.constant(g)], [variable])
    t = WARM_UP + 1
    g = _gradient(rng, variable.shape, t)
    lr = optimizer.learning_rate
    old = variable.numpy().copy()
    optimizer.update_step(tf.constant(g), variable, lr)  # Keras' own update: no decay, iterations unchanged
    new = variable.numpy().copy()
    rule = optimizer_rules.rule_for(optimizer)
    scalars = rule.scalars(optimizer, lr)
    slots = rule.slots(optimizer, variable)
    parts = {k: v.numpy() for k, v in rule.elementwise(scalars, slots, tf.constant(g)).items()}
    slots = {k: v.numpy() for k, v in slots.items()}
    return optimizer, parts, old, new, g, t, float(lr.numpy()), slots


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_update_is_the_step_keras_applied(name):
    optimizer, parts, old, new, *_ = _one_update(name)
    assert int(optimizer.iterations.numpy()) == WARM_UP  # evaluated before `apply` would count the update
    np.testing.assert_array_equal(old - parts["update"], new)


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_effective_lr_scales_the_first_moment_keras_used(name):
    optimizer, parts, old, new, g, t, lr, slots = _one_update(name)
    if name == "nadam":  # Nadam's step is effective_lr times its momentum-scheduled m_hat
        b1 = np.float32(optimizer.beta_1)
        u_t = b1 * (1 - np.float32(0.5) * np.float32(0.96) ** np.float32(t))
        u_t1 = b1 * (1 - np.float32(0.5) * np.float32(0.96) ** np.float32(t + 1))
        product = np.float32(keras_internals.nadam_u_product(optimizer).numpy())
        first = (u_t1 * slots["m"]) / (1 - product * u_t1) + ((1 - u_t) * g) / (1 - product)
    else:
        first = slots["m"]
    np.testing.assert_allclose(parts["effective_lr"] * first, old - new, rtol=1e-5, atol=1e-7 * np.abs(old).max())
    assert (parts["effective_lr"] > 0).all()


@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_parts_match_the_numpy_reference(name):
    optimizer, parts, old, new, g, t, lr, slots = _one_update(name)
    config = optimizer.get_config()
    if name == "nadam":
        product = np.float32(keras_internals.nadam_u_product(optimizer).numpy())
        expected = reference.nadam_parts(config, t, lr, slots["m"], slots["v"], g, product)
    elif name == "adamax":
        expected = reference.adamax_parts(config, t, lr, slots["m"], slots["u"], g)
    else:
        expected = reference.adam_parts(config, t, lr, slots["m"], slots["v"], g)
    for part, want in zip(("effective_lr", "update", "normalized_grad"), expected):
        np.testing.assert_allclose(parts[part], want, rtol=2e-6, atol=0, err_msg=f"{name} {part}")
    assert parts["normalized_grad"][0, 0] == 0  # its second moment is 0


def test_amsgrad_reads_the_running_maximum():
    optimizer, _, _, _, _, _, _, slots = _one_update("amsgrad")
    hats = keras_internals.adam_moments(optimizer, optimizer._trainable_variables[0])[1].numpy()
    np.testing.assert_array_equal(slots["v"], hats)
    np.testing.assert_array_equal(hats, optimizer._velocity_hats[0].numpy())
    assert (hats >= optimizer._velocities[0].numpy()).all()


def test_rules_exist_for_exact_classes_only():
    for name, make in OPTIMIZERS.items():
        assert optimizer_rules.rule_for(make()) is not None, name
    for make in (keras.optimizers.SGD, keras.optimizers.RMSprop, keras.optimizers.Lion):
        assert optimizer_rules.rule_for(make()) is None

    class MyAdam(keras.optimizers.Adam):
        pass

    assert optimizer_rules.rule_for(MyAdam()) is None  # a subclass may change update_step

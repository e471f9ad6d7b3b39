"""Every recorded number against an independent numpy recomputation.

A custom training loop calls `optimizer.apply`, as users of the monitor API
do; the test snapshots weights, gradients and slots around each update and
recomputes every statistic with `reference` (through `exactness_helpers`,
which `backend_cases` shares on the JAX and torch backends).
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import exactness_helpers  # noqa: E402
import tb_stepsize  # noqa: E402

OPTIMIZERS = exactness_helpers.OPTIMIZERS
CASES = [(o, "float32") for o in OPTIMIZERS] + [(o, "mixed_float16") for o in OPTIMIZERS if o != "adam_schedule"] + [
    ("adam", "bfloat16"),
    ("sgd_momentum", "bfloat16"),
    ("adamw", "float32-chunked"),
    ("nadam", "float32-chunked"),
]
STEPS = exactness_helpers.STEPS


def _train(tmp_path, optimizer_name, dtype):
    keras.utils.set_random_seed(1)
    if dtype == "mixed_float16":
        keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = exactness_helpers.model_for(dtype)
        optimizer = exactness_helpers.optimizer_for(optimizer_name, dtype)
        inner = getattr(optimizer, "inner_optimizer", optimizer)
        variables = model.trainable_variables
        optimizer.build(variables)
        monitor = tb_stepsize.StepSizeMonitor(str(tmp_path), optimizer, variables, on_error="raise")

        @tf.function
        def train_step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(tf.cast(model(x), tf.float32) - y))
                scaled = optimizer.scale_loss(loss)
            grads = tape.gradient(scaled, variables)
            optimizer.apply(grads, variables)
            return grads

        rng = np.random.default_rng(0)
        records = []
        for _ in range(STEPS):
            x = rng.standard_normal((64, 16)).astype("float32")
            y = rng.standard_normal((64, 4)).astype("float32")
            scale = float(optimizer.dynamic_scale.numpy()) if dtype == "mixed_float16" else 1.0
            t, lr = exactness_helpers.state_before(inner)
            before = [np.asarray(v.numpy()) for v in variables]
            grads = train_step(x, y)
            monitor.after_steps()
            records.append(exactness_helpers.record(inner, variables, t, lr, before, grads, scale))
        monitor.close()
        config = inner.get_config()
        return model, inner, records, config
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize("optimizer_name,dtype", CASES, ids=[f"{o}-{d}" for o, d in CASES])
def test_every_statistic_matches_numpy(tmp_path, monkeypatch, optimizer_name, dtype):
    if dtype == "float32-chunked":
        # Every variable takes the large-variable path, in chunks of 100
        # elements with a tail (512 = 5 x 100 + 12, 128 = 100 + 28, 32 = tail only).
        from tb_stepsize import reduction

        monkeypatch.setattr(reduction, "SMALL_MAX", 16)
        monkeypatch.setattr(reduction, "CHUNK", 100)
        dtype = "float32"
    model, inner, records, config = _train(tmp_path, optimizer_name, dtype)
    run = tb_stepsize.load(str(tmp_path))
    exactness_helpers.check_run(run, model.trainable_variables, inner, records, config, optimizer_name, dtype)


def test_bfloat16_loses_small_updates_and_says_so(tmp_path):
    """In bfloat16, Adam's ~1e-2-relative-or-smaller steps round away for large weights."""
    model, inner, records, config = _train(tmp_path, "adam", "bfloat16")
    run = tb_stepsize.load(str(tmp_path))
    lost = run.matrix("lost_fraction", "value")
    assert np.nanmax(lost) > 0, "bfloat16 weights should lose some updates to rounding"
    zero = run.matrix("step", "zero_fraction")
    np.testing.assert_array_less(lost - 1e-12, zero + 1e-12)  # lost updates are zero steps

"""The callback and the monitor on whichever Keras backend this process runs.

Not collected by the normal run (the name has no `test_` prefix): Keras
reads `KERAS_BACKEND` once per process, so `test_backends` runs this module
once per backend, each in its own process, through `backend_runner.py`
(which blocks TensorFlow on JAX and torch, so every case here also proves
that those paths import no TensorFlow).  The same cases run on each
backend: exactness against `reference` (a custom loop written the way that
backend's users write one), zero interference, `fit` semantics, attach
errors, and reading a run back.  Cases a backend cannot have (Keras refuses
`steps_per_execution > 1` on torch) say so in their skip reason.
"""

import os
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest

import exactness_helpers
import tb_stepsize
from fit_helpers import X, Y, Subclassed, WeightRecorder, functional, sequential, to_numpy, train  # noqa: F401

BACKEND = keras.backend.backend()
HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "..", "demo")

def deterministic():
    if BACKEND == "torch":
        import torch

        torch.use_deterministic_algorithms(True)
    elif BACKEND == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def small_chunks(monkeypatch):
    """Every variable takes the large-variable path, in chunks of 100 elements
    with a tail (512 = 5 x 100 + 12, 128 = 100 + 28, 32 = tail only)."""
    if BACKEND == "tensorflow":
        from tb_stepsize import reduction as module
    else:
        from tb_stepsize import update_groups as module
    monkeypatch.setattr(module, "SMALL_MAX", 16)
    monkeypatch.setattr(module, "CHUNK", 100)


EXACT_CASES = (
    [(o, "float32") for o in exactness_helpers.OPTIMIZERS]
    + [(o, "mixed_float16") for o in exactness_helpers.OPTIMIZERS if o != "adam_schedule"]
    + [(o, "mixed_bfloat16") for o in ("adam", "adamw", "nadam")]
    + [("adam", "bfloat16"), ("sgd_momentum", "bfloat16"), ("adamw", "float32-chunked"), ("nadam", "float32-chunked")]
)


@pytest.mark.parametrize("optimizer_name,dtype", EXACT_CASES, ids=[f"{o}-{d}" for o, d in EXACT_CASES])
def test_every_statistic_matches_numpy(tmp_path, monkeypatch, optimizer_name, dtype):
    if BACKEND == "jax" and optimizer_name == "nadam" and dtype == "mixed_float16":
        # Keras 3.15: Nadam's `_u_product` is not among LossScaleOptimizer.variables, so on JAX
        # `stateless_apply` drops its update and the test cannot read the value the step used
        # (Keras itself restarts the product from 1 at every step; the monitor records what it used).
        pytest.skip("Keras drops Nadam's _u_product under LossScaleOptimizer on JAX")
    if dtype == "float32-chunked":
        small_chunks(monkeypatch)
        dtype = "float32"
    model, inner, records, config = exactness_helpers.train_custom(tmp_path, optimizer_name, dtype)
    run = tb_stepsize.load(str(tmp_path))
    exactness_helpers.check_run(run, model.trainable_variables, inner, records, config, optimizer_name, dtype)
    if dtype == "mixed_float16":
        assert type(inner).__name__ != "LossScaleOptimizer"


def test_rules_reproduce_keras_own_update():
    """Each rule's `update`, rounded into the weight, is the weight Keras wrote on this backend."""
    from tb_stepsize import optimizer_rules

    for name in ("adam", "adamw", "amsgrad", "nadam", "adamax"):
        keras.utils.set_random_seed(2)
        model = exactness_helpers.model_for("float32")
        optimizer = exactness_helpers.optimizer_for(name, "float32")
        variables = model.trainable_variables
        optimizer.build(variables)
        rng = np.random.default_rng(4)
        for _ in range(3):
            grads = [keras.ops.convert_to_tensor(rng.standard_normal(v.shape).astype("float32")) for v in variables]
            old = exactness_helpers.weights_of(variables)
            optimizer._apply_weight_decay(variables)  # what apply() does first
            decayed = exactness_helpers.weights_of(variables)
            optimizer._backend_update_step(grads, variables, optimizer.learning_rate)
            rule = optimizer_rules.rule_for(optimizer)
            scalars = rule.scalars(optimizer, optimizer.learning_rate)
            for v, g, before in zip(variables, grads, decayed):
                parts = rule.elementwise(scalars, {k: s.value for k, s in rule.slots(optimizer, v).items()}, g)
                np.testing.assert_array_equal(before - to_numpy(parts["update"]), to_numpy(v), err_msg=f"{name} {v.path}")
            optimizer._iterations.assign_add(1)
            assert old  # the decay-free weights are the monitor's "before"


# ------------------------------------------------------------- fit
JIT = [False, True] if BACKEND == "torch" else [None]


@pytest.mark.parametrize("jit_compile", JIT, ids=[f"jit={j}" for j in JIT])
def test_step_matches_weight_differences_recorded_around_fit(tmp_path, jit_compile):
    recorder = WeightRecorder()
    kwargs = {} if jit_compile is None else {"jit_compile": jit_compile}
    train(sequential(), tmp_path, callbacks=[recorder], optimizer=keras.optimizers.SGD(0.1, momentum=0.9), **kwargs)
    run = tb_stepsize.load(str(tmp_path))
    assert list(run.steps) == list(range(1, 13))
    for col, t in enumerate(run.steps):
        for row, (old, new) in enumerate(zip(recorder.weights[t - 1], recorder.weights[t])):
            step = np.abs(old - new)
            np.testing.assert_allclose(run.matrix("step", "max")[row, col], step.max(), rtol=1e-6)
            np.testing.assert_allclose(run.matrix("step", "mean")[row, col], step.mean(), rtol=1e-5)


INTERFERENCE = [
    ("adamw", {}),
    ("adamw", {"every_n_steps": 3}),
    ("nadam_accumulate_ema_clip", {}),
] + ([("adamw", {"steps_per_execution": 3})] if BACKEND != "torch" else []) + (
    [("adamw", {"jit_compile": True})] if BACKEND == "torch" else []
)
INTERFERENCE_OPTIMIZERS = {
    "adamw": lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.05),
    "nadam_accumulate_ema_clip": lambda: keras.optimizers.Nadam(
        1e-2, gradient_accumulation_steps=2, use_ema=True, clipnorm=0.5
    ),
}


@pytest.mark.parametrize("name,kwargs", INTERFERENCE, ids=[f"{n}-{k}" for n, k in INTERFERENCE])
def test_zero_interference_bit_identical_weights(tmp_path, name, kwargs):
    deterministic()
    kwargs = dict(kwargs)
    every = kwargs.pop("every_n_steps", 1)
    without = train(functional, None, optimizer=INTERFERENCE_OPTIMIZERS[name](), **kwargs)
    with_cb = train(functional, tmp_path, optimizer=INTERFERENCE_OPTIMIZERS[name](), every_n_steps=every, **kwargs)
    for a, b in zip(without.trainable_variables, with_cb.trainable_variables):
        assert a.path == b.path
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b), err_msg=a.path)
        assert np.any(to_numpy(a) != 0)
    run = tb_stepsize.load(str(tmp_path))
    updates = 12 // (2 if "accumulate" in name else 1)
    assert list(run.steps) == list(range(1, updates + 1, every))
    assert np.all(np.isfinite(run.matrix("step", "p50")))


def test_every_n_steps_logs_first_then_every_nth(tmp_path):
    train(sequential(), tmp_path, every_n_steps=5, epochs=3)  # 18 updates
    assert list(tb_stepsize.load(str(tmp_path)).steps) == [1, 6, 11, 16]


@pytest.mark.skipif(BACKEND == "torch", reason="Keras refuses steps_per_execution > 1 on torch")
def test_steps_per_execution_logs_single_updates(tmp_path):
    train(sequential(), tmp_path / "spe1", every_n_steps=2)
    train(sequential(), tmp_path / "spe4", every_n_steps=2, steps_per_execution=4)
    one, four = tb_stepsize.load(str(tmp_path / "spe1")), tb_stepsize.load(str(tmp_path / "spe4"))
    assert list(one.steps) == list(four.steps) == [1, 3, 5, 7, 9, 11]
    for metric in one.metrics:
        np.testing.assert_allclose(one.values[metric], four.values[metric], rtol=1e-5, equal_nan=True)


@pytest.mark.parametrize("build", [sequential, functional, Subclassed], ids=["sequential", "functional", "subclassed"])
def test_model_kinds_rows_in_model_order(tmp_path, build):
    model = train(build(), tmp_path, epochs=1)
    run = tb_stepsize.load(str(tmp_path))
    assert run.layers == [v.path for v in model.trainable_variables]
    # An unbuilt subclassed model is recorded from the update after its first step.
    first = 2 if build is Subclassed and BACKEND == "tensorflow" else 1
    assert list(run.steps) == list(range(first, 7))
    assert np.all(run.matrix("step", "p50") > 0)


def test_frozen_layers_and_include_exclude(tmp_path):
    model = functional()
    model.get_layer("norm").trainable = False
    train(model, tmp_path / "frozen", epochs=1)
    assert not any("norm" in p for p in tb_stepsize.load(str(tmp_path / "frozen")).layers)
    train(functional(), tmp_path / "inc", epochs=1, cb_kwargs={"include": "kernel", "exclude": "^out/"})
    assert [p.split("/")[-1] for p in tb_stepsize.load(str(tmp_path / "inc")).layers] == ["kernel"]


def test_fit_twice_continues_steps_and_same_callback_resumes(tmp_path):
    model = sequential()
    model.compile(optimizer="adam", loss="mse")
    callback = tb_stepsize.StepSizeCallback(str(tmp_path / "a"), every_n_steps=2)
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    traced = model.train_function
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0)  # not recorded: updates 7..12
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    assert model.train_function is traced
    callback.close()
    assert list(tb_stepsize.load(str(tmp_path / "a")).steps) == [1, 3, 5, 13, 15, 17]
    # A new callback on the same model continues the step axis.
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0, callbacks=[tb_stepsize.StepSizeCallback(str(tmp_path / "b"), every_n_steps=4)])
    assert list(tb_stepsize.load(str(tmp_path / "b")).steps) == [21]


def test_gradient_accumulation_logs_real_updates_only(tmp_path):
    recorder = WeightRecorder()
    optimizer = keras.optimizers.AdamW(1e-2, weight_decay=0.1, gradient_accumulation_steps=3)
    train(sequential(), tmp_path, optimizer=optimizer, epochs=2, callbacks=[recorder])
    run = tb_stepsize.load(str(tmp_path))
    assert list(run.steps) == [1, 2, 3, 4]  # 12 calls, an update every 3rd
    for col, t in enumerate(run.steps):
        for row, (old, new) in enumerate(zip(recorder.weights[3 * t - 3], recorder.weights[3 * t])):
            np.testing.assert_allclose(run.matrix("step", "max")[row, col], np.abs(old - new).max(), rtol=1e-6)
    np.testing.assert_allclose(run.matrix("intended_step", "max"), run.matrix("step", "max"), rtol=1e-4)


def test_loss_scale_skipped_steps_are_not_logged(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-2), initial_scale=2.0**20)
        train(sequential(), tmp_path, optimizer=optimizer, epochs=2)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    run = tb_stepsize.load(str(tmp_path))
    updates = int(to_numpy(optimizer.iterations))
    assert 0 < updates < 12, "the huge initial loss scale should skip some steps"
    assert list(run.steps) == list(range(1, updates + 1))
    assert np.all(run.matrix("step", "max") > 0)


OTHER_OPTIMIZERS = {
    "rmsprop_centered_momentum": lambda: keras.optimizers.RMSprop(1e-3, momentum=0.5, centered=True),
    "adagrad": lambda: keras.optimizers.Adagrad(0.01),
    "lion": lambda: keras.optimizers.Lion(1e-3),
    "adamw_exclude_ema_clip": lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.1, use_ema=True, global_clipnorm=1.0),
    "adam_clipnorm": lambda: keras.optimizers.Adam(1e-2, clipnorm=0.1),
}


@pytest.mark.parametrize("name", list(OTHER_OPTIMIZERS))
def test_other_optimizers_record_step(tmp_path, name):
    optimizer = OTHER_OPTIMIZERS[name]()
    if name.startswith("adamw_exclude"):
        optimizer.exclude_from_weight_decay(var_names=["bias"])
    recorder = WeightRecorder()
    train(sequential(), tmp_path, optimizer=optimizer, epochs=1, callbacks=[recorder])
    run = tb_stepsize.load(str(tmp_path))
    assert list(run.steps) == list(range(1, 7))
    for col, t in enumerate(run.steps):
        for row, (old, new) in enumerate(zip(recorder.weights[t - 1], recorder.weights[t])):
            np.testing.assert_allclose(run.matrix("step", "max")[row, col], np.abs(old - new).max(), rtol=1e-6)


def test_metrics_subset_records_only_those_with_the_same_values(tmp_path):
    train(sequential, tmp_path / "all", epochs=1)
    train(sequential, tmp_path / "some", epochs=1, cb_kwargs={"metrics": ["update_ratio", "effective_lr"]})
    full, some = tb_stepsize.load(str(tmp_path / "all")), tb_stepsize.load(str(tmp_path / "some"))
    assert set(full.stats) == {"step", "effective_lr", "intended_step", "update_ratio", "lost_fraction", "second_moment_rms"}
    assert set(some.stats) == {"step", "effective_lr", "update_ratio"}
    for metric, stats in some.stats.items():
        for stat in stats:
            np.testing.assert_array_equal(some.matrix(metric, stat), full.matrix(metric, stat))


def test_loss_and_learning_rate_scalars(tmp_path):
    from tb_stepsize import metadata

    train(sequential(), tmp_path, epochs=1, every_n_steps=2)
    import plugin_helpers

    scalars = plugin_helpers.read_scalars(str(tmp_path.parent), tmp_path.name, [metadata.LOSS_TAG, metadata.LEARNING_RATE_TAG])
    assert [s for s, _ in scalars[metadata.LEARNING_RATE_TAG]] == [1, 3, 5]
    np.testing.assert_allclose([v for _, v in scalars[metadata.LEARNING_RATE_TAG]], 1e-2, rtol=1e-6)
    assert [s for s, _ in scalars[metadata.LOSS_TAG]] == [1, 3, 5]


# ---------------------------------------------------------- attach errors
@pytest.mark.parametrize("case", ["unwritable", "no_trainable", "not_keras"])
def test_bad_input_warns_once_and_training_goes_on(tmp_path, case):
    model = sequential()
    log_dir = tmp_path / "run"
    if case == "unwritable":
        (tmp_path / "file").write_text("x")
        log_dir = tmp_path / "file" / "run"
    if case == "no_trainable":
        model.trainable = False
    model.compile(optimizer="adam", loss="mse")
    if case == "not_keras":
        with pytest.warns(UserWarning, match="cannot decompose optimizer object"):
            monitor = tb_stepsize.StepSizeMonitor(str(log_dir), object(), model.trainable_variables)
        assert not monitor.enabled and not log_dir.exists()
        monitor.after_steps(5)
        monitor.close()
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(X, Y, epochs=1, verbose=0, callbacks=[tb_stepsize.StepSizeCallback(str(log_dir))])
    ours = [str(w.message) for w in caught if str(w.message).startswith("tb_stepsize")]
    assert len(ours) == 1, ours
    assert {"unwritable": "not writable", "no_trainable": "no trainable variables"}[case] in ours[0]
    assert len(history.history["loss"]) == 1
    with pytest.raises(tb_stepsize.MonitorError, match="not writable|no trainable"):
        tb_stepsize.StepSizeMonitor(str(log_dir), model.optimizer, model.trainable_variables, on_error="raise")


def test_write_failure_warns_once_and_training_goes_on(tmp_path, monkeypatch):
    from tb_stepsize import summary

    def full_disk(self, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(summary.StepWriter, "write", full_disk)
    model = sequential()
    model.compile(optimizer="adam", loss="mse")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(X, Y, epochs=2, verbose=0, callbacks=[tb_stepsize.StepSizeCallback(str(tmp_path))])
    ours = [str(w.message) for w in caught if "tb_stepsize" in str(w.message)]
    assert len(ours) == 1 and "No space left on device" in ours[0], ours
    assert len(history.history["loss"]) == 2


# ----------------------------------------------------- examples, reading
CUSTOM_LOOP_DEMO = {"tensorflow": "custom_loop.py", "jax": "custom_loop_jax.py", "torch": "custom_loop_torch.py"}


def test_custom_loop_example_runs(tmp_path):
    demo = os.path.join(DEMO, CUSTOM_LOOP_DEMO[BACKEND])
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "backend_runner.py"), BACKEND, "--script", demo, "--logdir", str(tmp_path), "--steps", "25"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tb_stepsize.load(str(tmp_path))
    assert list(run.steps) == [1, 11, 21]
    assert set(run.metrics) >= {"step", "effective_lr", "update_ratio"}
    assert np.all(run.matrix("step", "p50") > 0)


@pytest.mark.skipif(BACKEND == "tensorflow", reason="test_demo_findings runs the demo on TensorFlow")
def test_demo_writes_its_runs(tmp_path):
    demo = os.path.join(DEMO, "train.py")
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "backend_runner.py"), BACKEND, "--script", demo]
        + ["--backend", BACKEND, "--logdir", str(tmp_path), "--epochs", "1", "--samples", "256"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    runs = tb_stepsize.load(str(tmp_path))
    assert sorted(runs) == ["cnn_adam", "cnn_sgd", "mlp_bfloat16", "transformer_adamw"]
    assert list(runs["cnn_adam"].steps) == [1, 2, 3, 4]
    assert set(runs["transformer_adamw"].metrics) == {"step", "effective_lr", "intended_step", "update_ratio", "lost_fraction", "second_moment_rms"}
    # Rounded away in bfloat16 (on TensorFlow all of it: its bfloat16 beta_2 is 1; XLA keeps
    # Adam's intermediates in float32 and rounds once, so on JAX a few elements still move).
    assert np.all(runs["mlp_bfloat16"].matrix("lost_fraction", "value") > 0.99)


def test_run_reads_in_load_and_in_tensorboard(tmp_path):
    import plugin_helpers

    run_dir = tmp_path / "run1"
    model = train(functional(), run_dir, epochs=1, every_n_steps=2)
    run = tb_stepsize.load(str(run_dir))
    assert run.layers == [v.path for v in model.trainable_variables] and list(run.steps) == [1, 3, 5]
    client, _, _ = plugin_helpers.make_app(str(tmp_path))
    base = "/data/plugin/stepsize"
    tags = plugin_helpers.get_json(client, f"{base}/tags")
    assert list(tags) == ["run1"] and tags["run1"]["layers"] == run.layers and tags["run1"]["metrics"] == run.metrics
    grid = plugin_helpers.get_json(client, f"{base}/heatmap?run=run1&metric=step&stat=p50")
    assert grid["layers"] == run.layers and grid["steps"] == [1, 3, 5]
    matrix = run.matrix("step", "p50")
    assert [[float(v) for v in row] for row in matrix] == grid["values"]


# ----------------------------------------------------------- distributed
def _two_devices():
    if BACKEND != "jax":
        return False
    import jax

    return jax.device_count() >= 2


@pytest.mark.skipif(not _two_devices(), reason="needs JAX with 2 devices (test_backends sets XLA_FLAGS)")
@pytest.mark.parametrize("kind", ["data_parallel", "model_parallel"])
def test_distributed_statistics_equal_one_device(tmp_path, kind):
    import jax

    def fit_with(distribution, log_dir):
        previous = keras.distribution.distribution()
        keras.distribution.set_distribution(distribution)
        try:
            return train(functional, log_dir, epochs=1)
        finally:
            keras.distribution.set_distribution(previous)

    single = fit_with(None, tmp_path / "one")
    devices = jax.devices()
    if kind == "data_parallel":
        distribution = keras.distribution.DataParallel(devices=devices)
    else:
        mesh = keras.distribution.DeviceMesh((1, 2), ["batch", "model"], devices=devices)
        layout = keras.distribution.LayoutMap(mesh)
        layout["hidden/kernel"] = (None, "model")
        layout["hidden/bias"] = ("model",)
        layout["out/kernel"] = ("model", None)
        distribution = keras.distribution.ModelParallel(layout_map=layout, batch_dim_name="batch")
    spread = fit_with(distribution, tmp_path / "two")
    if kind == "model_parallel":
        kernel = next(v for v in spread.trainable_variables if v.path.endswith("hidden/kernel"))
        assert len(kernel.value.sharding.device_set) == 2 and not kernel.value.sharding.is_fully_replicated
    one, two = tb_stepsize.load(str(tmp_path / "one")), tb_stepsize.load(str(tmp_path / "two"))
    assert one.layers == two.layers and list(one.steps) == list(two.steps) == list(range(1, 7))
    for metric in one.metrics:
        np.testing.assert_allclose(two.values[metric], one.values[metric], rtol=1e-4, atol=0, equal_nan=True, err_msg=metric)
    for path in one.layers:  # every element counted once: the shards' histograms added up
        (_, h1), (_, h2) = one.histograms("step", path), two.histograms("step", path)
        for a, b in zip(h1, h2):
            assert a[:, 2].sum() == b[:, 2].sum() == int(np.prod(next(v.shape for v in single.trainable_variables if v.path == path)))
    for a, b in zip(single.trainable_variables, spread.trainable_variables):
        np.testing.assert_allclose(to_numpy(a), to_numpy(b), rtol=1e-5, atol=1e-6)

"""`StepSizeCallback` inside `model.fit`: semantics, interference, errors."""

import os
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import tb_stepsize  # noqa: E402
from fit_helpers import X, Y, Subclassed, WeightRecorder, functional, sequential, train  # noqa: E402

KERAS_VERSION = tuple(int(part) for part in keras.__version__.split(".")[:2])


def test_step_matches_weight_differences_recorded_around_fit(tmp_path):
    recorder = WeightRecorder()
    train(sequential(), tmp_path, callbacks=[recorder], optimizer=keras.optimizers.SGD(0.1, momentum=0.9))
    run = tb_stepsize.load(str(tmp_path))
    assert list(run.steps) == list(range(1, 13))
    for col, t in enumerate(run.steps):
        for row, (old, new) in enumerate(zip(recorder.weights[t - 1], recorder.weights[t])):
            step = np.abs(old - new)
            np.testing.assert_allclose(run.matrix("step", "max")[row, col], step.max(), rtol=1e-6)
            np.testing.assert_allclose(run.matrix("step", "mean")[row, col], step.mean(), rtol=1e-5)


ZERO_INTERFERENCE = """
import sys, numpy as np, keras, tensorflow as tf, tb_stepsize
tf.config.experimental.enable_op_determinism()
sys.path.insert(0, {tests!r})
from test_callback import functional, train
without = train(functional, None, optimizer=keras.optimizers.AdamW(1e-2, weight_decay=0.05))
with_cb = train(functional, {log_dir!r}, optimizer=keras.optimizers.AdamW(1e-2, weight_decay=0.05))
for a, b in zip(without.trainable_variables, with_cb.trainable_variables):
    assert a.path == b.path
    np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert np.any(a.numpy() != 0)
print("identical", len(with_cb.trainable_variables))
"""


def test_zero_interference_bit_identical_weights(tmp_path):
    # Op determinism is process-wide (and turns XLA off), so it gets its own process.
    import os

    script = ZERO_INTERFERENCE.format(tests=os.path.dirname(os.path.abspath(__file__)), log_dir=str(tmp_path))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "identical 6" in proc.stdout
    assert len(tb_stepsize.load(str(tmp_path)).steps) == 12


def test_every_n_steps_logs_first_then_every_nth(tmp_path):
    train(sequential(), tmp_path, every_n_steps=5, epochs=3)  # 18 updates
    assert list(tb_stepsize.load(str(tmp_path)).steps) == [1, 6, 11, 16]


def test_steps_per_execution_logs_single_updates(tmp_path):
    train(sequential(), tmp_path / "spe1", every_n_steps=2)
    train(sequential(), tmp_path / "spe4", every_n_steps=2, steps_per_execution=4)
    one, four = tb_stepsize.load(str(tmp_path / "spe1")), tb_stepsize.load(str(tmp_path / "spe4"))
    assert list(one.steps) == list(four.steps) == [1, 3, 5, 7, 9, 11]
    for metric in one.metrics:
        np.testing.assert_allclose(one.values[metric], four.values[metric], rtol=1e-5, equal_nan=True)


def test_jit_compile(tmp_path):
    model = train(functional(), tmp_path, jit_compile=True, every_n_steps=3)
    assert model.jit_compile is True
    run = tb_stepsize.load(str(tmp_path))
    assert list(run.steps) == [1, 4, 7, 10]
    assert np.all(np.isfinite(run.matrix("step", "p50")))


@pytest.mark.parametrize("build", [sequential, functional, Subclassed], ids=["sequential", "functional", "subclassed"])
def test_model_kinds_rows_in_model_order(tmp_path, build):
    model = train(build(), tmp_path, epochs=1)
    run = tb_stepsize.load(str(tmp_path))
    assert run.layers == [v.path for v in model.trainable_variables]
    # An unbuilt subclassed model is recorded from the update after its first step.
    first = 2 if build is Subclassed else 1
    assert list(run.steps) == list(range(first, 7))
    assert np.all(run.matrix("step", "p50") > 0)


def test_frozen_layers_and_include_exclude(tmp_path):
    model = functional()
    model.get_layer("norm").trainable = False
    train(model, tmp_path / "frozen", epochs=1)
    assert not any("norm" in p for p in tb_stepsize.load(str(tmp_path / "frozen")).layers)
    train(functional(), tmp_path / "inc", epochs=1, cb_kwargs={"include": "kernel", "exclude": "^out/"})
    assert [p.split("/")[-1] for p in tb_stepsize.load(str(tmp_path / "inc")).layers] == ["kernel"]


def test_fit_twice_continues_steps(tmp_path):
    model = sequential()
    train(model, tmp_path, every_n_steps=4, epochs=1)  # updates 1..6
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0, callbacks=[tb_stepsize.StepSizeCallback(str(tmp_path), every_n_steps=4)])
    assert list(tb_stepsize.load(str(tmp_path)).steps) == [1, 5, 9]
    # A later fit without the callback records nothing.
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0)
    assert list(tb_stepsize.load(str(tmp_path)).steps) == [1, 5, 9]


def test_same_callback_in_repeated_fits_resumes_without_retracing(tmp_path):
    model = sequential()
    model.compile(optimizer="adam", loss="mse")
    callback = tb_stepsize.StepSizeCallback(str(tmp_path), every_n_steps=2)
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    traced = model.train_function
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0)  # not recorded: updates 7..12
    model.fit(X, Y, batch_size=16, epochs=1, verbose=0, callbacks=[callback])
    assert model.train_function is traced
    callback.close()
    assert list(tb_stepsize.load(str(tmp_path)).steps) == [1, 3, 5, 13, 15, 17]


def test_gradient_accumulation_logs_real_updates_only(tmp_path):
    recorder = WeightRecorder()
    optimizer = keras.optimizers.AdamW(1e-2, weight_decay=0.1, gradient_accumulation_steps=3)
    train(sequential(), tmp_path, optimizer=optimizer, epochs=2, callbacks=[recorder])
    run = tb_stepsize.load(str(tmp_path))
    assert list(run.steps) == [1, 2, 3, 4]  # 12 calls, an update every 3rd
    for col, t in enumerate(run.steps):  # update t is call 3t; the calls between only accumulate
        for row, (old, new) in enumerate(zip(recorder.weights[3 * t - 3], recorder.weights[3 * t])):
            np.testing.assert_allclose(run.matrix("step", "max")[row, col], np.abs(old - new).max(), rtol=1e-6)
    # Adam's own update (from the averaged gradients) plus decay is what was applied, to float32 rounding.
    np.testing.assert_allclose(run.matrix("intended_step", "max"), run.matrix("step", "max"), rtol=1e-4)


def test_loss_scale_skipped_steps_are_not_logged(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-2), initial_scale=2.0**20)
        train(sequential(), tmp_path, optimizer=optimizer, epochs=2)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    run = tb_stepsize.load(str(tmp_path))
    updates = int(optimizer.iterations.numpy())
    assert 0 < updates < 12, "the huge initial loss scale should skip some steps"
    assert list(run.steps) == list(range(1, updates + 1))
    assert np.all(run.matrix("step", "max") > 0)


@pytest.mark.parametrize(
    "case",
    ["unwritable", "not_keras", "no_trainable"],
)
def test_bad_input_warns_once_and_training_goes_on(tmp_path, case):
    model = sequential()
    log_dir = tmp_path / "run"
    if case == "unwritable":
        (tmp_path / "file").write_text("x")
        log_dir = tmp_path / "file" / "run"  # a directory below a regular file
    if case == "no_trainable":
        model.trainable = False
    keras.utils.set_random_seed(3)
    model.compile(optimizer="adam", loss="mse")
    callback = tb_stepsize.StepSizeCallback(str(log_dir))
    if case == "not_keras":
        with pytest.warns(UserWarning, match="cannot decompose optimizer object"):
            monitor = tb_stepsize.StepSizeMonitor(str(log_dir), object(), model.trainable_variables)
        assert not monitor.enabled
        monitor.after_steps(5)  # a disabled monitor is inert
        monitor.close()
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = model.fit(X, Y, epochs=1, verbose=0, callbacks=[callback])
    ours = [w for w in caught if "tb_stepsize" in str(w.message)]
    assert len(ours) == 1, [str(w.message) for w in caught]
    assert {"unwritable": "not writable", "no_trainable": "no trainable variables"}[case] in str(ours[0].message)
    assert len(history.history["loss"]) == 1
    with pytest.raises(RuntimeError, match="not writable|no trainable"):
        tb_stepsize.StepSizeMonitor(str(log_dir), model.optimizer, model.trainable_variables, on_error="raise")


def test_interrupted_fit_keeps_what_was_logged(tmp_path):
    script = textwrap.dedent(
        f"""
        import numpy as np, keras, tb_stepsize

        class Stop(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                if batch == 6:
                    raise KeyboardInterrupt

        keras.utils.set_random_seed(0)
        m = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
        m.compile(optimizer="adam", loss="mse")
        x = np.ones((160, 4), "float32")
        m.fit(x, x[:, :3], batch_size=8, verbose=0,
              callbacks=[tb_stepsize.StepSizeCallback({str(tmp_path)!r}, flush_secs=1000), Stop()])
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "KeyboardInterrupt" in proc.stderr
    assert list(tb_stepsize.load(str(tmp_path)).steps) == list(range(1, 8))


def test_custom_loop_example_runs_and_matches_fit_layout(tmp_path):
    demo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo", "custom_loop.py")
    proc = subprocess.run(
        [sys.executable, demo, "--logdir", str(tmp_path), "--steps", "25"], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tb_stepsize.load(str(tmp_path))
    assert list(run.steps) == [1, 11, 21]
    assert set(run.metrics) >= {"step", "effective_lr", "update_ratio"}
    assert np.all(run.matrix("step", "p50") > 0)


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


ALL_OPTIMIZERS = {
    "sgd": lambda: keras.optimizers.SGD(0.01),
    "rmsprop_centered_momentum": lambda: keras.optimizers.RMSprop(1e-3, momentum=0.5, centered=True),
    "adagrad": lambda: keras.optimizers.Adagrad(0.01),
    "adadelta": lambda: keras.optimizers.Adadelta(1.0),
    "ftrl": lambda: keras.optimizers.Ftrl(0.01),
    "lion": lambda: keras.optimizers.Lion(1e-3),
    "lamb": lambda: keras.optimizers.Lamb(1e-3),
    "adafactor": lambda: keras.optimizers.Adafactor(1e-2),
    "muon": lambda: keras.optimizers.Muon(1e-2),
    "adamw_exclude_ema_clip": lambda: keras.optimizers.AdamW(
        1e-2, weight_decay=0.1, use_ema=True, global_clipnorm=1.0
    ),
    "adam_clipnorm": lambda: keras.optimizers.Adam(1e-2, clipnorm=0.1),
}


# Optimizers that need a newer Keras than the oldest supported one.
NEEDS_KERAS = {
    "muon": ((3, 15), "Keras' own Muon fails on `variable.path` before Keras 3.15, with or without the callback"),
}


def _optimizer_param(name):
    if name not in NEEDS_KERAS:
        return name
    version, reason = NEEDS_KERAS[name]
    return pytest.param(name, marks=pytest.mark.skipif(KERAS_VERSION < version, reason=reason))


@pytest.mark.parametrize("name", [_optimizer_param(name) for name in ALL_OPTIMIZERS])
def test_every_keras_optimizer_records_step(tmp_path, name):
    optimizer = ALL_OPTIMIZERS[name]()
    if name.startswith("adamw_exclude"):
        optimizer.exclude_from_weight_decay(var_names=["bias"])
    recorder = WeightRecorder()
    train(sequential(), tmp_path, optimizer=optimizer, epochs=1, callbacks=[recorder])
    run = tb_stepsize.load(str(tmp_path))
    assert list(run.steps) == list(range(1, 7))
    for col, t in enumerate(run.steps):
        for row, (old, new) in enumerate(zip(recorder.weights[t - 1], recorder.weights[t])):
            np.testing.assert_allclose(run.matrix("step", "max")[row, col], np.abs(old - new).max(), rtol=1e-6)


class WithUnusedLayer(keras.Model):
    def __init__(self):
        super().__init__()
        self.used = keras.layers.Dense(2, name="used")
        self.unused = keras.layers.Dense(3, name="unused")
        self.used.build((None, 8))
        self.unused.build((None, 8))

    def call(self, x):
        return self.used(x)


def test_variable_without_gradient_is_missing_not_nan(tmp_path):
    model = WithUnusedLayer()
    model.build((None, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns about the missing gradients
        train(model, tmp_path, epochs=1)
    run = tb_stepsize.load(str(tmp_path))
    rows = {path: i for i, path in enumerate(run.layers)}
    unused = [i for p, i in rows.items() if "unused" in p]
    used = [i for p, i in rows.items() if "unused" not in p]
    assert unused and used
    assert not run.present["step"][unused].any() and not run.present["update_ratio"][unused].any()
    assert run.present["step"][used].all()
    assert np.all(run.matrix("step", "p50")[used] > 0)


def many_variables_step(n, log_dir=None):
    """A custom-loop train step over `n` variables of 16 elements (monitored with `log_dir`)."""
    variables = [keras.Variable(np.linspace(-1, 1, 16).astype("float32") * (i + 1), name=f"w{i}") for i in range(n)]
    optimizer = keras.optimizers.Adam(1e-2)
    optimizer.build(variables)
    monitor = tb_stepsize.StepSizeMonitor(log_dir, optimizer) if log_dir else None

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.add_n([tf.reduce_sum(tf.square(v.value - 0.5)) for v in variables])
        optimizer.apply(tape.gradient(loss, [v.value for v in variables]), variables)

    return step, variables, monitor


def test_small_variables_add_no_ops_per_variable(tmp_path):
    """Small variables are recorded in bulk: the monitor adds the same number
    of ops to a train step over 10 variables as over 40 (Keras itself adds
    dozens per variable), so unlogged steps cost nothing per variable."""
    added = {}
    for n in (10, 40):
        plain, _, _ = many_variables_step(n)
        step, _, monitor = many_variables_step(n, str(tmp_path / str(n)))
        graph_ops = lambda f: len(f.get_concrete_function().graph.get_operations())  # noqa: E731
        added[n] = graph_ops(step) - graph_ops(plain), graph_ops(plain)
        monitor.close()
    assert added[10][0] == added[40][0] > 0
    assert added[40][1] - added[10][1] > 30 * 20  # Keras' own ops do grow per variable

    step, variables, monitor = many_variables_step(40, str(tmp_path / "values"))
    weights = [np.stack([v.numpy() for v in variables])]
    for _ in range(2):
        step()
        weights.append(np.stack([v.numpy() for v in variables]))
    monitor.after_steps(2)
    monitor.close()
    run = tb_stepsize.load(str(tmp_path / "values"))
    assert run.steps.tolist() == [1, 2] and len(run.layers) == 40
    applied = np.abs(np.diff(np.stack(weights), axis=0))  # [step, variable, element]
    for stat, reduce in (("max", np.max), ("min", np.min), ("mean", np.mean)):
        np.testing.assert_allclose(run.matrix("step", stat), reduce(applied, axis=2).T, rtol=1e-6)


def test_metrics_subset_records_only_those_with_the_same_values(tmp_path):
    train(sequential, tmp_path / "all", epochs=1)
    train(sequential, tmp_path / "some", epochs=1, cb_kwargs={"metrics": ["update_ratio", "effective_lr"]})
    full, some = tb_stepsize.load(str(tmp_path / "all")), tb_stepsize.load(str(tmp_path / "some"))
    assert set(full.stats) == {"step", "effective_lr", "intended_step", "update_ratio", "lost_fraction", "second_moment_rms"}
    assert set(some.stats) == {"step", "effective_lr", "update_ratio"}  # step always
    for metric, stats in some.stats.items():
        for stat in stats:
            np.testing.assert_array_equal(some.matrix(metric, stat), full.matrix(metric, stat))
    with pytest.raises(ValueError, match="metrics"):
        tb_stepsize.StepSizeMonitor(str(tmp_path / "bad"), keras.optimizers.Adam(), metrics=["stepp"])


def test_mixed_precision_demo_runs(tmp_path):
    demo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo", "mixed_precision.py")
    proc = subprocess.run([sys.executable, demo, "--logdir", str(tmp_path), "--epochs", "1"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tb_stepsize.load(str(tmp_path))
    skipped = 16 - len(run.steps)
    assert skipped > 0 and f"{len(run.steps)} updates logged" in proc.stdout, proc.stdout
    # Keras counts only applied updates: the logged steps are 1..n, every one a real update.
    assert list(run.steps) == list(range(1, len(run.steps) + 1))
    assert np.all(run.matrix("step", "max") > 0)


def test_eager_custom_loop_is_recorded(tmp_path):
    """`optimizer.apply` called eagerly (no tf.function): logged steps equal the weights' change."""
    model = sequential()
    model.build((None, 8))
    optimizer = keras.optimizers.Adam(1e-2)
    optimizer.build(model.trainable_variables)
    loss_fn = keras.losses.MeanSquaredError()
    weights = [[v.numpy().copy() for v in model.trainable_variables]]
    with tb_stepsize.StepSizeMonitor(str(tmp_path), optimizer, every_n_steps=2, on_error="raise") as monitor:
        for i in range(5):
            with tf.GradientTape() as tape:
                loss = loss_fn(Y[i * 16 : (i + 1) * 16], model(X[i * 16 : (i + 1) * 16]))
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply(grads, model.trainable_variables)
            monitor.after_steps(loss=loss)
            weights.append([v.numpy().copy() for v in model.trainable_variables])
    run = tb_stepsize.load(str(tmp_path))
    assert list(run.steps) == [1, 3, 5]
    for col, t in enumerate(run.steps):
        for row, (old, new) in enumerate(zip(weights[t - 1], weights[t])):
            np.testing.assert_allclose(run.matrix("step", "max")[row, col], np.abs(old - new).max(), rtol=1e-6)

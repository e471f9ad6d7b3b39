"""Recall of the findings rules on runs the real callback records.

Each test trains a tiny Keras model built to show one problem, with
`StepSizeCallback`, then reads the run back (`tb_stepsize.load`) and checks
that `findings.evaluate` names the right layer with an onset within one
logged step of the truth.  The last tests check the training-time path:
`on_finding`, `logs["stepsize_findings"]` and `stop_on`.
"""

import warnings

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import tb_stepsize  # noqa: E402
from tb_stepsize import findings  # noqa: E402

BATCH = 16


class LogsRecorder(keras.callbacks.Callback):
    """What later callbacks see in `logs` (placed after ours)."""

    def __init__(self):
        super().__init__()
        self.batches, self.epochs = [], []

    def on_train_batch_end(self, batch, logs=None):
        self.batches.append(dict(logs or {}))

    def on_epoch_end(self, epoch, logs=None):
        self.epochs.append(dict(logs or {}))


def fit(model, x, y, log_dir, optimizer, epochs=1, every_n_steps=1, extra=(), **kwargs):
    """Train `model` on (x, y) in order, one update per BATCH samples; the callback and the history."""
    model.compile(optimizer=optimizer, loss="mse")
    callback = tb_stepsize.StepSizeCallback(str(log_dir), every_n_steps=every_n_steps, flush_secs=0, **kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the findings' own warnings
        history = model.fit(x, y, batch_size=BATCH, epochs=epochs, shuffle=False, verbose=0, callbacks=[callback, *extra])
    callback.close()
    return callback, history


def found(log_dir):
    return findings.evaluate(tb_stepsize.load(str(log_dir)))


def only(found_list, kind, layer):
    """The finding of `kind` on `layer`."""
    match = [f for f in found_list if f.kind == kind and f.layer == layer]
    assert len(match) == 1, [(f.kind, f.layer) for f in found_list]
    return match[0]


def data(n=32 * BATCH, features=8, outputs=1, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, features)).astype("float32"), rng.standard_normal((n, outputs)).astype("float32")


# ------------------------------------------------------------------ models


def zero_gradient_model():
    """`blocked`'s output is multiplied by 0: its weights get a zero gradient."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="tanh", name="hidden")(inputs)
    blocked = keras.layers.Lambda(lambda t: t * 0.0, name="times_zero")(keras.layers.Dense(16, name="blocked")(h))
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(keras.layers.Add()([h, blocked])))


def nan_data(at_step):
    """Data whose batch `at_step` (1-based: the update it feeds) holds a NaN."""
    x, y = data()
    x[(at_step - 1) * BATCH, 0] = np.nan
    return x, y


def small_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="tanh", name="hidden")(inputs)
    return keras.Model(inputs, keras.layers.Dense(1, name="out")(h))


# ------------------------------------------------------------------- rules


def test_zero_gradient_layer_is_no_update(tmp_path):
    fit(zero_gradient_model(), *data(), tmp_path, keras.optimizers.Adam(1e-3))
    got = found(tmp_path)
    for layer in ("blocked/kernel", "blocked/bias"):
        f = only(got, "no_update", layer)
        assert f.severity == "error" and f.first_step == 1
        assert "gradient is zero" in f.message
    assert not [f for f in got if f.kind == "no_update" and not f.layer.startswith("blocked/")]


def test_bfloat16_weights_are_a_run_level_no_update_by_rounding(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(32, activation="relu", dtype="bfloat16", name="hidden"),
            keras.layers.Dense(1, dtype="bfloat16", name="out"),
        ],
        name="mlp",
    )
    fit(model, *data(), tmp_path, keras.optimizers.Adam(1e-3))
    got = found(tmp_path)
    f = only(got, "no_update", None)
    assert f.severity == "error" and f.first_step == 1
    assert "rounded away in bfloat16" in f.message
    assert set(f.layers) == {"mlp/hidden/kernel", "mlp/hidden/bias", "mlp/out/kernel", "mlp/out/bias"}


def test_learning_rate_too_high_for_one_layer_is_ratio_high(tmp_path):
    """`scaled`'s kernel starts 1000x smaller (its output is scaled back up): Adam's
    step (~lr per element) is then ~1 of its size per step instead of ~1e-3."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="tanh", name="hidden")(inputs)
    small_init = keras.initializers.RandomNormal(stddev=1e-3)
    s = keras.layers.Dense(16, kernel_initializer=small_init, name="scaled")(h)
    s = keras.layers.Lambda(lambda t: t * 1000.0, name="times_1000")(s)
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(keras.layers.Add()([h, s])))
    fit(model, *data(), tmp_path, keras.optimizers.Adam(1e-3))
    got = found(tmp_path)
    f = only(got, "ratio_high", "scaled/kernel")
    assert f.first_step == 1 and f.value > 1e-2
    assert not [g for g in got if g.kind == "ratio_high" and g.layer.endswith("kernel") and g.layer != "scaled/kernel"]


@pytest.mark.parametrize("at_step", [12])
def test_nan_at_a_known_step_is_nonfinite_there(tmp_path, at_step):
    fit(small_model(), *nan_data(at_step), tmp_path, keras.optimizers.Adam(1e-3))
    got = found(tmp_path)
    f = only(got, "nonfinite", "hidden/kernel")
    assert f.severity == "error" and f.first_step == at_step
    assert got[0] is f  # an error, and the earliest: listed first
    assert "hidden/kernel" in f.layers and "out/kernel" in f.layers


def test_dead_relu_units_are_partly_frozen(tmp_path):
    """Three quarters of `relu`'s units have a bias of -100: never active, so their
    kernel columns never get a gradient (Adam's step is exactly 0 from step 1)."""
    keras.utils.set_random_seed(0)
    units = 16
    bias = np.zeros(units, "float32")
    bias[: 3 * units // 4] = -100.0
    inputs = keras.Input((8,))
    h = keras.layers.Dense(units, activation="relu", bias_initializer=keras.initializers.Constant(bias), name="relu")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(h))
    fit(model, *data(), tmp_path, keras.optimizers.Adam(1e-3))
    got = found(tmp_path)
    f = only(got, "partly_frozen", "relu/kernel")
    assert f.first_step == 1 and f.value == pytest.approx(0.75)
    assert not [g for g in got if g.severity == "error"]


def test_data_scale_jump_is_an_rms_spike_there(tmp_path):
    """Inputs 100x larger from update `at_step` on: Adam's second moment lags the
    10^4x larger gradient, so g / sqrt(v_hat) jumps at that step."""
    at_step = 80
    x, y = data(n=96 * BATCH)
    x[(at_step - 1) * BATCH :] *= 100.0
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    model = keras.Model(inputs, keras.layers.Dense(1, name="linear")(inputs))
    fit(model, x, y, tmp_path, keras.optimizers.Adam(1e-3))
    got = [f for f in found(tmp_path) if f.kind == "rms_spike"]
    assert len(got) == 1, got
    assert abs(got[0].first_step - at_step) <= 1
    assert "linear/kernel" in got[0].layers


# ------------------------------------------------ logging granularity


def test_every_tenth_step_gives_the_same_findings(tmp_path):
    """Logged every 10th step, the zero-gradient layers and a NaN at step 25 are found
    the same, with onsets at the first logged step at or after the truth."""
    at_step = 25
    for every in (1, 10):
        x, y = data(n=64 * BATCH)
        fit(zero_gradient_model(), x, y, tmp_path / f"zero{every}", keras.optimizers.Adam(1e-3), every_n_steps=every)
        fit(small_model(), *nan_data(at_step), tmp_path / f"nan{every}", keras.optimizers.Adam(1e-3), every_n_steps=every)
    for name in ("zero", "nan"):
        every_step, tenth = found(tmp_path / f"{name}1"), found(tmp_path / f"{name}10")
        errors = lambda got: {(f.kind, f.layer, f.first_step) for f in got if f.severity == "error"}  # noqa: E731
        if name == "zero":
            assert errors(tenth) == errors(every_step) == {("no_update", "blocked/kernel", 1), ("no_update", "blocked/bias", 1)}
        else:
            assert only(every_step, "nonfinite", "hidden/kernel").first_step == at_step
            assert at_step <= only(tenth, "nonfinite", "hidden/kernel").first_step < at_step + 10


# --------------------------------------------------- during training


def test_on_finding_gets_what_the_run_shows_and_logs_count_them(tmp_path):
    seen = []
    recorder = LogsRecorder()
    callback, history = fit(
        zero_gradient_model(), *data(), tmp_path, keras.optimizers.Adam(1e-3), epochs=2, extra=[recorder], on_finding=seen.append
    )
    after = found(tmp_path)
    assert {(f.kind, f.layer) for f in seen} == {(f.kind, f.layer) for f in after}
    assert len(seen) == len({(f.kind, f.layer) for f in seen})  # each once
    count = sum(f.severity != "info" for f in seen)
    assert count >= 2 and callback.monitor.findings == seen
    assert recorder.batches[0]["stepsize_findings"] == 0  # one logged step: too few to judge
    assert recorder.batches[-1]["stepsize_findings"] == count
    assert [e["stepsize_findings"] for e in recorder.epochs][-1] == count
    assert history.history["stepsize_findings"][-1] == count


def test_findings_are_warned_once(tmp_path):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        zero_gradient = zero_gradient_model()
        zero_gradient.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
        callback = tb_stepsize.StepSizeCallback(str(tmp_path), flush_secs=0)
        zero_gradient.fit(*data(), batch_size=BATCH, epochs=2, shuffle=False, verbose=0, callbacks=[callback])
        callback.close()
    texts = [str(w.message) for w in caught if str(w.message).startswith("tb_stepsize:")]
    blocked = [t for t in texts if "blocked/kernel has not moved" in t]
    assert len(blocked) == 1


def test_stop_on_nonfinite_stops_training_early(tmp_path):
    at_step = 12
    recorder = LogsRecorder()
    callback, _ = fit(
        small_model(), *nan_data(at_step), tmp_path, keras.optimizers.Adam(1e-3), epochs=3, extra=[recorder], stop_on=("nonfinite",)
    )
    assert len(recorder.batches) == at_step  # stopped at the batch that made the NaN (flush_secs=0: pulled at once)
    assert [f.kind for f in callback.monitor.findings] == ["nonfinite"]


def test_stop_on_names_are_checked(tmp_path):
    with pytest.raises(ValueError, match="unknown finding kinds"):
        tb_stepsize.StepSizeMonitor(str(tmp_path), keras.optimizers.Adam(), [keras.Variable(1.0)], stop_on=("nan",))


def test_an_exception_in_on_finding_propagates(tmp_path):
    calls = []

    def fail_once(finding):
        calls.append(finding)
        if len(calls) == 1:
            raise RuntimeError(f"stop: {finding.kind}")

    model = zero_gradient_model()
    with pytest.raises(RuntimeError, match="stop: no_update"):
        fit(model, *data(), tmp_path, keras.optimizers.Adam(1e-3), on_finding=fail_once)
    monitor = model.optimizer._tb_stepsize_monitor()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monitor.close()  # the findings after the failing call are reported at the next check
    assert [(f.kind, f.layer) for f in calls[:2]] == [("no_update", "blocked/kernel"), ("no_update", "blocked/bias")]


def test_learning_rate_too_low_for_one_layer_is_ratio_low(tmp_path):
    """`big`'s kernel starts 1000x larger (its output is scaled back down): Adam's
    step (~lr per element) is then ~1e-6 of its size per step."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((8,))
    h = keras.layers.Dense(16, activation="tanh", name="hidden")(inputs)
    big = keras.layers.Dense(16, kernel_initializer=keras.initializers.RandomNormal(stddev=1000.0), name="big")(h)
    big = keras.layers.Lambda(lambda t: t * 1e-3, name="times_1e-3")(big)
    model = keras.Model(inputs, keras.layers.Dense(1, name="out")(keras.layers.Add()([h, big])))
    fit(model, *data(), tmp_path, keras.optimizers.Adam(1e-3))
    got = found(tmp_path)
    f = only(got, "ratio_low", "big/kernel")
    assert f.first_step == 1 and f.value < 1e-4
    assert [(g.kind, g.layer) for g in got if g.kind == "ratio_low"] == [("ratio_low", "big/kernel")]


def test_float16_weights_that_round_updates_away_are_lost_to_rounding(tmp_path):
    """float16 weights of size 0.5-4 have a spacing of 2^-11..2^-8: Adam's ~1e-4
    steps round away for most elements, not for the few small ones."""
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(32, activation="tanh", name="hidden"),
            keras.layers.Dense(32, dtype="float16", kernel_initializer=keras.initializers.RandomUniform(-4, 4), name="half"),
            keras.layers.Dense(1, name="out"),
        ],
        name="m",
    )
    fit(model, *data(), tmp_path, keras.optimizers.Adam(1e-4))
    got = found(tmp_path)
    f = only(got, "lost_to_rounding", "m/half/kernel")
    assert f.first_step == 1 and f.value > 0.5 and "float16" in f.message
    assert not [g for g in got if g.kind == "no_update"]  # the small elements still move

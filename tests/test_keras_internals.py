"""The Keras boundary (`keras_internals`, `keras_tf`): the checks the monitor runs before
it creates anything, the hooks, and Keras' own weight decay on one variable.

On a Keras backend other than TensorFlow, JAX and torch, below the oldest
supported Keras, or with hooked methods Keras no longer defines as the
monitor expects, the monitor gives one clear `tb_stepsize:` warning (or
`MonitorError` with `on_error="raise"`), `fit` trains on, and nothing is
written to `log_dir`.  The backend is read once per process: the unsupported
check is exercised by patching the detected backend name, and the real JAX
and torch backends record, each in its own process (skipped where its
package is missing; `test_backends` runs their full cases).
"""

import importlib.util
import json
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
from tb_stepsize import keras_internals, keras_tf  # noqa: E402

X = np.random.default_rng(0).standard_normal((32, 4)).astype("float32")
Y = np.random.default_rng(1).standard_normal((32, 2)).astype("float32")


def model_fn(optimizer=None):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="hidden"), keras.layers.Dense(2, name="out")])
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-2), loss="mse")
    return model


def fit(log_dir, optimizer=None, **kwargs):
    """(weights after a 2-epoch fit, our warnings, the callback)."""
    model = model_fn(optimizer)
    callback = tb_stepsize.StepSizeCallback(str(log_dir), **kwargs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[callback])
    ours = [str(w.message) for w in caught if str(w.message).startswith("tb_stepsize:") and w.category is not tb_stepsize.FindingWarning]
    return [v.numpy() for v in model.trainable_variables], ours, callback


def unmonitored_weights(optimizer=None):
    model = model_fn(optimizer)
    model.fit(X, Y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    return [v.numpy() for v in model.trainable_variables]


# ------------------------------------------------------------------ backend
@pytest.mark.parametrize("backend", ["numpy", "openvino"])
def test_unsupported_backend_detected_trains_unmonitored_and_writes_nothing(tmp_path, monkeypatch, backend):
    monkeypatch.setattr(keras.backend, "backend", lambda: backend)
    log_dir = tmp_path / "run"
    weights, ours, callback = fit(log_dir)
    assert ours == [
        f"tb_stepsize: Keras backend {backend!r} is not supported (tb_stepsize records on 'tensorflow', 'jax' "
        "and 'torch': set KERAS_BACKEND to one of them); step sizes are not recorded."
    ]
    assert not callback.monitor.enabled
    assert not log_dir.exists()  # not even the directory
    for got, want in zip(weights, unmonitored_weights()):
        np.testing.assert_array_equal(got, want)
    with pytest.raises(tb_stepsize.MonitorError, match=f"Keras backend '{backend}' is not supported"):
        fit(log_dir, on_error="raise")
    assert not log_dir.exists()


def test_backend_check_comes_before_the_optimizer_check(monkeypatch):
    """An unsupported backend is named first, before anything about the optimizer."""
    monkeypatch.setattr(keras.backend, "backend", lambda: "numpy")
    assert "backend 'numpy'" in keras_internals.attach_problem(object())


BACKEND_FIT = textwrap.dedent(
    """
    import json, os, sys, warnings
    import numpy as np, keras, tb_stepsize
    log_dir, on_error = sys.argv[1], sys.argv[2]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    x, y = np.ones((16, 4), "float32"), np.zeros((16, 2), "float32")
    callback = tb_stepsize.StepSizeCallback(log_dir, on_error=on_error)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            epochs = len(model.fit(x, y, epochs=2, batch_size=8, verbose=0, callbacks=[callback]).history["loss"])
            outcome = f"trained {epochs} epochs"
        except tb_stepsize.MonitorError as e:
            outcome = f"MonitorError: {e}"
    callback.close()
    print(json.dumps({
        "backend": keras.backend.backend(),
        "outcome": outcome,
        "warnings": [str(w.message) for w in caught if "tb_stepsize" in str(w.message) or "Adam" in str(w.message)],
        "steps": [int(t) for t in tb_stepsize.load(log_dir).steps],
    }))
    """
)


@pytest.mark.parametrize("backend", ["jax", "torch"])
@pytest.mark.parametrize("on_error", ["warn", "raise"])
def test_real_backend_records_in_its_own_process(tmp_path, backend, on_error):
    if importlib.util.find_spec(backend) is None:
        pytest.skip(f"{backend} is not installed")
    log_dir = str(tmp_path / "run")
    env = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="3")
    out = subprocess.run(
        [sys.executable, "-c", BACKEND_FIT, log_dir, on_error], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    # Both backends record (no "subclasses Adam" warning for torch's swapped Adam), whatever on_error says.
    assert result == {"backend": backend, "outcome": "trained 2 epochs", "warnings": [], "steps": [1, 2, 3, 4]}, result


# ------------------------------------------------------------------ version
@pytest.mark.parametrize("version, warned", [("3.11.3", True), ("2.15.0", True), ("3.12.0", False), ("3.15.1", False), ("4.0.0.dev1", False)])
def test_keras_version_below_the_minimum_is_named(monkeypatch, version, warned):
    monkeypatch.setattr(keras_internals, "keras_version", lambda: version)
    warning = keras_internals.old_keras_warning()
    if not warned:
        assert warning is None
        return
    assert f"Keras {version} is older than 3.12" in warning and "pip install 'keras>=3.12'" in warning


def test_old_keras_warns_once_and_still_records(tmp_path, monkeypatch):
    monkeypatch.setattr(keras_internals, "keras_version", lambda: "3.11.0")
    _, ours, callback = fit(tmp_path / "run")
    assert len(ours) == 1 and "Keras 3.11.0 is older than 3.12" in ours[0], ours
    assert callback.monitor.logged_steps == 8
    callback.close()


# ---------------------------------------------------------------- signatures
class RenamedUpdateAll(keras.optimizers.Adam):
    def _backend_update_step(self, grads, variables, lr):  # Keras passes these by position today
        return super()._backend_update_step(grads, variables, lr)


class NoWeightDecay(keras.optimizers.Adam):
    _apply_weight_decay = None


class OneArgUpdateStep(keras.optimizers.Adam):
    def update_step(self, gradient):
        raise AssertionError("never called")


class RenamedUpdateStep(keras.optimizers.Adam):
    """A custom optimizer may name `update_step`'s parameters as it likes (Keras' Adadelta does)."""

    def update_step(self, grad, var, lr):
        return super().update_step(grad, var, lr)


@pytest.mark.parametrize(
    "cls, problem",
    [
        (RenamedUpdateAll, "_backend_update_step takes (grads, variables, lr), not (grads, trainable_variables, learning_rate)"),
        (NoWeightDecay, "_apply_weight_decay does not exist"),
        (OneArgUpdateStep, "update_step takes (gradient), not 3 parameters"),
    ],
)
def test_hooked_method_signature_changed_is_a_clear_error(tmp_path, cls, problem):
    expected = f"Keras {keras.__version__}: {cls.__name__}.{problem}; tb_stepsize hooks the optimizer as Keras 3.12 to 3.15"
    assert keras_internals.attach_problem(cls(1e-2)).startswith(expected)
    log_dir = tmp_path / "run"
    with pytest.raises(tb_stepsize.MonitorError, match="tb_stepsize hooks the optimizer"):
        fit(log_dir, optimizer=cls(1e-2), on_error="raise")
    assert not log_dir.exists()


def test_keras_own_optimizers_pass_the_signature_check():
    for cls in (keras.optimizers.SGD, keras.optimizers.Adam, keras.optimizers.AdamW, keras.optimizers.Nadam,
                keras.optimizers.Adamax, keras.optimizers.RMSprop, keras.optimizers.Adadelta, keras.optimizers.Lion,
                RenamedUpdateStep):
        assert keras_internals.attach_problem(cls()) is None, cls


def test_private_names_missing_at_import_are_named_at_attach(tmp_path, monkeypatch):
    """A later Keras or TensorFlow that moved a private module: one clear message, not an ImportError."""
    monkeypatch.setattr(keras_internals, "BaseOptimizer", None)
    monkeypatch.setattr(keras_internals, "_IMPORT_ERROR", ImportError("No module named 'keras.src.optimizers.base_optimizer'"))
    assert keras_internals.attach_problem(keras.optimizers.Adam()) == (
        f"Keras {keras.__version__}: No module named 'keras.src.optimizers.base_optimizer'"
    )
    monkeypatch.undo()
    monkeypatch.setattr(keras_tf, "_IMPORT_ERROR", ImportError("cannot import name 'indexed_case'"))
    log_dir = tmp_path / "run"
    with pytest.raises(tb_stepsize.MonitorError, match=f"TensorFlow {tf.__version__}: cannot import name 'indexed_case'"):
        fit(log_dir, on_error="raise")
    assert not log_dir.exists()
    assert keras_tf.attach_problem().endswith("(tb_stepsize is tested with TensorFlow 2.19 to 2.21)")


def test_not_a_keras_optimizer_is_named():
    assert keras_internals.attach_problem(object(), "Thing") == (
        "cannot decompose optimizer Thing: a Keras 3 optimizer (keras.optimizers.*) is needed"
    )


# -------------------------------------------------------------------- hooks
def test_hooks_replace_on_the_instance_and_remove_restores_the_class():
    optimizer = keras.optimizers.Adam()
    before = {role: getattr(optimizer, method) for role, (method, _) in keras_internals.HOOKED_METHODS.items()}
    replacements = {role: (lambda *a, role=role: role) for role in keras_internals.HOOKED_METHODS}
    hooks = keras_internals.Hooks(optimizer, **replacements)
    for role, (method, _) in keras_internals.HOOKED_METHODS.items():
        assert getattr(optimizer, method)() == role
        assert hooks.original[role] == before[role]
    hooks.remove()
    for role, (method, _) in keras_internals.HOOKED_METHODS.items():
        assert method not in optimizer.__dict__ and getattr(optimizer, method) == before[role]


# -------------------------------------------------------------- weight decay
@pytest.mark.parametrize("dtype", ["float32", "float16", "bfloat16"])
def test_decay_one_is_keras_own_decay_bit_for_bit(dtype):
    """`decay_one` (what a copy gets under a strategy) equals the TF optimizer's own decay."""
    values = np.random.default_rng(2).standard_normal(257).astype("float32")
    results = []
    for decay in (lambda opt, v: opt._apply_weight_decay([v]), keras_internals.decay_one):
        optimizer = keras.optimizers.AdamW(learning_rate=0.05, weight_decay=0.1)  # big enough for float16
        variable = keras.Variable(values, dtype=dtype)
        skipped = keras.Variable(values, dtype=dtype, name="bias")
        optimizer.build([variable, skipped])
        optimizer.exclude_from_weight_decay(var_names=["bias"])
        decay(optimizer, variable)
        decay(optimizer, skipped)
        results.append((keras.ops.convert_to_numpy(variable.value), keras.ops.convert_to_numpy(skipped.value)))
        np.testing.assert_array_equal(results[-1][1], keras.ops.convert_to_numpy(keras.ops.cast(values, dtype)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    assert not np.array_equal(results[0][0], results[0][1])


def test_decays_honours_exclusions_and_no_decay():
    variable, bias = keras.Variable(np.ones(3, "float32")), keras.Variable(np.ones(3, "float32"), name="bias")
    optimizer = keras.optimizers.AdamW(weight_decay=0.1)
    optimizer.build([variable, bias])
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    assert keras_internals.decays(optimizer, variable) and not keras_internals.decays(optimizer, bias)
    plain = keras.optimizers.Adam()
    plain.build([variable])
    assert not keras_internals.decays(plain, variable)
    assert not keras_internals.has_own_weight_decay(optimizer)

    class OwnDecay(keras.optimizers.AdamW):
        def _apply_weight_decay(self, variables):
            return super()._apply_weight_decay(variables)

    assert keras_internals.has_own_weight_decay(OwnDecay(weight_decay=0.1))
    # Keras 3.15's Muon has a decay of its own, 3.12's not.
    muon_own = "_apply_weight_decay" in vars(keras.optimizers.Muon)
    assert keras_internals.has_own_weight_decay(keras.optimizers.Muon()) == muon_own

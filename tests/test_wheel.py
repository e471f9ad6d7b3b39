"""The wheel, installed into a fresh venv without TensorFlow, reads real demo logs.

The logs come from the demo CNN trained here (TensorFlow available) with a
recorder that saves the weights after every update; inside the fresh venv a
script loads the logs with `tb_stepsize.load` and checks the `step`
statistics against numpy on those weights.
"""

import os
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest

keras = pytest.importorskip("keras")

import tb_stepsize  # noqa: E402
from tb_stepsize.assets import STATIC_FILES  # noqa: E402

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

CHECK = textwrap.dedent(
    """
    import importlib.metadata, importlib.util, sys
    import numpy as np
    assert importlib.util.find_spec("tensorflow") is None, "fresh venv has TensorFlow"
    import tb_stepsize
    eps = [e for e in importlib.metadata.entry_points(group="tensorboard_plugins") if e.name == "stepsize"]
    assert eps and eps[0].load().__name__ == "StepSizeLoader"
    run = tb_stepsize.load(sys.argv[1])
    weights = np.load(sys.argv[2])
    n_vars = len(run.layers)
    assert list(run.steps) == list(range(1, len(run.steps) + 1))
    for col, t in enumerate(run.steps):
        for row in range(n_vars):
            step = np.abs(weights[f"{t - 1}_{row}"] - weights[f"{t}_{row}"]).ravel()
            np.testing.assert_allclose(run.matrix("step", "max")[row, col], step.max(), rtol=1e-6)
            np.testing.assert_allclose(run.matrix("step", "mean")[row, col], step.mean(), rtol=1e-5)
            np.testing.assert_allclose(run.matrix("step", "p50")[row, col], np.median(step), rtol=0.008)
    assert "tensorflow" not in sys.modules
    print("checked", n_vars, "layers x", len(run.steps), "steps")
    """
)


class Recorder(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.saved = {f"0_{i}": v.numpy() for i, v in enumerate(self.model.trainable_variables)}
        self.t = 0

    def on_train_batch_end(self, batch, logs=None):
        self.t += 1
        self.saved.update({f"{self.t}_{i}": v.numpy() for i, v in enumerate(self.model.trainable_variables)})


def test_wheel_in_fresh_venv_reads_demo_logs(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), REPO],
        check=True,
        cwd=tmp_path,
    )
    (wheel,) = dist.glob("tb_stepsize-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    for static in STATIC_FILES:
        assert f"tb_stepsize/static/{static}" in names

    sys.path.insert(0, os.path.join(REPO, "demo"))
    try:
        import data
        import train as demo
    finally:
        sys.path.pop(0)
    keras.utils.set_random_seed(0)
    x, y = data.shapes(64 * 6)
    model = demo.cnn()
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    recorder = Recorder()
    logs = tmp_path / "logs" / "cnn"
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[recorder, tb_stepsize.StepSizeCallback(str(logs))])
    np.savez(tmp_path / "weights.npz", **recorder.saved)

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run(pip + [str(wheel)], check=True, timeout=600)
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "-c", CHECK, str(logs), str(tmp_path / "weights.npz")],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "checked 10 layers x 6 steps" in proc.stdout

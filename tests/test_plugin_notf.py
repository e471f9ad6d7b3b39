"""`tb_stepsize.load` and the plugin work where TensorFlow cannot be imported
(the logdir is written by this process, which has it)."""

import os
import subprocess
import sys
import textwrap

import plugin_helpers as h

SCRIPT = textwrap.dedent(
    """
    import importlib.abc, json, sys

    BLOCKED = ("tensorflow", "keras", "tf_keras", "tensorflow_core")

    class NoTensorFlow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by test)")
            return None

    sys.meta_path.insert(0, NoTensorFlow())
    try:
        import tensorflow  # noqa: F401
        raise SystemExit("blocker does not work")
    except ImportError:
        pass

    sys.path.insert(0, TESTS_DIR)
    import plugin_helpers as h
    import tb_stepsize
    from tb_stepsize import plugin as plugin_mod  # noqa: F401

    data = tb_stepsize.load(LOGDIR + "/run1")
    assert data.steps.tolist() == list(range(1, 13)), data.steps
    client, plugin, _ = h.make_app(LOGDIR)
    base = "/data/plugin/stepsize"
    tags = json.loads(client.get(base + "/tags").get_data())
    assert tags["run1"]["layers"] == data.layers
    out = json.loads(client.get(base + "/heatmap?run=run1&metric=update_ratio&stat=value").get_data())
    assert out["values"][0] == data.matrix("update_ratio", "value")[0].tolist()
    for url in ("/layer?run=run1&metric=step&layer=dense/bias&max_steps=3",
                "/cell?run=run1&metric=step&layer=dense/bias&first=2&last=5",
                "/histogram_steps?run=run1&metric=step&layer=dense/bias",
                "/histogram?run=run1&metric=step&layer=dense/bias&step=2",
                "/info"):
        assert client.get(base + url).status_code == 200, url
    listing = json.loads(client.get("/data/plugins_listing").get_data())
    assert listing["stepsize"]["enabled"]
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
    print("NO-TF-OK")
    """
)


def test_reader_and_plugin_without_tensorflow(tmp_path):
    h.write_synthetic_run(str(tmp_path / "run1"))  # the write side needs TensorFlow
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    code = f"TESTS_DIR = {tests_dir!r}\nLOGDIR = {str(tmp_path)!r}\n" + SCRIPT
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
    assert "NO-TF-OK" in out.stdout

"""The plugin inside a real `tensorboard` process, with both data loaders.

A tiny Keras model is trained with the real `StepSizeCallback` (in a
subprocess, on TensorFlow, or on JAX where TensorFlow is not installed); three TensorBoard processes then serve the logdir:

* `python`: `--load_fast=false` (TensorBoard's Python multiplexer);
* `rust`: `--load_fast=true` (the Rust data server);
* `prefix`: `--load_fast=true --path_prefix=/foo
  --samples_per_plugin=stepsize=5` (a user's own sample count wins).

Every route's values are compared with `tb_stepsize.load` on the same logdir.
"""

import http.client
import importlib.util
import json
import os
import socket
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import requests

import plugin_helpers as h
import tb_stepsize
from tb_stepsize import metadata
from tb_stepsize import plugin as plugin_mod

# TensorFlow node names allow little more than [A-Za-z0-9_.-] (and Keras no
# "/"); markup and backslashes in names are covered by the synthetic tests.
ODD_NAME = "Odd.Layer-name_..x"
TRAIN_STEPS = 24  # 96 samples / batch 8 x 2 epochs; every step logged
USER_SAMPLES = 5

TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np, keras
    import tb_stepsize
    log_dir, odd = sys.argv[1], sys.argv[2]
    keras.utils.set_random_seed(0)
    x = np.random.rand(96, 6).astype("float32")
    y = np.random.rand(96, 1).astype("float32")
    model = keras.Sequential([
        keras.Input((6,)),
        keras.layers.Dense(8, activation="relu", name=odd),
        keras.layers.Dense(1, name="out"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    cb = tb_stepsize.StepSizeCallback(log_dir, every_n_steps=1)
    history = model.fit(x, y, batch_size=8, epochs=2, verbose=0, callbacks=[cb])
    print("logged", cb.monitor.logged_steps)
    print("epoch_losses", *history.history["loss"])
    """
)

SERVERS = {
    "python": ["--load_fast=false"],
    "rust": ["--load_fast=true"],
    "prefix": ["--load_fast=true", "--path_prefix=/foo", f"--samples_per_plugin=stepsize={USER_SAMPLES}"],
}
PREFIX = {"python": "", "rust": "", "prefix": "/foo"}
BASE = "/data/plugin/stepsize"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, name, logdir, tmp):
        self.name = name
        self.port = free_port()
        self.prefix = PREFIX[name]
        self.log = open(os.path.join(tmp, f"tensorboard-{name}.log"), "w")
        tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
        self.proc = subprocess.Popen(
            [
                tensorboard,
                "--logdir", logdir,
                "--host", "127.0.0.1",
                "--port", str(self.port),
                "--reload_interval", "1",
                *SERVERS[name],
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"),
        )

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{self.prefix}{path}"

    def get(self, path, code=200):
        response = requests.get(self.url(path), timeout=60)
        assert response.status_code == code, (self.name, path, response.status_code, response.text[:300])
        return response

    def json(self, path, code=200):
        response = self.get(path, code)
        assert response.headers["Content-Type"].startswith("application/json")
        return response.json()

    def wait_ready(self, expected_steps, deadline):
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                listing = requests.get(self.url("/data/plugins_listing"), timeout=5).json()
                if listing.get("stepsize", {}).get("enabled"):
                    tags = requests.get(self.url(BASE + "/tags"), timeout=30).json()
                    if tags.get("train", {}).get("num_steps") == expected_steps:
                        return
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.3)
        self.log.flush()
        with open(self.log.name) as f:
            pytest.fail(f"tensorboard ({self.name}) not ready:\n{f.read()[-3000:]}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tb")
    logs = root / "logs"
    # Trained on TensorFlow where it is installed, else on Keras' JAX backend (the
    # TensorFlow-free stack of scripts/compat.sh): the plugin reads both the same.
    backend = "tensorflow" if importlib.util.find_spec("tensorflow") else "jax"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", KERAS_BACKEND=backend)
    out = subprocess.run(
        [sys.executable, "-c", TRAIN_SCRIPT, str(logs / "train"), ODD_NAME],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    (line,) = [l for l in out.stdout.splitlines() if l.startswith("epoch_losses")]
    (root / "epoch_losses.json").write_text(json.dumps([float(v) for v in line.split()[1:]]))
    h.write_synthetic_run(str(logs / "live"), steps_a=range(1, 6), steps_b=())
    h.write_scalars(str(logs / "live"), h.SCALARS)
    h.write_scalar_only_run(str(logs / "scalars"))
    return str(logs)


@pytest.fixture(scope="module")
def expected(logdir):
    runs = tb_stepsize.load_runs(logdir)
    assert sorted(runs) == ["live", "train"]
    train = runs["train"]
    assert len(train.steps) == TRAIN_STEPS > 10
    assert any(ODD_NAME in layer for layer in train.layers)
    return train


@pytest.fixture(scope="module")
def servers(logdir, expected, tmp_path_factory):
    tmp = str(tmp_path_factory.mktemp("tb_logs"))
    started = {name: Server(name, logdir, tmp) for name in SERVERS}
    try:
        deadline = time.monotonic() + 90
        for name, server in started.items():
            server.wait_ready(USER_SAMPLES if name == "prefix" else TRAIN_STEPS, deadline)
        yield started
    finally:
        for server in started.values():
            server.stop()


@pytest.fixture(params=["python", "rust"])
def server(request, servers):
    return servers[request.param]


def test_plugins_listing(server):
    listing = server.json("/data/plugins_listing")
    entry = listing["stepsize"]
    assert entry["enabled"] is True and entry["tab_name"] == "Step Sizes"
    assert entry["loading_mechanism"] == {"type": "IFRAME", "module_path": "/data/plugin/stepsize/index.js"}


def test_index_js_served_if_installed(server):
    installed = os.path.join(os.path.dirname(plugin_mod.__file__), "static", "index.js")
    if os.path.exists(installed):
        response = server.get(BASE + "/index.js")
        with open(installed, "rb") as f:
            assert response.content == f.read()
        assert response.headers["Content-Type"].startswith("text/javascript")
    else:
        server.get(BASE + "/index.js", code=404)


def test_tags_equal_load(server, expected):
    tags = server.json(BASE + "/tags")
    assert "scalars" not in tags and {"train", "live"} <= set(tags)
    entry = tags["train"]
    assert entry["layers"] == expected.layers
    assert entry["layer_info"] == expected.layer_info
    assert entry["metrics"] == expected.metrics
    assert entry["stats"] == expected.stats
    assert entry["num_steps"] == len(expected.steps) == TRAIN_STEPS  # > 10: all samples kept
    assert entry["max_step"] == int(expected.steps[-1])
    assert entry["optimizer"] == expected.optimizer == "Adam"
    assert entry["problems"] == []


def test_heatmap_equals_load(server, expected):
    for metric in expected.metrics:
        for stat in expected.stats[metric]:
            params = {"run": "train", "metric": metric, "stat": stat}
            out = requests.get(server.url(BASE + "/heatmap"), params=params, timeout=60).json()
            assert out["layers"] == expected.layers
            assert out["steps"] == expected.steps.tolist()
            assert out["wall_times"] == expected.wall_times.tolist()
            matrix = expected.matrix(metric, stat)
            want = [[float(v) if np.isfinite(v) else None for v in row] for row in matrix]
            assert out["values"] == want, (metric, stat)
            assert out["nonfinite"] == [
                [int(i), int(j), "nan" if np.isnan(matrix[i, j]) else ("inf" if matrix[i, j] > 0 else "-inf")]
                for i, j in zip(*np.nonzero(expected.present[metric] & ~np.isfinite(matrix)))
            ]
            pooled = requests.get(
                server.url(BASE + "/heatmap"), params=dict(params, max_steps=5), timeout=60
            ).json()
            assert len(pooled["steps"]) == 5
            h.check_grid(
                pooled["values"],
                pooled["nonfinite"],
                h.reference_pool(matrix, expected.present[metric], 5, stat),
            )


def test_heatmap_json_equals_load(server, expected):
    out = requests.get(
        server.url(BASE + "/heatmap"), params={"run": "train", "metric": "step", "stat": "p95"}, timeout=60
    ).json()
    want = expected.matrix("step", "p95")
    assert out["layers"] == expected.layers and out["steps"] == expected.steps.tolist()
    assert out["values"] == [[float(v) if np.isfinite(v) else None for v in row] for row in want]


def test_layer_and_histogram_equal_load(server, expected):
    for layer in expected.layers:
        for metric in expected.metrics:
            out = requests.get(
                server.url(BASE + "/layer"), params={"run": "train", "layer": layer, "metric": metric}, timeout=60
            ).json()
            row = expected.layers.index(layer)
            assert out["stats"] == expected.stats[metric]
            assert out["steps"] == expected.steps.tolist()
            want = expected.values[metric][row]  # [T, S]
            assert out["values"] == [[float(v) if np.isfinite(v) else None for v in col] for col in want]
            hist_steps, arrays = expected.histograms(metric, layer)
            listed = requests.get(
                server.url(BASE + "/histogram_steps"),
                params={"run": "train", "layer": layer, "metric": metric},
                timeout=60,
            ).json()
            assert listed["steps"] == hist_steps.tolist()
            if not len(arrays):
                assert not metadata.METRICS[metric].elementwise, (layer, metric)  # elementwise ones have them
                continue
            for k in (0, len(arrays) // 2, len(arrays) - 1):
                hist = requests.get(
                    server.url(BASE + "/histogram"),
                    params={"run": "train", "layer": layer, "metric": metric, "step": int(hist_steps[k])},
                    timeout=60,
                ).json()
                assert hist == {"step": int(hist_steps[k]), "bins": arrays[k].tolist()}


def test_findings_equal_load(server, expected, logdir):
    for run, data in (("train", expected), ("live", tb_stepsize.load(os.path.join(logdir, "live")))):
        out = server.json(BASE + "/findings?run=" + run)
        assert out["run"] == run
        assert out["findings"] == [f.to_dict() for f in data.findings()], run
        assert set(out) == {"run", "findings", "thresholds", "views"}
    assert any(f["kind"] == "nonfinite" for f in out["findings"])  # the synthetic live run's NaN/Inf cells


def test_scalars_as_written(server):
    out = server.json(BASE + "/scalars?run=live")
    assert sorted(out["tags"]) == sorted(h.SCALARS)
    loss = out["tags"]["stepsize/loss"]
    assert loss["steps"] == list(range(1, 13)) and loss["values"][6] is None and loss["nonfinite"] == [[6, "nan"]]
    assert loss["values"][0] == 1.0 and out["tags"]["stepsize/learning_rate"]["steps"] == list(range(1, 13, 2))
    # The callback's run carries the loss and the learning rate it logged.
    trained = server.json(BASE + "/scalars?run=train")["tags"]
    assert set(trained) == {metadata.LOSS_TAG, metadata.LEARNING_RATE_TAG}
    assert trained[metadata.LEARNING_RATE_TAG]["steps"] == list(range(1, TRAIN_STEPS + 1))


def test_errors_are_json(server):
    for path, code in (
        (BASE + "/heatmap?run=train&metric=step", 400),
        (BASE + "/heatmap?run=nope&metric=step&stat=p50", 404),
        (BASE + "/heatmap?run=scalars&metric=step&stat=p50", 404),
        (BASE + "/heatmap?run=train&metric=step&stat=p50&max_steps=x", 400),
        (BASE + "/layer?run=train&layer=..%2f..%2fetc%2fpasswd&metric=step", 404),
        (BASE + "/histogram?run=train&layer=out/kernel&metric=step&step=..", 400),
        (BASE + "/findings", 400),
        (BASE + "/findings?run=scalars", 404),
    ):
        assert "error" in server.json(path, code)


@pytest.mark.parametrize(
    "raw_path",
    [
        BASE + "/../../../../etc/passwd",
        BASE + "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        BASE + "/..%2f..%2fplugin.py",
        BASE + "/..\\..\\plugin.py",
        BASE + "/static/../plugin.py",
        BASE + "/plugin.py",
        BASE + "//etc/passwd",
    ],
)
def test_raw_traversal_paths(servers, raw_path):
    """Sent byte for byte (no client-side normalisation)."""
    for name in ("python", "rust"):
        connection = http.client.HTTPConnection("127.0.0.1", servers[name].port, timeout=30)
        connection.request("GET", raw_path)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        assert response.status in (400, 404), (name, raw_path, response.status)
        assert b"root:" not in body and b"StepSizePlugin" not in body


def test_path_prefix_and_user_samples(servers, expected):
    server = servers["prefix"]
    listing = server.json("/data/plugins_listing")
    assert listing["stepsize"]["enabled"] is True
    tags = server.json(BASE + "/tags")
    assert tags["train"]["num_steps"] == USER_SAMPLES  # --samples_per_plugin=stepsize=5 wins
    assert tags["train"]["max_step"] == int(expected.steps[-1])  # the last step is always kept
    out = server.json(BASE + "/heatmap?run=train&metric=update_ratio&stat=value")
    columns = [expected.steps.tolist().index(s) for s in out["steps"]]
    want = expected.matrix("update_ratio", "value")[:, columns]
    assert out["values"] == [[float(v) for v in row] for row in want]
    # Without the prefix nothing is served.
    response = requests.get(f"http://127.0.0.1:{server.port}{BASE}/tags", timeout=30)
    assert response.status_code == 404


def test_live_run_new_steps_appear(servers, logdir):
    """Steps written while TensorBoard runs show up after its reload."""
    before = {name: servers[name].json(BASE + "/heatmap?run=live&metric=step&stat=p50") for name in SERVERS}
    for out in before.values():
        assert out["steps"][-1] == 5
    h.append_steps(os.path.join(logdir, "live"), range(6, 15), layers=h.LAYERS_A, seed=3)
    want = tb_stepsize.load(os.path.join(logdir, "live"))
    assert want.steps.tolist() == list(range(1, 15))
    deadline = time.monotonic() + 45
    pending = set(SERVERS)
    while pending and time.monotonic() < deadline:
        for name in sorted(pending):
            out = servers[name].json(BASE + "/heatmap?run=live&metric=step&stat=p50")
            if out["steps"][-1] == 14:
                if name != "prefix":
                    assert out["steps"] == want.steps.tolist()
                    matrix = want.matrix("step", "p50")
                    assert out["values"] == [
                        [float(v) if np.isfinite(v) else None for v in row] for row in matrix
                    ]
                    assert servers[name].json(BASE + "/tags")["live"]["num_steps"] == 14
                    found = servers[name].json(BASE + "/findings?run=live")["findings"]
                    assert found == [f.to_dict() for f in want.findings()]  # computed again on the new data
                pending.discard(name)
        time.sleep(0.3)
    assert not pending, f"new steps never appeared on {pending}"


def test_loss_and_learning_rate_are_ordinary_scalars(server, logdir):
    """The callback's `stepsize/loss` and `stepsize/learning_rate` are read by
    TensorBoard's own Scalars plugin (its data provider's `read_scalars`)."""
    tags = server.json("/data/plugin/scalars/tags")
    assert {metadata.LOSS_TAG, metadata.LEARNING_RATE_TAG} <= set(tags["train"])
    assert set(tags["live"]) == set(h.SCALARS)  # a run's scalars are only those written to it
    read = lambda tag: server.json(f"/data/plugin/scalars/scalars?run=train&tag={tag}")  # noqa: E731
    steps = list(range(1, TRAIN_STEPS + 1))
    rates = read(metadata.LEARNING_RATE_TAG)
    assert [s for _, s, _ in rates] == steps
    assert all(v == pytest.approx(1e-3) for _, _, v in rates)
    losses = read(metadata.LOSS_TAG)
    assert [s for _, s, _ in losses] == steps
    # Keras reports the epoch's running mean: at each epoch's last step, the epoch's loss.
    epoch_losses = json.loads(open(os.path.join(os.path.dirname(logdir), "epoch_losses.json")).read())
    per_epoch = TRAIN_STEPS // len(epoch_losses)
    for e, loss in enumerate(epoch_losses):
        assert losses[(e + 1) * per_epoch - 1][2] == pytest.approx(loss, rel=1e-6)

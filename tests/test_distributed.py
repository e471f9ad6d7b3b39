"""tb_stepsize under tf.distribute: a replicated run records what one device records.

Every run is its own process (`distributed_helpers.py`): logical devices
and the cluster must be configured before TensorFlow starts.
"""

import glob
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("tensorflow")  # the runs need it; loading them does not

import tb_stepsize  # noqa: E402

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "distributed_helpers.py")
TIMEOUT = 240


def start(where, log_dir, *options, env=None):
    return subprocess.Popen(
        [sys.executable, HELPER, where, str(log_dir), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def finish(*procs):
    """The stdout of each process; all are killed if one fails or hangs."""
    try:
        outputs = []
        for proc in procs:
            out, err = proc.communicate(timeout=TIMEOUT)
            assert proc.returncode == 0, err[-3000:]
            outputs.append(out)
        return outputs
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()


def fields(out):
    """The helper's report: {"logged", "updates", "weights", "warnings"}."""
    first, warnings = out.splitlines()[:2]
    words = first.split()
    return {**dict(zip(words[::2], words[1::2])), "warnings": warnings.removeprefix("warnings ")}


def assert_same_run(got, expected):
    """Same steps, layers and every statistic and histogram (to float rounding)."""
    assert list(got.steps) == list(expected.steps)
    assert got.layers == expected.layers
    assert got.metrics == expected.metrics
    for metric in expected.metrics:
        np.testing.assert_array_equal(got.present[metric], expected.present[metric])
        np.testing.assert_allclose(got.values[metric], expected.values[metric], rtol=1e-5, equal_nan=True, err_msg=metric)
        if expected.stats[metric] == ["value"]:
            continue
        for layer in expected.layers:
            steps, hists = got.histograms(metric, layer)
            want_steps, want = expected.histograms(metric, layer)
            assert list(steps) == list(want_steps) == list(expected.steps)
            for h, w in zip(hists, want):
                np.testing.assert_array_equal(h, w, err_msg=f"{metric} {layer}")


@pytest.mark.parametrize(
    "options",
    [
        ("optimizer=adamw",),
        ("optimizer=nadam", "chunked=1", "every_n_steps=3", "fit_in_scope=1"),
    ],
    ids=["adamw", "nadam-chunked-every3-in-scope"],
)
def test_mirrored_fit_records_what_one_device_records(tmp_path, options):
    single, mirrored, unmonitored = map(
        fields,
        finish(
            start("single", tmp_path / "single", *options),
            start("mirrored", tmp_path / "mirrored", *options),
            start("mirrored", tmp_path / "unmonitored", *options, "monitored=0"),
        ),
    )
    expected = tb_stepsize.load(str(tmp_path / "single"))
    assert single["logged"] == mirrored["logged"] == str(len(expected.steps))  # counted once per update
    assert single["updates"] == mirrored["updates"] == "12"
    assert single["warnings"] == mirrored["warnings"] == "[]"
    assert mirrored["weights"] == unmonitored["weights"]  # the monitor changes no weight, bit for bit
    assert_same_run(tb_stepsize.load(str(tmp_path / "mirrored")), expected)


def free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def test_multi_worker_chief_records_and_the_other_worker_writes_nothing(tmp_path):
    cluster = {"worker": [f"127.0.0.1:{port}" for port in free_ports(2)]}
    log_dir = tmp_path / "shared"  # both workers are given the same log_dir
    tf_configs = [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}}) for i in range(2)]
    workers = [start("worker", log_dir, env=dict(os.environ, TF_CONFIG=config)) for config in tf_configs]
    reference = start("loop", tmp_path / "single")
    chief, other, single = map(fields, finish(*workers, reference))
    assert (chief["logged"], other["logged"], single["logged"]) == ("6", "0", "6")
    assert chief["updates"] == other["updates"] == single["updates"] == "6"
    assert chief["weights"] == other["weights"]
    files = os.listdir(log_dir)
    assert len(files) == 1 and files[0].split(".")[-3] == str(workers[0].pid), files  # ...<host>.<pid>.<n>.stepsize
    assert_same_run(tb_stepsize.load(str(log_dir)), tb_stepsize.load(str(tmp_path / "single")))


def test_unsupported_strategy_warns_once_and_trains(tmp_path):
    (out,) = finish(start("central", tmp_path / "run"))
    assert fields(out)["logged"] == "0" and fields(out)["updates"] == "12", out
    assert "CentralStorageStrategy is not supported" in out and out.count("tb_stepsize:") == 1, out
    assert not glob.glob(str(tmp_path / "**" / "events*"), recursive=True)


def test_distributed_demo_runs(tmp_path):
    demo = os.path.join(os.path.dirname(HELPER), "..", "demo", "distributed.py")
    proc = subprocess.run(
        [sys.executable, demo, "--logdir", str(tmp_path), "--epochs", "1"], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "2 replicas; logged 4 steps" in proc.stdout
    run = tb_stepsize.load(str(tmp_path))
    assert list(run.steps) == [1, 5, 9, 13]
    assert np.all(run.matrix("step", "p50") > 0)

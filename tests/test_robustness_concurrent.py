"""Concurrent use and a long/wide smoke, against a real TensorBoard.

Per loader (Python multiplexer, Rust data server), one `tensorboard
--reload_interval 1` on loopback serves:

* `wide`: 2,000 logged steps x 50 layers, written beforehand (the smoke of
  `bench/bench_longrun.py`): pooled answers have at most `max_steps` columns
  and equal the documented pooling of `tb_stepsize.load`'s matrix;
* `live`: a writer process appends steps (flushing every few) while two
  "tabs" poll `tags`/`heatmap`/`layer` and a bounded load test runs (8
  threads x 25 requests over both runs).  Every value is a known function of
  (step, layer, statistic), so every answer is checked exactly: steps sorted
  and consecutive from 1, columns = len(steps), the values of a step never
  change, no error.  When the writer ends, the run equals `load`.
"""

import os
import random
import subprocess
import sys
import textwrap
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import numpy as np
import pytest
import requests

import plugin_helpers as h
import robustness_helpers as rh
import tb_stepsize
from tb_stepsize import metadata

BASE = rh.BASE
WIDE_STEPS, WIDE_LAYERS = 2000, 50
LIVE_STEPS, LIVE_LAYERS = 300, 6
THREADS, REQUESTS_PER_THREAD = 8, 25
P50 = metadata.ELEMENT_STATS.index("p50")

WRITER = textwrap.dedent(
    """
    import sys
    sys.path.insert(0, sys.argv[1])
    import robustness_helpers as rh
    rh.write_known_run(sys.argv[2], range(1, int(sys.argv[3]) + 1), int(sys.argv[4]),
                       histograms=True, flush_every=5, delay=0.05)
    """
)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("concurrent") / "logs"
    started = time.monotonic()
    rh.write_known_run(str(root / "wide"), range(1, WIDE_STEPS + 1), WIDE_LAYERS)
    print(f"\nwide run written in {time.monotonic() - started:.1f} s")
    os.makedirs(root / "live")
    return str(root)


@pytest.fixture(scope="module")
def wide(logdir):
    return tb_stepsize.load(os.path.join(logdir, "wide"))


@pytest.fixture(scope="module", params=["python", "rust"])
def server(request, logdir, tmp_path_factory):
    flag = "--load_fast=false" if request.param == "python" else "--load_fast=true"
    tb = rh.TensorBoard(
        logdir, str(tmp_path_factory.mktemp("tblog") / "tensorboard.log"), "--reload_interval", "1", flag
    )
    try:
        tb.wait(lambda tags: tags.get("wide", {}).get("num_steps") == WIDE_STEPS)
        yield tb
    finally:
        tb.stop()


def get_json(session, tb, path, params):
    response = session.get(tb.url(f"{BASE}/{path}?" + urlencode(params)), timeout=60)
    assert response.status_code == 200, (path, params, response.status_code, response.text[:300])
    assert response.headers["Content-Type"].startswith("application/json")
    return response.json()


# -------------------------------------------------------------- wide smoke


@pytest.mark.parametrize("max_steps", [100, 777, 2000])
@pytest.mark.parametrize("stat", ["p50", "max", "min"])
def test_wide_run_is_pooled_and_correct(server, wide, max_steps, stat):
    session = requests.Session()
    out = get_json(session, server, "heatmap", {"run": "wide", "metric": "step", "stat": stat, "max_steps": max_steps})
    group = -(-WIDE_STEPS // max_steps)
    assert len(out["steps"]) == -(-WIDE_STEPS // group) <= max_steps
    assert out["layers"] == wide.layers
    matrix = wide.matrix("step", stat)
    expected = h.reference_pool(matrix, wide.present["step"], group, stat)
    h.check_grid(out["values"], out["nonfinite"], expected)
    assert out["steps"] == [int(s) for s in wide.steps[::group]]

    layer = wide.layers[7]
    out = get_json(session, server, "layer", {"run": "wide", "metric": "step", "layer": layer, "max_steps": max_steps})
    assert len(out["values"]) == len(out["steps"]) <= max_steps
    column = h.reference_pool(matrix[7:8], wide.present["step"][7:8], group, stat)[0]
    got = [row[wide.stats["step"].index(stat)] for row in out["values"]]
    assert got == pytest.approx([v for _, v in column], rel=1e-12)


def test_wide_run_pooled_heatmap(server, wide):
    out = get_json(requests.Session(), server, "heatmap", {"run": "wide", "metric": "step", "stat": "p50", "max_steps": 500})
    grid = np.array(out["values"], np.float64)
    assert grid.shape == (WIDE_LAYERS, 500)
    expected = wide.matrix("step", "p50").reshape(WIDE_LAYERS, 500, 4).mean(axis=2)
    np.testing.assert_allclose(grid, expected, rtol=1e-12)


# ------------------------------------------------ live writer + load test


def check_live_heatmap(out, seen):
    """Steps 1..k consecutive, one column each, every value the known one and stable."""
    steps = out["steps"]
    assert steps == list(range(1, len(steps) + 1)), steps[:20]
    assert all(len(row) == len(steps) for row in out["values"]) and len(out["values"]) == LIVE_LAYERS
    for j, step in enumerate(steps):
        column = [row[j] for row in out["values"]]
        want = rh.known_stats(step, LIVE_LAYERS)["step"][:, P50].astype(np.float64).tolist()
        assert column == want, (step, column, want)
        assert seen.setdefault(step, column) == column
    return len(steps)


def check_live_layer(out, row):
    steps = out["steps"]
    assert steps == list(range(1, len(steps) + 1))
    for j, step in enumerate(steps):
        want = rh.known_stats(step, LIVE_LAYERS)["step"][row].astype(np.float64).tolist()
        assert out["values"][j] == want, step


def check_live_hover(session, server, run, layer, row):
    """What hovering a cell asks: one step's statistics, and the drill-down's histogram steps."""
    steps = get_json(session, server, "histogram_steps", {"run": run, "metric": "step", "layer": layer})["steps"]
    assert steps == sorted(steps)
    if steps:
        out = get_json(session, server, "cell", {"run": run, "metric": "step", "layer": layer, "first": steps[-1], "last": steps[-1]})
        assert out["values"] == rh.known_stats(steps[-1], LIVE_LAYERS)["step"][row].astype(np.float64).tolist()


def test_reading_while_writing_and_load(server, logdir, wide, tmp_path):
    live_dir = os.path.join(logdir, "live", f"{server.port}")  # a fresh run per server
    tests_dir = os.path.dirname(os.path.abspath(__file__))
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, tests_dir, live_dir, str(LIVE_STEPS), str(LIVE_LAYERS)],
        stderr=subprocess.PIPE,
        text=True,
    )
    run = f"live/{server.port}"
    layers = [l["path"] for l in rh.layer_list(LIVE_LAYERS)]
    seen = {}
    lock = threading.Lock()
    errors = []
    latencies = []
    stop = threading.Event()

    def tab(seed):
        """A dashboard tab polling the live run while it grows."""
        rng = random.Random(seed)
        session = requests.Session()
        last = 0
        try:
            while not stop.is_set():
                tags = get_json(session, server, "tags", {})
                entry = tags.get(run)
                if entry:
                    assert entry["num_steps"] >= last  # never goes back
                    last = entry["num_steps"]
                    out = get_json(session, server, "heatmap", {"run": run, "metric": "step", "stat": "p50"})
                    with lock:
                        check_live_heatmap(out, seen)
                    row = rng.randrange(LIVE_LAYERS)
                    check_live_layer(get_json(session, server, "layer", {"run": run, "metric": "step", "layer": layers[row]}), row)
                    check_live_hover(session, server, run, layers[row], row)
                time.sleep(0.1)
        except Exception as e:  # noqa: BLE001 -- reported by the test thread
            errors.append(e)

    def load_worker(seed):
        rng = random.Random(seed)
        session = requests.Session()
        for _ in range(REQUESTS_PER_THREAD):
            kind = rng.choice(["tags", "wide_heatmap", "wide_layer", "live_heatmap", "live_layer"])
            started = time.perf_counter()
            if kind == "tags":
                out = get_json(session, server, "tags", {})
                assert out["wide"]["num_steps"] == WIDE_STEPS
            elif kind == "wide_heatmap":
                max_steps = rng.choice([50, 300, 2000])
                out = get_json(session, server, "heatmap", {"run": "wide", "metric": "step", "stat": "p50", "max_steps": max_steps})
                group = -(-WIDE_STEPS // max_steps)
                assert len(out["steps"]) == -(-WIDE_STEPS // group)
                assert out["values"][3][0] == pytest.approx(float(np.mean(wide.matrix("step", "p50")[3, :group])), rel=1e-12)
            elif kind == "wide_layer":
                out = get_json(session, server, "layer", {"run": "wide", "metric": "update_ratio", "layer": wide.layers[rng.randrange(WIDE_LAYERS)], "max_steps": 400})
                assert len(out["steps"]) == 400
            elif kind == "live_heatmap":
                response = session.get(server.url(f"{BASE}/heatmap?" + urlencode({"run": run, "metric": "step", "stat": "p50"})), timeout=60)
                assert response.status_code in (200, 404)  # 404 until TensorBoard has loaded the run
                if response.status_code == 200:
                    with lock:
                        check_live_heatmap(response.json(), seen)
            else:
                row = rng.randrange(LIVE_LAYERS)
                response = session.get(server.url(f"{BASE}/layer?" + urlencode({"run": run, "metric": "step", "layer": layers[row]})), timeout=60)
                assert response.status_code in (200, 404)
                if response.status_code == 200:
                    check_live_layer(response.json(), row)
            latencies.append(time.perf_counter() - started)

    tabs = [threading.Thread(target=tab, args=(i,), daemon=True) for i in range(2)]
    try:
        for t in tabs:
            t.start()
        time.sleep(1.0)
        started = time.perf_counter()
        with ThreadPoolExecutor(THREADS) as pool:
            for future in [pool.submit(load_worker, i) for i in range(THREADS)]:
                future.result()
        elapsed = time.perf_counter() - started
        assert writer.wait(120) == 0, writer.stderr.read()[-2000:]
        final = server.wait(lambda tags: tags.get(run, {}).get("num_steps") == LIVE_STEPS, timeout=60)
        time.sleep(1.5)  # let the tabs see the last steps
    finally:
        stop.set()
        for t in tabs:
            t.join(60)
        if writer.poll() is None:
            writer.kill()
            writer.wait(30)
    assert not errors, errors[:3]
    assert len(latencies) == THREADS * REQUESTS_PER_THREAD
    lat = np.array(latencies) * 1000
    print(
        f"\n{len(lat)} requests by {THREADS} threads in {elapsed:.1f} s while writing: "
        f"latency p50 {np.median(lat):.0f} ms, p95 {np.percentile(lat, 95):.0f} ms, max {lat.max():.0f} ms; "
        f"tabs saw {len(seen)} distinct steps"
    )
    assert len(seen) > 0
    expected = tb_stepsize.load(live_dir)
    assert final[run]["num_steps"] == len(expected.steps) == LIVE_STEPS
    out = get_json(requests.Session(), server, "heatmap", {"run": run, "metric": "step", "stat": "p50"})
    assert out["values"] == expected.matrix("step", "p50").tolist()

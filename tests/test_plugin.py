"""Unit tests of the plugin backend over synthetic logdirs (no TensorFlow needed).

The app is TensorBoard's own WSGI application with the plugin loaded through
`StepSizeLoader`, over a `MultiplexerDataProvider`; requests go through
`werkzeug.test.Client`.
"""

import argparse
import json
import math
import os
import subprocess
import sys
import time

import numpy as np
import pytest

import plugin_helpers as h
from plugin_helpers import check_grid, get_json, reference_pool
import tb_stepsize
from tb_stepsize import listing, metadata, pooling
from tb_stepsize import plugin as plugin_mod
from tb_stepsize.plugin_loader import StepSizeLoader

BASE = "/data/plugin/stepsize"


def q(**params):
    from urllib.parse import urlencode

    return urlencode(params)


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    h.write_synthetic_run(str(root / "run1"))
    h.write_synthetic_run(str(root / "nested" / "run2"), steps_a=range(0, 30, 3), steps_b=(), seed=5)
    h.write_scalar_only_run(str(root / "scalars_only"))
    return str(root)


@pytest.fixture(scope="module")
def app(logdir):
    client, plugin, _ = h.make_app(logdir)
    return client, plugin


@pytest.fixture(scope="module")
def loaded(logdir):
    return tb_stepsize.load_runs(logdir)


# ------------------------------------------------------------- tags


def test_tags(app, loaded):
    client, _ = app
    tags = get_json(client, f"{BASE}/tags")
    assert sorted(tags) == ["nested/run2", "run1"]  # the scalar-only run is ignored
    for run, entry in tags.items():
        data = loaded[run]
        assert entry["layers"] == data.layers
        assert entry["layer_info"] == data.layer_info
        assert entry["metrics"] == data.metrics == h.METRICS
        assert entry["stats"] == {
            "step": list(metadata.ELEMENT_STATS),
            "update_ratio": list(metadata.SCALAR_STATS),
        }
        assert entry["max_step"] == int(data.steps[-1])
        assert entry["num_steps"] == len(data.steps)
        assert entry["optimizer"] == "Adam"
        assert entry["problems"] == []
    assert tags["run1"]["layers"] == [l["path"] for l in h.LAYERS_B]
    assert tags["run1"]["num_steps"] == 12 and tags["run1"]["max_step"] == 12


def test_plugins_listing_and_frontend_metadata(app):
    client, plugin = app
    listing = json.loads(client.get("/data/plugins_listing").get_data(as_text=True))
    entry = listing["stepsize"]
    assert entry["enabled"] is True
    assert entry["tab_name"] == "Step Sizes"
    assert entry["loading_mechanism"] == {
        "type": "IFRAME",
        "module_path": "/data/plugin/stepsize/index.js",
    }
    assert plugin.is_active()
    meta = plugin.frontend_metadata()
    assert meta.es_module_path == "/index.js" and meta.tab_name == "Step Sizes"


def test_inactive_without_data(tmp_path):
    h.write_scalar_only_run(str(tmp_path / "only_scalars"))
    client, plugin, _ = h.make_app(str(tmp_path))
    assert plugin.is_active() is False
    listing = json.loads(client.get("/data/plugins_listing").get_data(as_text=True))
    assert listing["stepsize"]["enabled"] is False
    assert get_json(client, f"{BASE}/tags") == {}


# ------------------------------------------------------------- heatmap


@pytest.mark.parametrize("run", ["run1", "nested/run2"])
def test_heatmap_unpooled_equals_load(app, loaded, run):
    client, _ = app
    data = loaded[run]
    for metric in data.metrics:
        for stat in data.stats[metric]:
            out = get_json(client, f"{BASE}/heatmap?" + q(run=run, metric=metric, stat=stat))
            assert out["run"] == run and out["metric"] == metric and out["stat"] == stat
            assert out["layers"] == data.layers
            assert out["steps"] == out["step_ends"] == data.steps.tolist()
            assert out["wall_times"] == data.wall_times.tolist()
            assert out["pooling"] == metadata.pooling_rule(stat)
            matrix = data.matrix(metric, stat)
            flags = {(i, j): kind for i, j, kind in out["nonfinite"]}
            for i in range(len(data.layers)):
                for j in range(len(data.steps)):
                    got, want = out["values"][i][j], matrix[i, j]
                    if np.isfinite(want):
                        assert got == want  # exact: the float64 of the logged float32
                        assert (i, j) not in flags
                    else:
                        assert got is None
            assert "range" not in out  # the client computes it


def test_heatmap_nonfinite_and_missing_cells(app, loaded):
    client, _ = app
    out = get_json(client, f"{BASE}/heatmap?" + q(run="run1", metric="step", stat="p50"))
    steps = out["steps"]
    expected = {
        (row, steps.index(step)): {math.inf: "inf", -math.inf: "-inf"}.get(v, "nan")
        for (row, step), v in h.NONFINITE_CELLS.items()
    }
    assert {(i, j): k for i, j, k in out["nonfinite"]} == expected
    late = out["layers"].index("late/kernel")
    # late/kernel was not watched before step 9: missing, not flagged.
    for j, step in enumerate(steps):
        assert (out["values"][late][j] is None) == (step < 9)
        assert (late, j) not in expected
    # The scalar metric of the same run has no non-finite cells but the same gaps.
    ratio = get_json(client, f"{BASE}/heatmap?" + q(run="run1", metric="update_ratio", stat="value"))
    assert ratio["nonfinite"] == []
    assert sum(v is None for v in ratio["values"][late]) == 8


@pytest.mark.parametrize("max_steps", [1, 2, 3, 5, 7, 11, 12, 13, 100000])
def test_heatmap_pooled_matches_rule(app, loaded, max_steps):
    client, _ = app
    data = loaded["run1"]
    group = pooling.group_size(len(data.steps), max_steps)
    for metric in data.metrics:
        for stat in data.stats[metric]:
            out = get_json(
                client, f"{BASE}/heatmap?" + q(run="run1", metric=metric, stat=stat, max_steps=max_steps)
            )
            n_cols = len(out["steps"])
            assert n_cols <= max_steps and n_cols == -(-len(data.steps) // group)
            assert out["steps"] == data.steps[::group].tolist()
            assert out["step_ends"] == [
                int(data.steps[min(j + group - 1, len(data.steps) - 1)])
                for j in range(0, len(data.steps), group)
            ]
            assert out["wall_times"] == data.wall_times[::group].tolist()
            expected = reference_pool(data.matrix(metric, stat), data.present[metric], group, stat)
            check_grid(out["values"], out["nonfinite"], expected)


def test_heatmap_pooling_keeps_nonfinite(app):
    client, _ = app
    out = get_json(client, f"{BASE}/heatmap?" + q(run="run1", metric="step", stat="max", max_steps=1))
    assert len(out["steps"]) == 1 and out["steps"] == [1] and out["step_ends"] == [12]
    flags = {i: kind for i, _, kind in out["nonfinite"]}
    assert flags == {0: "nan", 1: "inf", 2: "-inf"}  # row 1 has +Inf at 5 and -Inf at 6
    assert out["values"][3][0] is not None  # late/kernel: some steps present


def test_heatmap_huge_max_steps_is_capped(app, loaded):
    client, _ = app
    out = get_json(client, f"{BASE}/heatmap?" + q(run="run1", metric="step", stat="p50", max_steps=10**15))
    assert out["steps"] == loaded["run1"].steps.tolist()


# ------------------------------------------------------------- layer / histogram


@pytest.mark.parametrize("max_steps", [None, 4, 5])
def test_layer_route(app, loaded, max_steps):
    client, _ = app
    data = loaded["run1"]
    for layer in data.layers:
        for metric in data.metrics:
            params = dict(run="run1", layer=layer, metric=metric)
            if max_steps:
                params["max_steps"] = max_steps
            out = get_json(client, f"{BASE}/layer?" + q(**params))
            assert out["run"] == "run1" and out["layer"] == layer and out["metric"] == metric
            assert out["stats"] == data.stats[metric]
            group = pooling.group_size(len(data.steps), max_steps)
            assert out["steps"] == data.steps[::group].tolist()
            assert len(out["step_ends"]) == len(out["steps"])
            row = data.layers.index(layer)
            # Transpose back to [stat][column] and reuse the grid checker.
            values = [[col[s] for col in out["values"]] for s in range(len(out["stats"]))]
            nonfinite = [[s, j, kind] for j, s, kind in out["nonfinite"]]
            expected = [
                reference_pool(
                    data.matrix(metric, stat)[row : row + 1],
                    data.present[metric][row : row + 1],
                    group,
                    stat,
                )[0]
                for stat in out["stats"]
            ]
            check_grid(values, nonfinite, expected)
            assert "histogram_steps" not in out  # a route of its own


def test_histogram_steps_route(app, loaded):
    client, _ = app
    data = loaded["run1"]
    for layer in data.layers:
        for metric in data.metrics:
            out = get_json(client, f"{BASE}/histogram_steps?" + q(run="run1", layer=layer, metric=metric))
            hist_steps, _ = data.histograms(metric, layer)
            assert out == {"run": "run1", "layer": layer, "metric": metric, "steps": hist_steps.tolist()}
            if metric == "step":
                assert len(out["steps"]) > 0
            else:
                assert out["steps"] == []


def test_histogram_route(app, loaded):
    client, _ = app
    data = loaded["run1"]
    for layer in data.layers:
        steps, arrays = data.histograms("step", layer)
        assert len(steps)
        for step, array in zip(steps, arrays):
            out = get_json(
                client, f"{BASE}/histogram?" + q(run="run1", layer=layer, metric="step", step=int(step))
            )
            assert out == {"step": int(step), "bins": array.tolist()}
            assert out["bins"][0][:2] == [0.0, 0.0]
        # nearest logged step
        for asked, want in ((-100, steps[0]), (10**12, steps[-1])):
            out = get_json(client, f"{BASE}/histogram?" + q(run="run1", layer=layer, metric="step", step=asked))
            assert out["step"] == int(want)


def test_histogram_nearest_step_and_tie(app, loaded):
    client, _ = app
    steps = loaded["nested/run2"].histograms("step", "dense/bias")[0].tolist()
    assert steps[:3] == [0, 3, 6]
    for asked, want in ((1, 0), (2, 3), (4, 3), (5, 6)):
        out = get_json(
            client, f"{BASE}/histogram?" + q(run="nested/run2", layer="dense/bias", metric="step", step=asked)
        )
        assert out["step"] == want
    # equally far: the earlier step
    run = "run1"
    out = get_json(client, f"{BASE}/histogram?" + q(run=run, layer="dense/bias", metric="step", step=4))
    assert out["step"] == 4


def test_histogram_404_without_histograms(app):
    client, _ = app
    out = get_json(
        client,
        f"{BASE}/histogram?" + q(run="run1", layer="dense/bias", metric="update_ratio", step=3),
        code=404,
    )
    assert "no histograms" in out["error"]


# ------------------------------------------------------------- errors


@pytest.mark.parametrize(
    "url,code",
    [
        ("heatmap", 400),
        ("heatmap?run=run1&metric=step", 400),
        ("heatmap?run=run1&stat=p50", 400),
        ("heatmap?metric=step&stat=p50", 400),
        ("heatmap?run=nope&metric=step&stat=p50", 404),
        ("heatmap?run=scalars_only&metric=step&stat=p50", 404),
        ("heatmap?run=run1&metric=nope&stat=p50", 404),
        ("heatmap?run=run1&metric=step&stat=value", 404),
        ("heatmap?run=run1&metric=update_ratio&stat=p50", 404),
        ("heatmap?run=run1&metric=step&stat=p50&max_steps=abc", 400),
        ("heatmap?run=run1&metric=step&stat=p50&max_steps=1.5", 400),
        ("heatmap?run=run1&metric=step&stat=p50&max_steps=0", 400),
        ("heatmap?run=run1&metric=step&stat=p50&max_steps=-3", 400),
        ("heatmap?run=run1&metric=step&stat=p50&max_steps=", 400),
        ("heatmap?run=run1&metric=step&stat=p50&max_steps=1e3", 400),
        ("heatmap?run=run1&metric=step&stat=p50&max_steps=99999999999999999999999", 400),
        ("heatmap?run=run1&run=run1&metric=step&stat=p50", 400),
        ("heatmap?run=run1&metric=step&stat=p50&max_steps=2&max_steps=3", 400),
        ("layer?run=run1&metric=step", 400),
        ("layer?run=run1&layer=nope&metric=step", 404),
        ("layer?run=run1&layer=dense/bias&metric=nope", 404),
        ("layer?run=nope&layer=dense/bias&metric=step", 404),
        ("layer?run=run1&layer=dense/bias&metric=step&max_steps=x", 400),
        ("histogram?run=run1&layer=dense/bias&metric=step", 400),
        ("histogram?run=run1&layer=dense/bias&metric=step&step=x", 400),
        ("histogram?run=run1&layer=dense/bias&metric=step&step=1.0", 400),
        ("histogram?run=run1&layer=nope&metric=step&step=1", 404),
        ("histogram?run=run1&layer=dense/bias&metric=nope&step=1", 404),
        ("histogram?run=nope&layer=dense/bias&metric=step&step=1", 404),
        ("histogram_steps?run=run1&layer=dense/bias", 400),
        ("histogram_steps?run=run1&layer=nope&metric=step", 404),
        ("histogram_steps?run=run1&layer=dense/bias&metric=nope", 404),
        ("histogram_steps?run=nope&layer=dense/bias&metric=step", 404),
        ("cell?run=run1&layer=dense/bias&metric=step&first=1", 400),
        ("cell?run=run1&layer=dense/bias&metric=step&last=1", 400),
        ("cell?run=run1&layer=dense/bias&metric=step&first=1.5&last=3", 400),
        ("cell?run=run1&layer=dense/bias&metric=step&first=1&last=x", 400),
        ("cell?run=run1&layer=dense/bias&metric=step&first=5&last=4", 400),
        ("cell?run=run1&layer=dense/bias&metric=step&first=100&last=200", 404),
        ("cell?run=run1&layer=dense/bias&metric=step&first=-5&last=0", 404),
        ("cell?run=run1&layer=nope&metric=step&first=1&last=2", 404),
        ("cell?run=run1&layer=dense/bias&metric=nope&first=1&last=2", 404),
        ("cell?run=nope&layer=dense/bias&metric=step&first=1&last=2", 404),
    ],
)
def test_errors(app, url, code):
    client, _ = app
    out = get_json(client, f"{BASE}/{url}", code=code)
    assert set(out) == {"error"} and isinstance(out["error"], str) and out["error"]


def test_too_long_parameter(app):
    client, _ = app
    get_json(client, f"{BASE}/heatmap?" + q(run="r" * 5000, metric="step", stat="p50"), code=400)


# ------------------------------------------------------------- static files


def test_static_files(app, tmp_path, monkeypatch):
    client, _ = app
    installed = os.path.join(os.path.dirname(plugin_mod.__file__), "static")
    for route, (name, content_type) in plugin_mod.STATIC_FILES.items():
        response = client.get(BASE + route)
        if os.path.exists(os.path.join(installed, name)):
            assert response.status_code == 200
            with open(os.path.join(installed, name), "rb") as f:
                assert response.get_data() == f.read()
        else:
            assert response.status_code == 404
    # With a stand-in static dir: every listed file, with its content type.
    for route, (name, _) in plugin_mod.STATIC_FILES.items():
        (tmp_path / name).write_text(f"/* {name} */")
    monkeypatch.setattr(plugin_mod, "_STATIC_DIR", str(tmp_path))
    for route, (name, content_type) in plugin_mod.STATIC_FILES.items():
        response = client.get(BASE + route)
        assert response.status_code == 200
        assert response.headers["Content-Type"].split(";")[0] == content_type
        assert response.get_data(as_text=True) == f"/* {name} */"
    assert plugin_mod.STATIC_FILES["/index.js"][1] == "text/javascript"
    assert plugin_mod.STATIC_FILES["/style.css"][1] == "text/css"
    (tmp_path / "index.js").unlink()
    out = get_json(client, f"{BASE}/index.js", code=404)
    assert "error" in out


# ------------------------------------------------------------- caching & live data


def test_cache_and_invalidation(tmp_path, monkeypatch):
    monkeypatch.setattr(listing, "LISTING_TTL_SECS", 0.0)
    run_dir = str(tmp_path / "live")
    h.write_synthetic_run(run_dir)
    client, plugin, multiplexer = h.make_app(str(tmp_path))
    reads = []
    real_read_run = plugin_mod.reader.read_run

    def counting_read_run(*args, **kwargs):
        reads.append(args[3])
        return real_read_run(*args, **kwargs)

    monkeypatch.setattr(plugin_mod.reader, "read_run", counting_read_run)
    url = f"{BASE}/heatmap?" + q(run="live", metric="step", stat="p50", max_steps=5)
    first = get_json(client, url)
    assert reads == ["live"]
    for _ in range(3):
        assert get_json(client, url) == first
        get_json(client, f"{BASE}/tags")
        get_json(client, f"{BASE}/heatmap?" + q(run="live", metric="step", stat="max"))
    assert reads == ["live"]  # served from the cache
    assert len(plugin._store.responses) == 2

    # New data arrives; until TensorBoard reloads, the cache stays valid.
    h.append_steps(run_dir, range(13, 20))
    assert get_json(client, url) == first and reads == ["live"]
    multiplexer.Reload()
    second = get_json(client, url)
    assert reads == ["live", "live"]
    assert second["step_ends"][-1] == 19 and second != first
    assert get_json(client, f"{BASE}/tags")["live"]["num_steps"] == 19
    assert tb_stepsize.load(run_dir).steps.tolist() == list(range(1, 20))
    assert len(plugin._store.responses) == 1  # the stale response was dropped


def test_listing_is_not_redone_per_request(tmp_path, monkeypatch):
    """The full tag listing (costly with the Python loader) is made once; later
    requests only ask for the index tags' signatures."""
    monkeypatch.setattr(listing, "LISTING_TTL_SECS", 0.0)
    h.write_synthetic_run(str(tmp_path / "run1"))
    client, plugin, multiplexer = h.make_app(str(tmp_path))
    calls = []
    real = plugin._provider.list_tensors

    def counting(ctx=None, **kwargs):
        calls.append(kwargs.get("run_tag_filter"))
        return real(ctx, **kwargs)

    monkeypatch.setattr(plugin._provider, "list_tensors", counting)
    url = f"{BASE}/heatmap?" + q(run="run1", metric="step", stat="p50")
    for _ in range(4):
        get_json(client, url)
        get_json(client, f"{BASE}/tags")
    full = [c for c in calls if c is None]
    assert len(full) == 2  # the first listing only (statistics and histograms)
    assert all(c.tags and all(t.startswith("index/") for t in c.tags) for c in calls if c is not None)

    # A new run appears after TensorBoard's reload: discovered on the next request.
    h.write_synthetic_run(str(tmp_path / "run2"), steps_a=range(1, 3), steps_b=())
    multiplexer.AddRunsFromDirectory(str(tmp_path))
    multiplexer.Reload()
    assert sorted(get_json(client, f"{BASE}/tags")) == ["run1", "run2"]


def test_new_layer_set_found_by_periodic_discovery(tmp_path, monkeypatch):
    """Tags that appear while the old index tags stand still (a new layer set)
    are found by the periodic full listing, made in the background."""
    monkeypatch.setattr(listing, "LISTING_TTL_SECS", 0.0)
    run_dir = str(tmp_path / "run")
    h.write_synthetic_run(run_dir, steps_a=range(1, 4), steps_b=())
    client, _, multiplexer = h.make_app(str(tmp_path))
    assert get_json(client, f"{BASE}/tags")["run"]["num_steps"] == 3
    h.append_steps(run_dir, range(4, 6), layers=h.LAYERS_B)  # new digest, old tags unchanged
    multiplexer.Reload()
    monkeypatch.setattr(listing, "DISCOVERY_TTL_SECS", 0.0)
    deadline = time.monotonic() + 20  # re-listed in the background
    while time.monotonic() < deadline:
        tags = get_json(client, f"{BASE}/tags")["run"]
        if tags["num_steps"] == 5:
            break
        time.sleep(0.05)
    assert tags["num_steps"] == 5 and tags["layers"][-1] == "late/kernel"


# ------------------------------------------------------------- bad data


def test_bad_data_is_reported_not_fatal(tmp_path):
    good = tmp_path / "mixed"
    h.write_synthetic_run(str(good), steps_a=range(1, 4), steps_b=())
    newer = metadata.stats_content("step", h.LAYERS_A, "Adam")
    newer["version"] = metadata.FORMAT_VERSION + 1
    h.write_raw_tag(str(good), "step/newer", newer, np.zeros((3, 13), np.float32))
    h.write_raw_tag(str(good), "step/garbage", b"\xff\x00not json", np.zeros((3, 13), np.float32))
    h.write_raw_tag(str(good), "step/list", [1, 2, 3], np.zeros(2, np.float32))
    wrong_shape = metadata.stats_content("update_ratio", h.LAYERS_A, "Adam")
    h.write_raw_tag(str(good), "update_ratio/wrongshape", wrong_shape, np.zeros((5, 5), np.float32), step=2)
    strings = metadata.stats_content("lost_fraction", h.LAYERS_A, "Adam")
    h.write_raw_tag(str(good), "lost_fraction/strings", strings, np.array([b"a", b"b"]), step=2)

    only_bad = tmp_path / "only_bad"
    h.write_raw_tag(str(only_bad), "step/newer", newer, np.zeros((3, 13), np.float32))

    h.write_scalar_only_run(str(tmp_path / "scalars"))

    truncated = tmp_path / "truncated"
    h.write_synthetic_run(str(truncated), steps_a=range(1, 6), steps_b=())
    path = max(truncated.iterdir(), key=lambda f: f.stat().st_size)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 700])

    corrupted = tmp_path / "corrupted"
    h.write_synthetic_run(str(corrupted), steps_a=range(1, 6), steps_b=())
    with open(max(corrupted.iterdir(), key=lambda f: f.stat().st_size), "ab") as f:
        f.write(b"\x13\x37" * 500)

    client, plugin, _ = h.make_app(str(tmp_path))
    tags = get_json(client, f"{BASE}/tags")
    assert "scalars" not in tags
    mixed = tags["mixed"]
    assert mixed["layers"] == [l["path"] for l in h.LAYERS_A]
    assert mixed["num_steps"] == 3
    text = "\n".join(mixed["problems"])
    assert "step/newer" in text and "newer than this reader" in text
    assert "step/garbage" in text and "step/list" in text
    assert "update_ratio/wrongshape" in text and "lost_fraction/strings" in text
    out = get_json(client, f"{BASE}/heatmap?" + q(run="mixed", metric="step", stat="p50"))
    assert out["steps"][:3] == [1, 2, 3]

    assert tags["only_bad"]["layers"] == [] and tags["only_bad"]["num_steps"] == 0
    assert "newer than this reader" in tags["only_bad"]["problems"][0]
    get_json(client, f"{BASE}/heatmap?" + q(run="only_bad", metric="step", stat="p50"), code=404)

    for run in ("truncated", "corrupted"):
        assert tags[run]["num_steps"] >= 1
        out = get_json(client, f"{BASE}/heatmap?" + q(run=run, metric="step", stat="p50", max_steps=2))
        assert len(out["steps"]) <= 2
        layer = tags[run]["layers"][0]
        get_json(client, f"{BASE}/layer?" + q(run=run, metric="step", layer=layer))
        get_json(client, f"{BASE}/histogram?" + q(run=run, metric="step", layer=layer, step=1))


def test_problems_found_reading_a_column_reach_tags(tmp_path):
    """A stats tensor of the wrong shape is only seen when its column is read
    (by `heatmap`); `tags` must list it from then on, without new data."""
    run_dir = tmp_path / "run"
    h.write_synthetic_run(str(run_dir), steps_a=range(1, 4), steps_b=())
    digest = metadata.layer_digest([l["path"] for l in h.LAYERS_A])
    tag = metadata.stats_tag("step", digest, "p50")
    before = set(os.listdir(run_dir))
    h.write_raw_tag(str(run_dir), tag, metadata.stats_content(digest, "step", "p50"), np.zeros(5, np.float32), step=3)
    (raw,) = set(os.listdir(run_dir)) - before
    os.rename(run_dir / raw, run_dir / "events.out.tfevents.9999999999.zz")  # read last: no out-of-order purge
    client, _, _ = h.make_app(str(tmp_path))
    assert get_json(client, f"{BASE}/tags")["run"]["problems"] == []  # the column was not read yet
    out = get_json(client, f"{BASE}/heatmap?" + q(run="run", metric="step", stat="p50"))
    assert out["steps"] == [1, 2, 3]
    problems = get_json(client, f"{BASE}/tags")["run"]["problems"]
    assert len(problems) == 1 and tag in problems[0] and "step 3" in problems[0], problems


# ------------------------------------------------------------- loader


def _configure(argv):
    from tensorboard import program
    from tensorboard.plugins.core import core_plugin

    tb = program.TensorBoard(plugins=[core_plugin.CorePluginLoader, StepSizeLoader])
    tb.configure(argv=["tensorboard", "--logdir=/tmp/x", *argv])
    return tb.flags.samples_per_plugin


def test_loader_sets_default_samples():
    hist = {"stepsize_histograms": 1000}
    assert _configure([]) == {"stepsize": 0, **hist}
    assert _configure(["--samples_per_plugin", "images=5"]) == {"images": 5, "stepsize": 0, **hist}
    assert _configure(["--samples_per_plugin", "stepsize=7,images=5"]) == {"stepsize": 7, "images": 5, **hist}
    assert _configure(["--samples_per_plugin=stepsize=0,stepsize_histograms=5"]) == {"stepsize": 0, "stepsize_histograms": 5}


def test_loader_fix_flags_variants():
    loader = StepSizeLoader()
    defaults = {"stepsize": 0, "stepsize_histograms": 1000}
    for given_value, expected in (
        (None, defaults),
        ({}, defaults),
        ({"scalars": 10}, {"scalars": 10, **defaults}),
        ({"stepsize": 3}, {**defaults, "stepsize": 3}),
        ("stepsize=4", {**defaults, "stepsize": 4}),
        ("stepsize_histograms=0", {**defaults, "stepsize_histograms": 0}),
        ("images=2", {"images": 2, **defaults}),
        ("", defaults),
    ):
        flags = argparse.Namespace(samples_per_plugin=given_value)
        loader.fix_flags(flags)
        assert flags.samples_per_plugin == expected, given_value
    flags = argparse.Namespace(samples_per_plugin="not a list")
    loader.fix_flags(flags)  # left to TensorBoard to reject
    assert flags.samples_per_plugin == "not a list"
    user_dict = {"images": 1}
    flags = argparse.Namespace(samples_per_plugin=user_dict)
    loader.fix_flags(flags)
    assert user_dict == {"images": 1}  # the caller's dict is not mutated


def test_loader_imports_only_base_plugin():
    code = (
        "import sys; before = set(sys.modules)\n"
        "import tb_stepsize.plugin_loader as l\n"
        "assert 'tb_stepsize.plugin' not in sys.modules\n"
        "assert 'werkzeug' not in sys.modules\n"
        "import importlib.metadata as md\n"
        "eps = [e for e in md.entry_points(group='tensorboard_plugins') if e.name == 'stepsize']\n"
        "assert eps and eps[0].load() is l.StepSizeLoader, eps\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr[-2000:]


def test_not_updated_variable_is_missing_not_nan(tmp_path):
    """A row whose `nonfinite` count is NaN (no update) is a missing cell."""
    from tb_stepsize.summary import StepWriter

    rng = np.random.default_rng(2)
    writer = StepWriter(str(tmp_path / "run"), h.LAYERS_A, h.METRICS, "Adam")
    for step in (1, 2):
        stats = {m: h.random_stats(rng, len(h.LAYERS_A), m) for m in h.METRICS}
        if step == 2:
            stats["step"][1, :] = np.nan  # dense/bias untouched at step 2
            stats["update_ratio"][1, :] = np.nan
        writer.write(step, stats, {"step": h.random_hists(rng, len(h.LAYERS_A))})
    writer.close()
    client, _, _ = h.make_app(str(tmp_path))
    for stat in ("p50", "nonfinite"):
        out = get_json(client, f"{BASE}/heatmap?" + q(run="run", metric="step", stat=stat))
        assert out["values"][1][1] is None and out["values"][1][0] is not None
        assert out["nonfinite"] == []

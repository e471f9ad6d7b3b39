"""The hover route `cell`, the `findings` route and the `info` route (in-process app, no TensorFlow)."""

import dataclasses
from urllib.parse import urlencode

import numpy as np
import pytest

import plugin_helpers as h
import tb_stepsize
from plugin_helpers import check_grid, get_json, reference_pool
from tb_stepsize import findings, metadata
from tb_stepsize import reader

BASE = "/data/plugin/stepsize"


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    """`(client, plugin, RunData)` of one synthetic run (`plugin_helpers.write_synthetic_run`)."""
    root = tmp_path_factory.mktemp("routes")
    h.write_synthetic_run(str(root / "run1"))
    client, plugin, _ = h.make_app(str(root))
    return client, plugin, tb_stepsize.load_runs(str(root))["run1"]


def cell(client, **params):
    return get_json(client, f"{BASE}/cell?" + urlencode(dict(run="run1", **params)))


# ------------------------------------------------------------------ cell


@pytest.mark.parametrize("max_steps", [None, 1, 3, 5, 7])
def test_cell_equals_layer_column(synthetic, max_steps):
    """A heatmap column's tooltip (`cell` over its first..last steps) shows
    what `layer` pools for that column."""
    client, _, data = synthetic
    for layer in data.layers:
        for metric in data.metrics:
            params = dict(run="run1", layer=layer, metric=metric)
            if max_steps:
                params["max_steps"] = max_steps
            column = get_json(client, f"{BASE}/layer?" + urlencode(params))
            for j, (first, last) in enumerate(zip(column["steps"], column["step_ends"])):
                out = cell(client, layer=layer, metric=metric, first=first, last=last)
                assert out["run"] == "run1" and out["layer"] == layer and out["metric"] == metric
                assert out["first"] == first and out["last"] == last
                assert out["stats"] == column["stats"]
                assert out["values"] == column["values"][j]
                assert out["nonfinite"] == [[s, kind] for jj, s, kind in column["nonfinite"] if jj == j]
                if max_steps:  # the same cell served from the heatmap's pooled matrices
                    assert cell(client, layer=layer, metric=metric, first=first, last=last, max_steps=max_steps) == out


def test_cell_matches_numpy_reference(synthetic):
    """Any step range, aligned or not, with bounds between or beyond logged steps."""
    client, _, data = synthetic
    steps = data.steps
    rng = np.random.default_rng(3)
    ranges = [(1, 12), (0, 100), (-5, 1), (12, 12), (4, 6), (5, 5), (6, 9)]
    ranges += [tuple(sorted(rng.integers(-2, 15, size=2).tolist())) for _ in range(20)]
    for first, last in ranges:
        cols = (steps >= first) & (steps <= last)
        for layer in data.layers:
            row = data.layers.index(layer)
            for metric in data.metrics:
                params = dict(run="run1", layer=layer, metric=metric, first=first, last=last)
                if not cols.any():
                    get_json(client, f"{BASE}/cell?" + urlencode(params), code=404)
                    continue
                out = get_json(client, f"{BASE}/cell?" + urlencode(params))
                expected = [
                    reference_pool(
                        data.matrix(metric, stat)[row : row + 1, cols],
                        data.present[metric][row : row + 1, cols],
                        int(cols.sum()),
                        stat,
                    )[0][0]
                    for stat in out["stats"]
                ]
                check_grid([out["values"]], [[0, s, kind] for s, kind in out["nonfinite"]], [expected])


def test_cell_nonfinite_precedence(synthetic):
    """Row 1 of `step` holds +Inf at step 5 and -Inf at step 6; row 0 NaN at step 3."""
    client = synthetic[0]
    nonfinite = metadata.ELEMENT_STATS.index("nonfinite")
    both = cell(client, layer="dense/bias", metric="step", first=5, last=6)
    assert {s for s, kind in both["nonfinite"] if kind == "inf"} == set(range(len(both["stats"]))) - {nonfinite}
    assert both["values"][nonfinite] == 3.0
    minus = cell(client, layer="dense/bias", metric="step", first=6, last=8)
    assert all(kind == "-inf" for _, kind in minus["nonfinite"]) and len(minus["nonfinite"]) == 12
    nan = cell(client, layer="dense/kernel", metric="step", first=1, last=12)
    assert all(kind == "nan" for _, kind in nan["nonfinite"]) and len(nan["nonfinite"]) == 12
    # late/kernel is missing before step 9: missing, not non-finite
    missing = cell(client, layer="late/kernel", metric="step", first=1, last=8)
    assert missing["values"] == [None] * len(missing["stats"]) and missing["nonfinite"] == []


def test_cell_reads_no_histograms_and_pools_no_matrix(tmp_path, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("cell read a histogram table")

    monkeypatch.setattr(reader.RunData, "_read_histogram_table", refuse)
    h.write_synthetic_run(str(tmp_path / "run1"))
    client, plugin, _ = h.make_app(str(tmp_path))
    out = cell(client, layer="dense/bias", metric="step", first=2, last=7)
    assert len(out["values"]) == len(metadata.ELEMENT_STATS)
    assert len(plugin._store.pooled) == 0  # only the row's range was pooled


def test_cell_of_a_heatmap_column_comes_from_the_pooled_matrices(tmp_path, monkeypatch):
    """With the heatmap's `max_steps`, hovering reads the pooled matrices (cached
    apart), so a run whose columns do not fit the cache is not re-read per hover."""
    h.write_synthetic_run(str(tmp_path / "run1"))
    client, plugin, _ = h.make_app(str(tmp_path))
    expected = cell(client, layer="dense/bias", metric="step", first=4, last=6)  # column 1 of groups of 3
    assert len(plugin._store.pooled) == 0
    assert cell(client, layer="dense/bias", metric="step", first=4, last=6, max_steps=4) == expected
    assert len(plugin._store.pooled) == len(metadata.ELEMENT_STATS)
    # Not a column of that grid: pooled from the columns, the same numbers as without max_steps.
    assert cell(client, layer="dense/bias", metric="step", first=2, last=7, max_steps=4) == cell(
        client, layer="dense/bias", metric="step", first=2, last=7
    )


# ------------------------------------------------------------------ findings


def expected_findings(run_dir, run):
    """What the `findings` route must answer: `load(...).findings()` of the same files."""
    return {
        "run": run,
        "findings": [f.to_dict() for f in tb_stepsize.load(run_dir).findings()],
        "thresholds": dataclasses.asdict(findings.Thresholds()),
        "views": {kind: {"metric": m, "stat": s} for kind, (m, s) in findings.VIEWS.items()},
    }


def test_findings_equal_load(tmp_path):
    h.write_synthetic_run(str(tmp_path / "run1"))
    client, _, _ = h.make_app(str(tmp_path))
    out = get_json(client, f"{BASE}/findings?run=run1")
    assert out == expected_findings(str(tmp_path / "run1"), "run1")
    (nonfinite,) = [f for f in out["findings"] if f["kind"] == "nonfinite"]  # NONFINITE_CELLS
    assert nonfinite["first_step"] == 3 and nonfinite["layer"] == "dense/kernel" and nonfinite["severity"] == "error"
    assert set(out["thresholds"]) == {f.name for f in dataclasses.fields(findings.Thresholds)}


def test_findings_errors(synthetic):
    client = synthetic[0]
    assert "error" in get_json(client, f"{BASE}/findings", code=400)
    assert "error" in get_json(client, f"{BASE}/findings?run=nope", code=404)
    assert "error" in get_json(client, f"{BASE}/findings?run=run1&run=run1", code=400)


def test_findings_cached_and_updated_on_reload(tmp_path, monkeypatch):
    """Computed once per run signature; new data (a NaN at a later step) shows after a reload."""
    from tb_stepsize.summary import StepWriter

    run_dir, client, _, multiplexer = h.live_app(tmp_path, monkeypatch)
    calls = []
    original = reader.RunData.findings
    monkeypatch.setattr(reader.RunData, "findings", lambda self, t=None: calls.append(1) or original(self, t))
    first = get_json(client, f"{BASE}/findings?run=live")
    assert get_json(client, f"{BASE}/findings?run=live") == first and len(calls) == 1
    rng = np.random.default_rng(5)
    writer = StepWriter(run_dir, h.LAYERS_B, h.METRICS, "Adam")
    stats = {m: h.random_stats(rng, len(h.LAYERS_B), m) for m in h.METRICS}
    stats["step"][3, metadata.ELEMENT_STATS.index("nonfinite")] = 2  # late/kernel: NaN elements
    writer.write(20, stats, {"step": h.random_hists(rng, len(h.LAYERS_B))}, wall_time=1020.0)
    writer.close()
    multiplexer.Reload()
    second = get_json(client, f"{BASE}/findings?run=live")
    assert len(calls) == 2 and second == expected_findings(run_dir, "live")
    (nonfinite,) = [f for f in second["findings"] if f["kind"] == "nonfinite"]
    assert nonfinite["last_step"] == 20 and first["findings"] != second["findings"]


def test_findings_views_name_recorded_statistics():
    """Every kind the rules can report has a heatmap, and it exists in the format."""
    assert set(findings.VIEWS) == {
        "nonfinite", "no_update", "lost_to_rounding", "partly_frozen", "ratio_high", "ratio_low", "rms_spike", "outlier_layer",
    }
    for kind, (metric, stat) in findings.VIEWS.items():
        assert stat in metadata.stats_for(metric), kind


# ------------------------------------------------------------------ scalars


def test_scalars_route(tmp_path):
    """The run's ordinary scalars as written (NaN as null + nonfinite); none for a run without."""
    h.write_synthetic_run(str(tmp_path / "run1"))
    h.write_scalars(str(tmp_path / "run1"), h.SCALARS)
    h.write_synthetic_run(str(tmp_path / "bare"))
    client, _, _ = h.make_app(str(tmp_path))
    out = get_json(client, f"{BASE}/scalars?run=run1")
    assert out["run"] == "run1" and sorted(out["tags"]) == sorted(h.SCALARS)
    for tag, points in h.SCALARS.items():
        got = out["tags"][tag]
        assert got["steps"] == [s for s, _ in points]
        want = [float(np.float32(v)) for _, v in points]  # stored as float32
        assert got["values"] == [None if np.isnan(v) else v for v in want]
        assert got["nonfinite"] == [[j, "nan"] for j, v in enumerate(want) if np.isnan(v)]
    assert get_json(client, f"{BASE}/scalars?run=bare") == {"run": "bare", "tags": {}}
    assert "error" in get_json(client, f"{BASE}/scalars?run=nope", code=404)
    assert "error" in get_json(client, f"{BASE}/scalars", code=400)


def test_scalars_written_later_are_seen(tmp_path, monkeypatch):
    """Scalars in an event file of their own, loaded after the step sizes
    (the run's signature unchanged): not hidden by a cache."""
    run_dir, client, _, multiplexer = h.live_app(tmp_path, monkeypatch)
    assert get_json(client, f"{BASE}/scalars?run=live")["tags"] == {}
    h.write_scalars(run_dir, h.SCALARS)
    multiplexer.Reload()
    assert sorted(get_json(client, f"{BASE}/scalars?run=live")["tags"]) == sorted(h.SCALARS)


# ------------------------------------------------------------------ info


def test_info_is_the_format_description(synthetic):
    client = synthetic[0]
    out = get_json(client, f"{BASE}/info")
    assert out == metadata.describe()
    assert out["format_version"] == metadata.FORMAT_VERSION == 2
    assert [m["name"] for m in out["metrics"]] == list(metadata.METRICS)
    for m in out["metrics"]:
        assert set(m) == {"name", "elementwise", "label", "unit", "description", "help", "reference"}
        assert m["elementwise"] == (metadata.stats_for(m["name"]) == metadata.ELEMENT_STATS)
        assert m["label"] and m["unit"] and m["help"] and m["description"]
    by_name = {m["name"]: m for m in out["metrics"]}
    assert by_name["update_ratio"]["reference"] == {"value": 1e-3, "label": "healthy \u2248 1e-3"}
    assert by_name["second_moment_rms"]["reference"] == {"value": 1.0, "label": "1: v tracks g"}
    assert by_name["step"]["reference"] is None
    assert out["element_stats"] == list(metadata.ELEMENT_STATS)
    assert out["scalar_stats"] == ["value"]
    assert list(out["stat_labels"]) == list(metadata.ELEMENT_STATS) + ["value"]
    assert out["stat_labels"]["p50"] == "median (p50)" and out["stat_labels"]["nonfinite"] == "non-finite count"
    assert out["quantile_stats"] == ["min", "p01", "p05", "p25", "p50", "p75", "p95", "p99", "max", "mean", "rms"]
    assert out["pooling"] == {
        **{stat: "mean" for stat in list(metadata.ELEMENT_STATS) + ["value"]},
        "min": "min",
        "max": "max",
        "nonfinite": "max",
    }


def test_info_needs_no_run_data(tmp_path):
    h.write_scalar_only_run(str(tmp_path / "only_scalars"))
    client, _, _ = h.make_app(str(tmp_path))
    assert get_json(client, f"{BASE}/info") == metadata.describe()

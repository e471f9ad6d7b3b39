"""`layer_groups` (rows grouped by module, variable kinds), `pooling.pool_groups`,
and the `heatmap` route's step range and row grouping (in-process app, no TensorFlow).

Group rows are checked against numpy computed independently from `load()`'s
matrices: step-pool each member as the heatmap does, then min / max / the
element-count-weighted mean over the members present."""

import json
from urllib.parse import urlencode

import numpy as np
import pytest

import plugin_helpers as h
import tb_stepsize
from plugin_helpers import get_json
from tb_stepsize import layer_groups, metadata, pooling

BASE = "/data/plugin/stepsize"
PATHS = [
    "model/embed/embeddings",
    "model/block0/attn/query/kernel",
    "model/block0/attn/query/bias",
    "model/block0/norm/gamma",
    "model/block0/norm/beta",
    "model/block1/dense/kernel",
    "model/block1/dense/bias",
    "head/kernel",
    "scale",
]


def test_variable_kind():
    kinds = [layer_groups.variable_kind(p) for p in PATHS]
    assert kinds == ["embedding", "kernel", "bias", "norm", "norm", "kernel", "bias", "kernel", "norm"]
    assert layer_groups.variable_kind("a/recurrent_kernel") == "kernel"
    assert layer_groups.variable_kind("a/position_embeddings") == "embedding"
    assert layer_groups.variable_kind("a/kernel:0") == "kernel"
    assert layer_groups.variable_kind("a/moving_mean") == "other"


def test_rows_group_expand_and_kind():
    rows = layer_groups.rows(PATHS, depth=2)
    assert [r.label for r in rows] == ["model/embed/embeddings", "model/block0/*", "model/block1/*", "head/kernel", "scale"]
    assert rows[1].members == (1, 2, 3, 4) and rows[1].is_group and rows[1].group == "model/block0"
    # a group of one variable is that variable; a short path is its own row
    assert not rows[0].is_group and rows[0].group == "model/embed"
    assert rows[4].group == "" and not rows[4].is_group
    expanded = layer_groups.rows(PATHS, depth=2, expand=["model/block1"])
    assert [r.label for r in expanded][2:5] == ["model/block1/*", "model/block1/dense/kernel", "model/block1/dense/bias"]
    assert [r.group for r in expanded][3:5] == ["model/block1", "model/block1"]
    biases = layer_groups.rows(PATHS, depth=2, kind="bias")
    assert [(r.label, r.members) for r in biases] == [("model/block0/attn/query/bias", (2,)), ("model/block1/dense/bias", (6,))]
    assert [r.label for r in layer_groups.rows(PATHS, depth=1)] == ["model/*", "head/kernel", "scale"]
    assert [r.members for r in layer_groups.rows(PATHS, None, kind="kernel")] == [(1,), (5,), (7,)]


def test_element_counts():
    assert layer_groups.element_counts([{"shape": [2, 3]}, {"shape": []}, {"shape": [0]}]) == [6.0, 1.0, 1.0]
    assert layer_groups.element_counts([{"shape": [2]}, {"path": "x"}]) is None


def numpy_group(values, present, members, weights, rule):
    """One group row, independently: per column, over the members present."""
    out, out_present = [], []
    for j in range(values.shape[1]):
        cells = [(values[i, j], weights[i]) for i in members if present[i, j]]
        out_present.append(bool(cells))
        v = np.array([c for c, _ in cells])
        w = np.array([c for _, c in cells])
        if not cells:
            out.append(np.nan)
        elif np.isnan(v).any():
            out.append(np.nan)
        elif (v == np.inf).any():
            out.append(np.inf)
        elif (v == -np.inf).any():
            out.append(-np.inf)
        elif rule == "min":
            out.append(v.min())
        elif rule == "max":
            out.append(v.max())
        else:
            out.append(float(np.sum(v * w) / np.sum(w)))
    return np.array(out), np.array(out_present)


def test_pool_groups_handcrafted():
    nan, inf = np.nan, np.inf
    values = np.array([[1.0, 2.0, nan, 5.0], [3.0, inf, 1.0, 7.0], [5.0, 1.0, 2.0, 9.0]])
    present = np.array([[True, True, True, False], [True, True, True, False], [True, True, False, False]])
    weights = np.array([1.0, 3.0, 4.0])
    out, p = pooling.pool_groups(values, present, [[0, 1, 2], [2]], "mean", weights)
    assert out[0, 0] == pytest.approx((1 + 9 + 20) / 8)
    assert out[0, 1] == inf and np.isnan(out[0, 2]) and not p[0, 3] and p[0, 2]
    assert out[1].tolist()[:2] == [5.0, 1.0] and p[1].tolist() == [True, True, False, False]
    assert pooling.pool_groups(values, present, [[0, 2]], "max")[0][0, :2].tolist() == [5.0, 2.0]
    assert pooling.pool_groups(values, present, [[0, 2]], "min")[0][0, :2].tolist() == [1.0, 1.0]


def test_pool_groups_matches_numpy_reference():
    rng = np.random.default_rng(5)
    values = rng.uniform(1e-6, 1.0, size=(7, 11))
    values[rng.uniform(size=values.shape) < 0.05] = np.nan
    values[rng.uniform(size=values.shape) < 0.03] = np.inf
    present = rng.uniform(size=values.shape) > 0.2
    weights = rng.integers(1, 100, size=7).astype(float)
    groups = [[0, 1, 2], [3], [4, 5, 6], [6, 0]]
    for rule in ("min", "max", "mean"):
        out, p = pooling.pool_groups(values, present, groups, rule, weights)
        for g, members in enumerate(groups):
            ref, ref_p = numpy_group(values, present, members, weights, rule)
            assert p[g].tolist() == ref_p.tolist()
            np.testing.assert_allclose(out[g][ref_p], ref[ref_p], rtol=1e-12)


# ------------------------------------------------------------------ the heatmap route


@pytest.fixture(scope="module")
def modular(tmp_path_factory):
    """`(client, RunData)` of a run of 3 modules x 3 variables of different
    sizes, 30 steps, with a few missing and non-finite cells."""
    from tb_stepsize.summary import StepWriter

    root = tmp_path_factory.mktemp("groups")
    layers = [
        {"path": f"net/mod{m}/{name}", "shape": shape, "dtype": "float32"}
        for m in range(3)
        for name, shape in (("dense/kernel", [4, 2 + m]), ("dense/bias", [2 + m]), ("norm/gamma", [3]))
    ]
    rng = np.random.default_rng(1)
    writer = StepWriter(str(root / "run"), layers, ["step", "update_ratio"], "Adam")
    for step in range(1, 31):
        stats = {m: h.random_stats(rng, len(layers), m) for m in ("step", "update_ratio")}
        if step % 7 == 0:  # a variable without gradient: missing at this step
            stats["step"][step % len(layers), -1] = np.nan
        if step == 11:
            stats["step"][4, :-1] = np.inf
        writer.write(step, stats, {}, wall_time=100.0 + step)
    writer.close()
    client, _, _ = h.make_app(str(root))
    return client, tb_stepsize.load_runs(str(root))["run"]


def heatmap(client, code=200, **params):
    return get_json(client, f"{BASE}/heatmap?" + urlencode(dict(run="run", metric="step", **params)), code)


def decoded(answer):
    values = np.array([[np.nan if v is None else v for v in row] for row in answer["values"]], float)
    for i, j, kind in answer["nonfinite"]:
        values[i, j] = {"nan": np.nan, "inf": np.inf, "-inf": -np.inf}[kind]
    return values


@pytest.mark.parametrize("stat", ["p50", "max", "min", "mean"])
@pytest.mark.parametrize("max_steps,start,end", [(None, None, None), (4, None, None), (100, 5, 14), (3, 5, 14)])
def test_grouped_heatmap_equals_numpy_of_load(modular, stat, max_steps, start, end):
    client, run = modular
    params = dict(stat=stat, group_depth=2, expand=json.dumps(["net/mod1"]))
    params.update({k: v for k, v in (("max_steps", max_steps), ("start_step", start), ("end_step", end)) if v is not None})
    out = heatmap(client, **params)
    steps = run.steps
    keep = (steps >= (start or 0)) & (steps <= (end if end is not None else steps[-1]))
    matrix, mask = run.matrix("step", stat)[:, keep], run.mask("step", stat)[:, keep]
    group = pooling.group_size(keep.sum(), max_steps)
    assert out["steps"] == steps[keep][::group].tolist()
    # step pooling, stated again in numpy (one column at a time)
    pooled, pooled_present = h.numpy_pool(matrix, mask, group, metadata.pooling_rule(stat))
    rule = metadata.pooling_rule(stat)
    weights = np.array([np.prod(info["shape"]) for info in run.layer_info], float)
    assert out["layers"] == ["net/mod0/*", "net/mod1/*", *run.layers[3:6], "net/mod2/*"]
    assert out["row_members"] == [3, 3, 0, 0, 0, 3] and out["num_layers"] == 9
    assert out["row_groups"] == ["net/mod0"] + ["net/mod1"] * 4 + ["net/mod2"]
    members = [[0, 1, 2], [3, 4, 5], [3], [4], [5], [6, 7, 8]]
    got = decoded(out)
    for r, m in enumerate(members):
        ref, ref_p = numpy_group(pooled, pooled_present, m, weights, rule)
        assert [v is not None or any(n[:2] == [r, j] for n in out["nonfinite"]) for j, v in enumerate(out["values"][r])] == ref_p.tolist()
        np.testing.assert_allclose(got[r][ref_p], ref[ref_p], rtol=1e-12)


def test_kind_filter_and_plain_rows(modular):
    client, run = modular
    out = heatmap(client, stat="p50", kind="bias")
    assert out["layers"] == [p for p in run.layers if p.endswith("/bias")] and out["row_members"] == [0, 0, 0]
    assert heatmap(client, stat="p50")["layers"] == run.layers
    grouped = heatmap(client, stat="p50", group_depth=2, kind="kernel")
    assert grouped["layers"] == [p for p in run.layers if p.endswith("/kernel")]  # one kernel per module


def test_zoomed_heatmap_is_the_matrix_over_the_range(modular):
    client, run = modular
    out = heatmap(client, stat="p50", start_step=10, end_step=19, max_steps=2000)
    assert out["steps"] == list(range(10, 20)) == out["step_ends"]
    keep = (run.steps >= 10) & (run.steps <= 19)
    expected, mask = run.matrix("step", "p50")[:, keep], run.mask("step", "p50")[:, keep]
    got = decoded(out)
    np.testing.assert_array_equal(np.isnan(got), ~mask | np.isnan(expected))
    np.testing.assert_array_equal(got[mask & np.isfinite(expected)], expected[mask & np.isfinite(expected)])
    assert heatmap(client, stat="p50", start_step=25)["steps"] == list(range(25, 31))
    assert heatmap(client, stat="p50", end_step=3)["steps"] == [1, 2, 3]
    assert heatmap(client, stat="p50", start_step=0, end_step=10**9)["steps"] == run.steps.tolist()


def test_zoomed_cell_comes_from_the_zoomed_grid(modular, monkeypatch):
    client, run = modular
    layer = run.layers[1]
    plain = get_json(client, f"{BASE}/cell?" + urlencode(dict(run="run", layer=layer, metric="step", first=12, last=13)))
    zoomed = dict(run="run", layer=layer, metric="step", first=12, last=13, max_steps=5, start_step=10, end_step=19)
    assert heatmap(client, stat="p50", max_steps=5, start_step=10, end_step=19)["steps"][1] == 12
    from tb_stepsize import reader

    monkeypatch.setattr(reader.pooling, "pool_span", lambda *a: (_ for _ in ()).throw(AssertionError("pooled from columns")))
    assert get_json(client, f"{BASE}/cell?" + urlencode(zoomed)) == plain


@pytest.mark.parametrize(
    "params,message",
    [
        (dict(start_step=20, end_step=10), "must not be before"),
        (dict(start_step="a"), "must be an integer"),
        (dict(end_step="1.5"), "must be an integer"),
        (dict(start_step=-3), "must not be negative"),
        (dict(start_step=500, end_step=600), "no logged step in [500, 600]"),
        (dict(group_depth=0), "group_depth must be between"),
        (dict(group_depth="x"), "must be an integer"),
        (dict(expand="net/mod1"), "JSON list"),
        (dict(expand='[1, 2]'), "JSON list"),
        (dict(kind="weights"), "kind must be one of"),
    ],
)
def test_bad_range_and_rows_are_400(modular, params, message):
    client, _ = modular
    out = heatmap(client, code=400, stat="p50", **params)
    assert message in out["error"]

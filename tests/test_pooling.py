"""`pooling`: adjacent steps merged into heatmap columns (pure numpy), and `RunData.pooled`.

Checked against two independent statements of the rule: `plugin_helpers.reference_pool`
(plain Python, cell by cell) and `plugin_helpers.numpy_pool` (one group at a time in numpy).
"""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import plugin_helpers as h
import tb_stepsize
from plugin_helpers import check_grid, reference_pool
from tb_stepsize import metadata, pooling
from tb_stepsize.encoding import encode_grid

BASE = "/data/plugin/stepsize"


def test_pooling_rules():
    assert metadata.pooling_rule("min") == "min"
    assert metadata.pooling_rule("max") == "max"
    assert metadata.pooling_rule("nonfinite") == "max"
    for stat in ("p01", "p50", "p99", "mean", "rms", "zero_fraction", "value"):
        assert metadata.pooling_rule(stat) == "mean"


def test_group_size_and_columns():
    assert pooling.group_size(10, None) == 1
    assert pooling.group_size(10, 10) == 1
    assert pooling.group_size(10, 100) == 1
    assert pooling.group_size(10, 3) == 4  # columns of 4, 4, 2
    assert pooling.group_size(10_000, 2000) == 5
    assert pooling.group_size(10_001, 2000) == 6
    firsts, ends = pooling.column_bounds(np.arange(1, 11), 4)
    assert firsts.tolist() == [1, 5, 9] and ends.tolist() == [4, 8, 10]
    for n in range(1, 40):
        for m in range(1, 45):
            g = pooling.group_size(n, m)
            assert -(-n // g) <= m


def test_pool_handcrafted_cases():
    nan, inf = np.nan, np.inf
    values = np.array(
        [
            [1.0, 3.0, 2.0, 8.0],  # plain
            [1.0, nan, inf, -inf],  # nan wins over both infinities
            [inf, 1.0, -inf, 2.0],  # inf wins over -inf; second group -inf
            [nan, nan, 5.0, nan],  # group 1: both missing; group 2: 5 + a missing cell
            [0.0, 0.0, 0.0, 0.0],
        ]
    )
    present = np.ones_like(values, bool)
    present[3] = [False, False, True, False]
    for rule, row0 in (("mean", [2.0, 5.0]), ("min", [1.0, 2.0]), ("max", [3.0, 8.0])):
        out, p = pooling.pool(values, present, 2, rule)
        assert out[0].tolist() == row0
        assert np.isnan(out[1, 0]) and out[1, 1] == np.inf and p[1].all()
        assert out[2, 0] == np.inf and out[2, 1] == -np.inf
        assert not p[3, 0] and p[3, 1] and out[3, 1] == 5.0
        assert out[4].tolist() == [0.0, 0.0]
    # Group 1 of row 1 holds NaN and +Inf: NaN.  Groups of 3: last is shorter.
    out, p = pooling.pool(values, present, 3, "max")
    assert np.isnan(out[1, 0]) and out[1, 1] == -np.inf
    assert out[0].tolist() == [3.0, 8.0]
    assert p[3].tolist() == [True, False]
    # group 1 returns the input unchanged
    same, same_p = pooling.pool(values, present, 1, "mean")
    assert same is values and same_p is present


finite_or_not = st.one_of(
    st.floats(min_value=-1e30, max_value=1e30, allow_nan=False, allow_infinity=False),
    st.sampled_from([math.nan, math.inf, -math.inf]),
)


@settings(max_examples=150, deadline=None)
@given(
    cells=st.lists(st.lists(st.tuples(finite_or_not, st.booleans()), min_size=1, max_size=9), min_size=1, max_size=4),
    group=st.integers(1, 10),
    stat=st.sampled_from(["min", "max", "nonfinite", "p50", "mean", "value"]),
)
def test_pool_matches_reference(cells, group, stat):
    width = min(len(r) for r in cells)
    values = np.array([[c[0] for c in r[:width]] for r in cells], np.float64)
    present = np.array([[c[1] for c in r[:width]] for r in cells], bool)
    values[~present] = np.nan  # how the reader stores a missing cell
    out, p = pooling.pool(values, present, group, metadata.pooling_rule(stat))
    cells_json, nonfinite = encode_grid(out, p)
    check_grid(cells_json, nonfinite, reference_pool(values, present, group, stat))


def assert_same_grid(got, want):
    (v, p), (wv, wp) = got, want
    np.testing.assert_array_equal(p, wp)
    np.testing.assert_allclose(np.where(p, v, 0.0), np.where(wp, wv, 0.0), rtol=1e-12, atol=0)
    assert (np.isnan(v) & p).tolist() == (np.isnan(wv) & wp).tolist()


@pytest.mark.parametrize("rule", ["min", "max", "mean"])
@pytest.mark.parametrize("group", [1, 2, 3, 7, 64, 1000])
def test_pool_equals_numpy_reference(rule, group):
    rng = np.random.default_rng(group)
    values = rng.lognormal(-8, 3, size=(6, 211)).astype(np.float32)
    present = rng.random(values.shape) > 0.2
    kinds = rng.random(values.shape)
    values[kinds < 0.01] = np.nan
    values[(kinds >= 0.01) & (kinds < 0.02)] = np.inf
    values[(kinds >= 0.02) & (kinds < 0.03)] = -np.inf
    values[~present] = np.nan
    got = pooling.pool(values, present, group, rule)
    assert_same_grid(got, h.numpy_pool(values, present, group, rule))


def test_last_group_is_shorter():
    values = np.arange(10, dtype=np.float64)[None, :]
    present = np.ones_like(values, bool)
    out, p = pooling.pool(values, present, 4, "mean")
    assert out.tolist() == [[1.5, 5.5, 8.5]] and p.all()  # 0..3, 4..7, 8..9
    out, _ = pooling.pool(values, present, 4, "max")
    assert out.tolist() == [[3.0, 7.0, 9.0]]
    firsts, ends = pooling.column_bounds(np.arange(100, 110), 4)
    assert firsts.tolist() == [100, 104, 108] and ends.tolist() == [103, 107, 109]


def test_missing_cells_never_count():
    """A missing cell holds NaN in the matrix; it neither wins nor counts in a mean."""
    values = np.array([[np.nan, 2.0, 4.0, np.nan, np.nan, np.nan]])
    present = np.array([[False, True, True, False, False, False]])
    out, p = pooling.pool(values, present, 3, "mean")
    assert out[0, 0] == 3.0 and p.tolist() == [[True, False]]
    assert pooling.pool_span(values[0], present[0], "min") == (2.0, True)
    value, there = pooling.pool_span(values[0, 3:], present[0, 3:], "mean")
    assert math.isnan(value) and not there


@pytest.mark.parametrize(
    "cells,want",
    [
        ([1.0, np.nan, np.inf, -np.inf], "nan"),
        ([np.inf, 1.0, -np.inf], "inf"),
        ([-np.inf, 5.0], "-inf"),
        ([np.inf], "inf"),
    ],
)
@pytest.mark.parametrize("rule", ["min", "max", "mean"])
def test_nonfinite_precedence(cells, want, rule):
    value, there = pooling.pool_span(np.array(cells), np.ones(len(cells), bool), rule)
    assert there and {"nan": math.isnan(value), "inf": value == math.inf, "-inf": value == -math.inf}[want]


@settings(max_examples=100, deadline=None)
@given(
    cells=st.lists(st.tuples(finite_or_not, st.booleans()), min_size=1, max_size=12),
    stat=st.sampled_from(["min", "max", "nonfinite", "p50", "mean", "value"]),
)
def test_pool_span_is_one_pooled_group(cells, stat):
    values = np.array([c[0] for c in cells], np.float64)
    present = np.array([c[1] for c in cells], bool)
    values[~present] = np.nan
    rule = metadata.pooling_rule(stat)
    value, there = pooling.pool_span(values, present, rule)
    out, p = pooling.pool(values[None, :], present[None, :], len(cells), rule) if len(cells) > 1 else (values[None, :], present[None, :])
    assert there == bool(p[0, 0])
    assert (math.isnan(value) and math.isnan(out[0, 0])) or value == out[0, 0]


# ------------------------------------------------------------- RunData.pooled


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("pooled")
    h.write_synthetic_run(str(root / "run1"))
    return str(root)


@pytest.mark.parametrize("max_steps", [None, 1, 4, 5, 12, 100])
def test_run_pooled_equals_heatmap(logdir, max_steps):
    """A notebook's `RunData.pooled` is what the dashboard's heatmap shows."""
    import json
    from urllib.parse import urlencode

    data = tb_stepsize.load_runs(logdir)["run1"]
    client, _, _ = h.make_app(logdir)
    for metric in data.metrics:
        for stat in data.stats[metric]:
            pooled = data.pooled(metric, stat, max_steps)
            params = dict(run="run1", metric=metric, stat=stat)
            if max_steps:
                params["max_steps"] = max_steps
            out = json.loads(client.get(f"{BASE}/heatmap?" + urlencode(params)).get_data(as_text=True))
            cells, nonfinite = encode_grid(pooled.values, pooled.present)
            assert cells == out["values"] and nonfinite == out["nonfinite"]
            assert pooled.firsts.tolist() == out["steps"] and pooled.ends.tolist() == out["step_ends"]
            assert pooled.wall_times.tolist() == out["wall_times"]
            assert pooled.rule == out["pooling"] == metadata.pooling_rule(stat)
            assert pooled.group == pooling.group_size(len(data.steps), max_steps)
            check_grid(out["values"], out["nonfinite"], reference_pool(data.matrix(metric, stat), data.mask(metric, stat), pooled.group, stat))


def test_run_pooled_checks_names(logdir):
    data = tb_stepsize.load_runs(logdir)["run1"]
    with pytest.raises(KeyError, match="nope"):
        data.pooled("nope", "p50")
    with pytest.raises(KeyError, match="value"):
        data.pooled("step", "value", 3)

"""The findings rules (tb_stepsize/findings.py) on made-up runs: each rule fires
where it should, with the right layer and onset, and stays quiet elsewhere.

`Run` is plain data with the attributes the rules read (`RunData`'s
`steps`, `layers`, `layer_info`, `stats`, `column`), so every case is a few
arrays.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tb_stepsize import findings, metadata

T = 60
STEPS = np.arange(1, T + 1)


class Run:
    """A run made of `{(metric, stat): [L, T] array}`; NaN cells are missing
    unless listed in `present`."""

    def __init__(self, layers, columns, dtypes=None, present=None, steps=STEPS):
        self.steps = np.asarray(steps)
        self.layers = list(layers)
        self.layer_info = [{"path": p, "dtype": (dtypes or {}).get(p, "float32")} for p in layers]
        self._columns = {k: np.asarray(v, np.float32) for k, v in columns.items()}
        self._present = present or {}
        self.stats = {}
        for metric, stat in self._columns:
            self.stats.setdefault(metric, list(metadata.stats_for(metric)))

    def column(self, metric, stat):
        values = self._columns.get((metric, stat))
        if values is None:  # recorded metric, statistic not made up: all missing
            shape = (len(self.layers), self.steps.size)
            return np.full(shape, np.nan, np.float32), np.zeros(shape, bool)
        present = self._present.get((metric, stat), ~np.isnan(values))
        return values, present


def healthy(n_layers=4, seed=0):
    """Columns of a run where nothing is wrong: steps ~1e-4, ratio ~1e-3, rms ~0.8."""
    rng = np.random.default_rng(seed)
    shape = (n_layers, T)
    p50 = 1e-4 * rng.uniform(0.5, 2, shape)
    return {
        ("step", "p50"): p50,
        ("step", "max"): p50 * 10,
        ("step", "zero_fraction"): np.zeros(shape),
        ("step", "nonfinite"): np.zeros(shape),
        ("intended_step", "max"): p50 * 10,
        ("update_ratio", "value"): 1e-3 * rng.uniform(0.5, 2, shape),
        ("lost_fraction", "value"): np.zeros(shape),
        ("second_moment_rms", "value"): rng.uniform(0.6, 1.0, shape),
    }


LAYERS = ["a/kernel", "a/bias", "b/kernel", "b/bias"]


def kinds(found):
    return [(f.kind, f.layer) for f in found]


def test_healthy_run_has_no_findings():
    assert findings.evaluate(Run(LAYERS, healthy())) == []


def test_nonfinite_names_first_layers_and_onset():
    cols = healthy()
    cols[("step", "nonfinite")][2, 30:] = 5
    cols[("step", "nonfinite")][3, 30:] = 1
    cols[("step", "nonfinite")][0, 31:] = 7  # later: not at the onset
    (f,) = [f for f in findings.evaluate(Run(LAYERS, cols)) if f.kind == "nonfinite"]
    assert (f.severity, f.layer, f.first_step, f.last_step) == ("error", "b/kernel", 31, T)
    assert f.layers == ("b/kernel", "b/bias")
    assert f.value == 6 and "step 31" in f.message


def test_nonfinite_second_moment_but_not_update_ratio():
    cols = healthy()
    cols[("update_ratio", "value")][1, :] = np.nan  # an all-zero weight: NaN by definition
    present = {("update_ratio", "value"): np.ones((4, T), bool)}
    assert findings.evaluate(Run(LAYERS, cols, present=present)) == []
    cols[("second_moment_rms", "value")][0, 12] = np.inf
    found = findings.evaluate(Run(LAYERS, cols, present=present))
    assert kinds(found) == [("nonfinite", "a/kernel")] and found[0].first_step == 13


def test_no_update_tells_rounding_from_zero_gradient():
    cols = healthy()
    cols[("step", "max")][0, 20:] = 0  # rounded away: intended step non-zero
    cols[("step", "max")][2, 50:] = 0
    cols[("intended_step", "max")][2, 50:] = 0  # zero gradient
    found = findings.evaluate(Run(LAYERS, cols, dtypes={"a/kernel": "bfloat16"}))
    stopped = {f.layer: f for f in found if f.kind == "no_update"}
    assert set(stopped) == {"a/kernel", "b/kernel"}
    assert stopped["a/kernel"].first_step == 21 and "bfloat16" in stopped["a/kernel"].message
    assert stopped["b/kernel"].first_step == 51 and "gradient is zero" in stopped["b/kernel"].message
    assert all(f.severity == "error" for f in stopped.values())


def test_no_update_of_every_layer_is_one_run_finding():
    cols = healthy()
    cols[("step", "max")][:] = 0
    cols[("step", "zero_fraction")][:] = 1
    cols[("lost_fraction", "value")][:] = 1
    found = findings.evaluate(Run(LAYERS, cols, dtypes=dict.fromkeys(LAYERS, "bfloat16")))
    assert kinds(found) == [("no_update", None)]  # nothing else repeats what it says
    assert found[0].first_step == 1 and found[0].layers == tuple(LAYERS)
    assert "rounded away in bfloat16" in found[0].message


def test_no_update_needs_a_window_and_the_end_of_the_run():
    cols = healthy()
    cols[("step", "max")][0, T - 4 :] = 0  # 4 < window
    cols[("step", "max")][1, 10:30] = 0  # stopped, then moved again
    assert [f for f in findings.evaluate(Run(LAYERS, cols)) if f.kind == "no_update"] == []


def test_partly_frozen_onset_and_share():
    cols = healthy()
    share = np.linspace(0, 0.8, T)  # crosses 0.5 at column 37 (step 38)
    cols[("step", "zero_fraction")][2] = share
    (f,) = findings.evaluate(Run(LAYERS, cols))
    first = int(np.argmax(share >= 0.5))
    assert (f.kind, f.layer, f.first_step, f.last_step) == ("partly_frozen", "b/kernel", first + 1, T)
    assert f.value == pytest.approx(0.8) and f.threshold == 0.5 and "80%" in f.message


def test_lost_to_rounding_takes_precedence_over_partly_frozen():
    cols = healthy()
    cols[("lost_fraction", "value")][1, 10:] = 0.7
    cols[("step", "zero_fraction")][1, 10:] = 0.7
    found = findings.evaluate(Run(LAYERS, cols, dtypes={"a/bias": "float16"}))
    assert kinds(found) == [("lost_to_rounding", "a/bias")]
    assert found[0].first_step == 11 and "float16" in found[0].message


def test_missing_cells_neither_count_nor_break_a_window():
    cols = healthy()
    zero = cols[("step", "zero_fraction")]
    zero[0, 10:16] = 0.9  # 6 steps, one of them missing: 5 present
    zero[0, 12] = np.nan
    (f,) = findings.evaluate(Run(LAYERS, cols))
    assert (f.kind, f.first_step, f.last_step) == ("partly_frozen", 11, 16)
    zero[0, 11] = np.nan  # only 4 present: not enough
    assert findings.evaluate(Run(LAYERS, cols)) == []


def test_ratio_high_and_low():
    cols = healthy()
    cols[("update_ratio", "value")][0, 20:30] = 0.05
    cols[("update_ratio", "value")][3, 5:] = 1e-5
    found = findings.evaluate(Run(LAYERS, cols))
    assert kinds(found) == [("ratio_low", "b/bias"), ("ratio_high", "a/kernel")]
    low, high = found
    assert (low.first_step, low.threshold) == (6, 1e-4)
    assert (high.first_step, high.last_step, high.threshold) == (21, 30, 1e-2)


def test_ratio_low_ignores_warm_up_and_decay_but_not_a_low_plateau():
    cols = healthy()
    schedule = np.minimum(1, np.arange(T) / 10) * np.minimum(1, (T - np.arange(T)) / 10)
    cols[("update_ratio", "value")] = cols[("update_ratio", "value")] * np.maximum(schedule, 1e-3)
    assert findings.evaluate(Run(LAYERS, cols)) == []  # every layer is slow in warm-up and decay only
    cols[("update_ratio", "value")][1] *= 1e-2  # one layer slow on the plateau too
    (f,) = findings.evaluate(Run(LAYERS, cols))
    assert (f.kind, f.layer) == ("ratio_low", "a/bias")


def test_ratio_high_does_not_judge_a_weight_that_starts_at_zero():
    cols = healthy()
    ratio = cols[("update_ratio", "value")]
    ratio[1, 0] = np.nan  # all-zero at the start (a bias): its scale comes from training
    ratio[1, 1:15] = np.geomspace(1, 2e-3, 14)  # large while it grows from zero
    ratio[1, 40:50] = 0.05  # and later
    ratio[2, 40:50] = 0.05  # a weight that started non-zero: judged
    present = {("update_ratio", "value"): np.ones((4, T), bool)}
    (f,) = findings.evaluate(Run(LAYERS, cols, present=present))
    assert (f.kind, f.layer, f.first_step) == ("ratio_high", "b/kernel", 41)
    cols[("update_ratio", "value")][1, 10:50] = 1e-6  # ratio_low still judges it
    assert ("ratio_low", "a/bias") in kinds(findings.evaluate(Run(LAYERS, cols, present=present)))


def test_rms_spike_merges_adjacent_steps_and_names_layers():
    cols = healthy()
    rms = cols[("second_moment_rms", "value")]
    rms[0, 40:42] = [12, 30]
    rms[2, 41] = 9
    rms[3, 4] = 50  # too early: fewer than `window` earlier values
    (f,) = findings.evaluate(Run(LAYERS, cols))
    assert (f.kind, f.layer, f.first_step, f.last_step, f.value) == ("rms_spike", "a/kernel", 41, 42, 30)
    assert f.layers == ("a/kernel", "b/kernel")


def test_rms_spike_needs_both_the_floor_and_the_recent_level():
    cols = healthy()
    rms = cols[("second_moment_rms", "value")]
    rms[0, :] = 20  # always high: not a spike
    rms[1, 30] = 3  # 4x its level but below the floor
    assert findings.evaluate(Run(LAYERS, cols)) == []


def test_outlier_layer_key_bias_is_explained():
    layers = ["attn/query/kernel", "attn/key/bias", "attn/value/kernel", "out/kernel"]
    cols = healthy()
    cols[("step", "p50")][1] *= 1e-4
    (f,) = findings.evaluate(Run(layers, cols))
    assert (f.kind, f.severity, f.layer) == ("outlier_layer", "info", "attn/key/bias")
    assert f.value == pytest.approx(-4, abs=0.5) and "softmax" in f.message
    cols[("step", "p50")][1] *= 1e8  # far larger: a neutral explanation
    (f,) = findings.evaluate(Run(layers, cols))
    assert "larger" in f.message and "softmax" not in f.message


def test_sgd_run_without_adam_metrics():
    cols = {k: v for k, v in healthy().items() if k[0] in ("step", "update_ratio")}
    cols[("step", "max")][0, 30:] = 0
    found = findings.evaluate(Run(LAYERS, cols))
    assert kinds(found) == [("no_update", "a/kernel")]
    assert "does not move it" in found[0].message


@pytest.mark.parametrize("steps", [1, 4])
def test_too_few_steps_to_judge(steps):
    cols = {k: v[:, :steps] * 0 for k, v in healthy().items()}  # every windowed rule would fire
    cols[("update_ratio", "value")] += 1
    assert findings.evaluate(Run(LAYERS, cols, steps=STEPS[:steps])) == []


def test_all_nan_layers_and_empty_runs_do_not_raise():
    cols = {k: np.full((4, T), np.nan) for k in healthy()}
    assert findings.evaluate(Run(LAYERS, cols)) == []
    assert findings.evaluate(Run([], {}, steps=[])) == []


def test_sorted_by_severity_then_onset_and_to_dict():
    cols = healthy()
    cols[("step", "zero_fraction")][0, 5:] = 0.9
    cols[("step", "nonfinite")][3, 50] = 1
    cols[("update_ratio", "value")][2, 20:] = 0.5
    found = findings.evaluate(Run(LAYERS, cols))
    assert kinds(found) == [("nonfinite", "b/bias"), ("partly_frozen", "a/kernel"), ("ratio_high", "b/kernel")]
    d = found[0].to_dict()
    assert set(d) >= {"kind", "layer", "metric", "first_step", "last_step", "severity", "value", "threshold", "message"}
    assert d["layers"] == ["b/bias"]


def _brute_stretches(cond, present, min_len):
    out = []
    for r in range(cond.shape[0]):
        start = length = 0
        last = None
        for c in range(cond.shape[1]):
            if not present[r, c]:
                continue
            if cond[r, c]:
                if length == 0:
                    start = c
                length += 1
                last = c
            else:
                if length >= min_len:
                    out.append((r, start, last, length))
                length = 0
        if length >= min_len:
            out.append((r, start, last, length))
    return out


@settings(max_examples=200, deadline=None)
@given(
    st.integers(1, 4).flatmap(
        lambda rows: st.tuples(
            st.lists(st.lists(st.sampled_from([0, 1, 2]), min_size=9, max_size=9), min_size=rows, max_size=rows),
            st.integers(1, 4),
        )
    )
)
def test_stretches_equal_a_plain_loop(case):
    cells, min_len = case
    cells = np.array(cells)
    cond, present = cells == 1, cells != 2
    got = list(zip(*(a.tolist() for a in findings.stretches(cond, present, min_len))))
    assert got == _brute_stretches(cond, present, min_len)

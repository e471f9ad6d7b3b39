"""`live_findings`: the training-time window and the once-only reporting (no TensorFlow)."""

import time
import warnings

import numpy as np
import pytest

from tb_stepsize import findings, live_findings, metadata

METRICS = list(metadata.METRICS)  # what Adam records
STEP_COLS = {s: i for i, s in enumerate(metadata.ELEMENT_STATS)}


def layers(n):
    return [{"path": f"layer{i}/kernel", "shape": [4, 4], "dtype": "float32"} for i in range(n)]


def logged_step(n_layers, rng, *, zero_layers=(), nan=False, missing=()):
    """One logged step as the monitor's writer gets it: `{metric: [L, S]}`."""
    out = {}
    for m in METRICS:
        if metadata.METRICS[m].elementwise:
            s = np.abs(rng.standard_normal((n_layers, len(metadata.ELEMENT_STATS)))).astype(np.float32) * 1e-3 + 1e-4
            s[:, STEP_COLS["zero_fraction"]] = 0
            s[:, STEP_COLS["nonfinite"]] = 0
        else:
            s = (np.full((n_layers, 1), 1e-3 if m == "update_ratio" else 0.5, np.float32) if m != "lost_fraction" else np.zeros((n_layers, 1), np.float32))
        out[m] = s
    for row in zero_layers:
        out["step"][row, :] = 0
        out["step"][row, STEP_COLS["zero_fraction"]] = 1
    if nan:
        out["step"][0, STEP_COLS["nonfinite"]] = 3
    for row in missing:
        for m in METRICS:
            out[m][row] = np.nan
    return out


class Run:
    """A whole run in memory, read the way `findings.evaluate` reads a `RunData`."""

    def __init__(self, layer_dicts, steps, logged):
        self.layers = [d["path"] for d in layer_dicts]
        self.layer_info = layer_dicts
        self.steps = np.asarray(steps)
        self.stats = {m: list(metadata.stats_for(m)) for m in METRICS}
        self._logged = logged

    def column(self, metric, stat):
        col = metadata.ELEMENT_STATS.index(stat) if metadata.METRICS[metric].elementwise else 0
        values = np.stack([s[metric][:, col] for s in self._logged], axis=1)
        present = np.stack([~np.isnan(s["step"][:, STEP_COLS["nonfinite"]]) for s in self._logged], axis=1)
        return np.where(present, values, np.nan), present


def test_window_gives_the_rules_what_the_whole_run_gives():
    rng = np.random.default_rng(0)
    logged = [logged_step(6, rng, zero_layers=(2,), nan=(t == 30), missing=(4,) if t % 3 else ()) for t in range(40)]
    steps = np.arange(1, 41)
    window = live_findings.Window(layers(6), METRICS, history=100)
    for step, stats in zip(steps, logged):
        window.add(step, stats)
    expected = findings.evaluate(Run(layers(6), steps, logged))
    assert sorted(f.kind for f in expected) == ["no_update", "nonfinite"]
    assert findings.evaluate(window) == expected


def test_window_keeps_the_last_history_steps_in_order():
    rng = np.random.default_rng(1)
    window = live_findings.Window(layers(3), METRICS, history=7)
    logged = [logged_step(3, rng) for _ in range(20)]
    for step, stats in enumerate(logged, start=1):
        window.add(step, stats)
        kept = min(step, 7)
        np.testing.assert_array_equal(window.steps, np.arange(step - kept + 1, step + 1))
        values, present = window.column("step", "max")
        np.testing.assert_array_equal(values, np.stack([s["step"][:, STEP_COLS["max"]] for s in logged[step - kept : step]], 1))
        assert present.all()
    assert findings.evaluate(Run(layers(3), np.arange(14, 21), logged[13:])) == findings.evaluate(window)


def test_window_keeps_only_the_columns_the_rules_read():
    read = set()

    class Spy(live_findings.Window):
        def column(self, metric, stat):
            read.add((metric, stat))
            return super().column(metric, stat)

    window = Spy(layers(2), METRICS)
    rng = np.random.default_rng(2)
    for step in range(1, 12):
        window.add(step, logged_step(2, rng, zero_layers=(1,), nan=step == 9))  # no_update reads intended_step
    findings.evaluate(window)
    assert read == set(findings.COLUMNS)
    assert window.stats == {m: [s for mm, s in findings.COLUMNS if mm == m] for m in dict(findings.COLUMNS)}
    sgd = live_findings.Window(layers(2), ["step", "update_ratio"])
    assert sgd.stats == {"step": ["max", "p50", "zero_fraction", "nonfinite"], "update_ratio": ["value"]}


def feed(live, rng, steps, **kwargs):
    for step in steps:
        live.add(step, logged_step(4, rng, **kwargs))


def test_each_finding_is_reported_once_and_counted():
    rng = np.random.default_rng(3)
    seen = []
    live = live_findings.LiveFindings(layers(4), METRICS, on_finding=seen.append, interval=0)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        feed(live, rng, range(1, 4), zero_layers=(1,))
        live.check()
        assert seen == [] and live.found == []  # 3 logged steps: too few to judge
        feed(live, rng, range(4, 9), zero_layers=(1,))
        live.check()
        feed(live, rng, range(9, 20), zero_layers=(1,))
        live.check()
    assert [(f.kind, f.layer) for f in seen] == [("no_update", "layer1/kernel")]
    assert live.found == seen and not live.stop_requested
    assert [str(w.message) for w in caught] == [f"tb_stepsize: {seen[0].message}"]


def test_stop_on_and_its_names():
    rng = np.random.default_rng(4)
    live = live_findings.LiveFindings(layers(4), METRICS, stop_on=("nonfinite",), interval=0)
    feed(live, rng, [1])
    live.check()
    assert not live.stop_requested
    feed(live, rng, [2], nan=True)
    with pytest.warns(UserWarning, match="NaN/Inf"):
        live.check()
    assert live.stop_requested
    assert live_findings.check_stop_on("nonfinite") == ("nonfinite",)
    assert live_findings.check_stop_on(None) == ()
    with pytest.raises(ValueError, match="unknown finding kinds.*'nan'"):
        live_findings.check_stop_on(["nonfinite", "nan"])
    assert set(findings.KINDS) >= {"nonfinite", "no_update", "partly_frozen", "lost_to_rounding", "rms_spike", "outlier_layer"}


def test_a_raising_on_finding_propagates_and_the_rest_come_next_time():
    rng = np.random.default_rng(5)
    calls = []

    def on_finding(f):
        calls.append(f)
        if len(calls) == 1:
            raise RuntimeError("mine")

    live = live_findings.LiveFindings(layers(4), METRICS, on_finding=on_finding, interval=0)
    feed(live, rng, range(1, 8), zero_layers=(1, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(RuntimeError, match="mine"):
            live.check()
        live.check()  # nothing new, but the second finding is still due
    assert [f.layer for f in calls] == ["layer1/kernel", "layer2/kernel"]


def test_a_failing_rule_warns_once_and_stops_evaluating(monkeypatch):
    def broken(run, thresholds=None):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(findings, "evaluate", broken)
    live = live_findings.LiveFindings(layers(4), METRICS, interval=0)
    feed(live, np.random.default_rng(6), [1])
    with pytest.warns(UserWarning, match="evaluating findings failed: ZeroDivisionError"):
        live.check()
    feed(live, np.random.default_rng(6), [2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        live.check()


def test_a_costly_evaluation_waits_unless_forced(monkeypatch):
    calls = []

    def slow(run, thresholds=None):
        calls.append(1)
        time.sleep(0.02)
        return []

    monkeypatch.setattr(findings, "evaluate", slow)
    live = live_findings.LiveFindings(layers(4), METRICS, interval=60)
    rng = np.random.default_rng(7)
    feed(live, rng, [1])
    live.check()
    feed(live, rng, [2])
    live.check()  # within 20x the last evaluation's time: skipped
    assert len(calls) == 1
    live.check(force=True)
    assert len(calls) == 2
    live.check(force=True)  # nothing new since
    assert len(calls) == 2


def test_an_info_is_logged_not_warned(caplog):
    rng = np.random.default_rng(8)
    seen = []
    live = live_findings.LiveFindings(layers(4), METRICS, on_finding=seen.append, interval=0)
    for step in range(1, 8):
        stats = logged_step(4, rng)
        stats["step"][3, STEP_COLS["p50"]] *= 1e-4  # layer 3's median step: 4 decades below the others
        live.add(step, stats)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with caplog.at_level("INFO", logger="tb_stepsize"):
            live.check()
    assert [(f.kind, f.severity, f.layer) for f in seen] == [("outlier_layer", "info", "layer3/kernel")]
    assert caplog.messages == [f"tb_stepsize: {seen[0].message}"]

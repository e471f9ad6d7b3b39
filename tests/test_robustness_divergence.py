"""Divergence: a run whose loss goes to NaN/Inf keeps being logged.

NaN/Inf counts per layer (`nonfinite` of `step`) appear at the step where
the weights stop being finite, equal to a count made from the weights
themselves (recorded around every update); `TerminateOnNaN` still stops
training beside the callback; the plugin flags the non-finite cells.
"""

import json

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import tb_stepsize  # noqa: E402
from test_robustness_monitor import STEPS_PER_EPOCH, X, fit  # noqa: E402


# --------------------------------------------------------------- divergence


class WeightRecorder(keras.callbacks.Callback):
    def on_train_begin(self, logs=None):
        self.weights = [[v.numpy().copy() for v in self.model.trainable_variables]]
        self.losses = []

    def on_train_batch_end(self, batch, logs=None):
        self.weights.append([v.numpy().copy() for v in self.model.trainable_variables])
        self.losses.append(float(logs["loss"]))


def expected_nonfinite(recorder):
    """`[L, T]` count of NaN/Inf elements of |w_t - w_{t-1}| (float32), from the weights."""
    counts = []
    for old, new in zip(recorder.weights[:-1], recorder.weights[1:]):
        with np.errstate(invalid="ignore", over="ignore"):
            counts.append([int((~np.isfinite(np.abs(n - o))).sum()) for o, n in zip(old, new)])
    return np.array(counts, np.float64).T


def test_poisoned_batch_nonfinite_at_that_step_and_terminate_on_nan(tmp_path):
    x = X.copy()
    x[40, 3] = np.inf  # in batch 2 (0-based), i.e. update 3
    recorder = WeightRecorder()
    history, callback, ours, _ = fit(
        tmp_path, epochs=3, x=x, callbacks=[recorder, keras.callbacks.TerminateOnNaN()]
    )
    assert ours == []
    updates = len(recorder.weights) - 1
    # Update 3 puts NaN into the hidden kernel (row 3: inf input); the loss of
    # the next batch is NaN and TerminateOnNaN stops right after it.
    assert updates == 4 and not np.isfinite(recorder.losses[-1])
    assert all(np.isfinite(loss) for loss in recorder.losses[:-1])
    run = tb_stepsize.load(str(tmp_path))
    assert list(run.steps) == [1, 2, 3, 4]
    nonfinite = run.matrix("step", "nonfinite")
    expected = expected_nonfinite(recorder)
    np.testing.assert_array_equal(nonfinite, expected)
    assert (nonfinite[:, :2] == 0).all()
    hidden_kernel = run.layers.index(next(l for l in run.layers if "hidden" in l and "kernel" in l))
    assert nonfinite[hidden_kernel, 2] == 16  # the poisoned input row of the kernel
    assert 0 < nonfinite[:, 2].sum() < sum(int(np.prod(i["shape"])) for i in run.layer_info)
    sizes = [int(np.prod(info["shape"])) for info in run.layer_info]
    np.testing.assert_array_equal(nonfinite[:, 3], sizes)  # everything NaN after that
    assert np.isnan(run.matrix("step", "p50")[:, 3]).all()
    assert np.isfinite(run.matrix("step", "p50")[:, :2]).all()


def test_exploding_sgd_keeps_logging_nonfinite_counts(tmp_path):
    """A huge learning rate: the weights overflow layer by layer; every count matches the weights."""
    import plugin_helpers as h

    recorder = WeightRecorder()
    history, callback, ours, _ = fit(
        tmp_path, epochs=2, optimizer=keras.optimizers.SGD(5e3), callbacks=[recorder]
    )
    assert ours == []
    assert len(history.history["loss"]) == 2  # no TerminateOnNaN: training goes on
    run = tb_stepsize.load(str(tmp_path))
    assert list(run.steps) == list(range(1, 2 * STEPS_PER_EPOCH + 1))
    expected = expected_nonfinite(recorder)
    assert expected[:, 0].sum() == 0 and expected[:, -1].sum() > 0, expected
    np.testing.assert_array_equal(run.matrix("step", "nonfinite"), expected)
    first_bad = int(np.argmax(expected.sum(axis=0) > 0))
    assert not np.isfinite(recorder.losses[-1])

    client, _, _ = h.make_app(str(tmp_path))
    for stat in ("nonfinite", "p50", "max"):
        response = client.get(f"/data/plugin/stepsize/heatmap?run=.&metric=step&stat={stat}")
        assert response.status_code == 200, response.get_data()[:300]
        out = json.loads(response.get_data())
        assert out["steps"] == list(run.steps)
        if stat == "nonfinite":
            got = np.array([[np.nan if v is None else v for v in row] for row in out["values"]])
            np.testing.assert_array_equal(got, expected)
        else:  # a cell whose layer has no finite element is flagged, not dropped
            flagged = {(i, j) for i, j, _ in out["nonfinite"]}
            for i, j in zip(*np.nonzero(~np.isfinite(run.matrix("step", stat)))):
                assert (int(i), int(j)) in flagged
                assert j >= first_bad

"""A logdir with designed values for the dashboard's browser tests (no TF).

Run `designed`: six layers x 40 steps, Adam metrics.  For `step` every
statistic of layer i at step s is `STAT_FACTORS[stat] * median(i, s)`, where
the median ramps up over a 10-step warm-up and the layer `FAST` moves 10x
more than the others.  Designed special cells (all statistics):

* NAN_CELL: NaN;  INF_CELL: +Inf;  ZERO_CELL: exactly 0.

`update_ratio` is 1e-3 for every layer except FAST (1e-2).
Run `XSS_RUN` (a directory named like an HTML tag) holds the same layers at
half the step size, plus a layer named `XSS_LAYER` that is only logged from
step `XSS_LAYER_FROM` on (a second layer set), so its earlier cells are missing.
"""

import math
import os

import numpy as np

from tb_stepsize import metadata
from tb_stepsize.summary import StepWriter

LAYERS = [
    {"path": "model/embedding/embeddings", "shape": [100, 16], "dtype": "float32"},
    {"path": "model/encoder/block_0/self_attention/query_projection/kernel", "shape": [16, 16], "dtype": "float32"},
    {"path": "model/encoder/block_0/self_attention/query_projection/bias", "shape": [16], "dtype": "float32"},
    {"path": "model/fast/kernel", "shape": [16, 16], "dtype": "float32"},
    {"path": "model/head/kernel", "shape": [16, 4], "dtype": "float32"},
    {"path": "model/head/bias", "shape": [4], "dtype": "float32"},
]
FAST = 3
STEPS = list(range(1, 41))
NAN_CELL = (4, 25)  # (row, step)
INF_CELL = (2, 33)
ZERO_CELL = (5, 30)
METRICS = ["step", "effective_lr", "intended_step", "update_ratio", "lost_fraction", "second_moment_rms"]
STAT_FACTORS = {
    "min": 0.01,
    "p01": 0.05,
    "p05": 0.2,
    "p25": 0.5,
    "p50": 1.0,
    "p75": 2.0,
    "p95": 5.0,
    "p99": 8.0,
    "max": 20.0,
    "mean": 1.3,
    "rms": 2.0,
}
RUN = "designed"
XSS_RUN = "<img src=x onerror=window.__xss=1>"
XSS_LAYER = {"path": "<img src=x onerror=window.__xss=2>/kernel", "shape": [3], "dtype": "float32"}
XSS_LAYER_FROM = 11  # first step at which XSS_LAYER is logged


def median(row, step, scale=1.0):
    warm = 0.1 + 0.9 * min(1.0, step / 10.0)
    base = 1e-4 * (1.0 + 0.25 * (row % 3))
    return scale * base * warm * (10.0 if row == FAST else 1.0)


def step_value(row, step, stat="p50", scale=1.0):
    """The designed `step` statistic (float32-rounded, as stored)."""
    if (row, step) == NAN_CELL:
        return math.nan
    if (row, step) == INF_CELL:
        return math.inf
    if (row, step) == ZERO_CELL:
        return 0.0
    return float(np.float32(STAT_FACTORS[stat] * median(row, step, scale)))


def update_ratio(row):
    return float(np.float32(1e-2 if row == FAST else 1e-3))


def _element_stats(values_fn, n_rows, step, zero_cells=()):
    out = np.zeros((n_rows, len(metadata.ELEMENT_STATS)), np.float32)
    for row in range(n_rows):
        for k, stat in enumerate(metadata.ELEMENT_STATS):
            if stat == "zero_fraction":
                out[row, k] = 1.0 if (row, step) in zero_cells else 0.0
            elif stat == "nonfinite":
                out[row, k] = 0.0
            else:
                out[row, k] = values_fn(row, stat)
    return out


def _hist(values_fn, n_rows, size_of):
    hists = np.zeros((n_rows, metadata.HIST_BINS), np.int64)
    for row in range(n_rows):
        p50 = values_fn(row, "p50")
        n = size_of(row)
        if p50 == 0:
            hists[row, 0] = n
            continue
        if not math.isfinite(p50):
            hists[row, metadata.HIST_FINITE_BINS + 1] = n
            continue
        centre = int(math.floor(2 * math.log2(p50))) - metadata.HIST_OFFSET + 1
        weights = np.array([1, 3, 8, 14, 8, 5, 2, 1], np.float64)
        counts = np.floor(weights / weights.sum() * n).astype(np.int64)
        counts[3] += n - counts.sum()
        hists[row, centre - 3 : centre + 5] = counts
    return hists


def write_run(run_dir, layers, scale=1.0, steps=STEPS, wall0=1000.0):
    n = len(layers)
    sizes = [max(1, int(np.prod(l["shape"]))) for l in layers]
    writer = StepWriter(run_dir, layers, METRICS, "Adam")
    for step in steps:
        def sv(row, stat, step=step):
            if row >= len(LAYERS):
                return float(np.float32(STAT_FACTORS[stat] * 3e-5 * scale))
            return step_value(row, step, stat, scale)

        def lr(row, stat):
            return float(np.float32(STAT_FACTORS[stat] * 1e-3 * (0.5 if row % 2 else 1.0)))

        step_stats = _element_stats(sv, n, step, zero_cells={ZERO_CELL})
        stats = {
            "step": step_stats,
            "effective_lr": _element_stats(lr, n, step),
            "intended_step": step_stats,
            "update_ratio": np.array([[update_ratio(r) * scale] for r in range(n)], np.float32),
            "lost_fraction": np.array([[0.0 if r != 5 else 0.25] for r in range(n)], np.float32),
            "second_moment_rms": np.array([[1.0 + 0.5 * r + (20.0 if step == 20 and r == 1 else 0)] for r in range(n)], np.float32),
        }
        hists = {
            "step": _hist(sv, n, lambda r: sizes[r]),
            "effective_lr": _hist(lr, n, lambda r: sizes[r]),
            "intended_step": _hist(sv, n, lambda r: sizes[r]),
        }
        writer.write(step, stats, hists, wall_time=wall0 + 2.0 * step)
    writer.close()


def write_logdir(logdir):
    write_run(os.path.join(logdir, RUN), LAYERS)
    # The XSS layer is watched from XSS_LAYER_FROM on: missing before.
    xss = os.path.join(logdir, XSS_RUN)
    write_run(xss, LAYERS, scale=0.5, steps=[s for s in STEPS if s < XSS_LAYER_FROM])
    write_run(xss, LAYERS + [XSS_LAYER], scale=0.5, steps=[s for s in STEPS if s >= XSS_LAYER_FROM])
    return logdir


def append_steps(logdir, steps):
    """More logged steps of `designed` (a live run), in a new event file."""
    write_run(os.path.join(logdir, RUN), LAYERS, steps=steps)

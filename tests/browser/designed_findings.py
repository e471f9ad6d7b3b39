"""A logdir whose runs have known findings, for the Findings panel's browser
tests (written with the pure-python `StepWriter`, no TF).

Four layers x 40 logged steps, Adam metrics; every healthy layer moves by
~1e-4 per step (update ratio 1e-3, second-moment RMS ~0.8).

* `FROZEN_RUN`: `FROZEN_LAYER` has 80% of its elements not moving
  (`zero_fraction` 0.8, its quantiles up to p75 exactly 0) from step
  `FROZEN_FROM` on -> a `partly_frozen` warning; `NAN_LAYER` has NaN
  elements at step `NAN_STEP` only -> a `nonfinite` error.
* `STUCK_RUN` (bfloat16 weights): no element of any layer moves although
  the optimizer's intended step is ~1e-4 -> one whole-run `no_update` error.
* `HEALTHY_RUN`: nothing wrong -> no findings.

`FROZEN_RUN` also has ordinary TensorBoard scalars (`SCALARS`, for the
scalar strip): a falling loss that is NaN at `NAN_STEP` and a constant
learning rate; the other runs have none.
"""

import math
import os

import numpy as np

import plugin_helpers
from tb_stepsize import metadata
from tb_stepsize.summary import StepWriter

LAYERS = [
    {"path": "model/dense/kernel", "shape": [32, 16], "dtype": "float32"},
    {"path": "model/dense/bias", "shape": [16], "dtype": "float32"},
    {"path": "model/out<img src=x onerror=window.__xss=3>/kernel", "shape": [16, 4], "dtype": "float32"},
    {"path": "model/out/bias", "shape": [4], "dtype": "float32"},
]
STEPS = list(range(1, 41))
FROZEN_RUN, STUCK_RUN, HEALTHY_RUN = "frozen_and_nan", "stuck_bfloat16", "healthy"
FROZEN_LAYER, FROZEN_FROM = "model/dense/kernel", 15
NAN_LAYER, NAN_STEP = LAYERS[2]["path"], 25  # markup in its name: shown as text
SCALARS = {
    "stepsize/loss": [(s, math.nan if s == 25 else 2.0 / s) for s in range(1, 41)],
    "stepsize/learning_rate": [(s, 1e-3) for s in range(1, 41)],
}
METRICS = ["step", "intended_step", "update_ratio", "lost_fraction", "second_moment_rms"]
FACTORS = {"min": 0.01, "p01": 0.05, "p05": 0.2, "p25": 0.5, "p50": 1.0, "p75": 2.0, "p95": 5.0, "p99": 8.0, "max": 20.0, "mean": 1.3, "rms": 2.0}
_COL = {s: i for i, s in enumerate(metadata.ELEMENT_STATS)}


def _moving(n_rows, step):
    """Element statistics of layers moving by ~1e-4 (a little different per layer and step)."""
    out = np.zeros((n_rows, len(metadata.ELEMENT_STATS)), np.float32)
    for row in range(n_rows):
        median = 1e-4 * (1 + 0.3 * row) * (1 + 0.1 * np.sin(step / 3 + row))
        for stat, f in FACTORS.items():
            out[row, _COL[stat]] = f * median
    return out


def _write(run_dir, dtype, stats_of):
    layers = [dict(l, dtype=dtype) for l in LAYERS]
    writer = StepWriter(run_dir, layers, METRICS, "Adam", histograms=False)
    n = len(layers)
    for step in STEPS:
        intended = _moving(n, step)
        stats = {
            "step": intended.copy(),
            "intended_step": intended,
            "update_ratio": np.full((n, 1), 1e-3, np.float32),
            "lost_fraction": np.zeros((n, 1), np.float32),
            "second_moment_rms": np.full((n, 1), 0.8, np.float32),
        }
        stats_of(step, stats)
        writer.write(step, stats, {}, wall_time=1000.0 + 2 * step)
    writer.close()


def _frozen_and_nan(step, stats):
    frozen = [l["path"] for l in LAYERS].index(FROZEN_LAYER)
    if step >= FROZEN_FROM:
        for stat in ("min", "p01", "p05", "p25", "p50", "p75"):
            stats["step"][frozen, _COL[stat]] = 0.0
        stats["step"][frozen, _COL["zero_fraction"]] = 0.8
    if step == NAN_STEP:
        bad = [l["path"] for l in LAYERS].index(NAN_LAYER)
        stats["step"][bad, :] = np.nan
        stats["step"][bad, _COL["nonfinite"]] = 3  # NaN elements (a NaN count would mean "not updated")


def _stuck(step, stats):
    stats["step"][:] = 0.0
    stats["step"][:, _COL["zero_fraction"]] = 1.0
    stats["lost_fraction"][:] = 1.0
    stats["update_ratio"][:] = 0.0


def write_logdir(logdir):
    _write(os.path.join(logdir, FROZEN_RUN), "float32", _frozen_and_nan)
    plugin_helpers.write_scalars(os.path.join(logdir, FROZEN_RUN), SCALARS)
    _write(os.path.join(logdir, STUCK_RUN), "bfloat16", _stuck)
    _write(os.path.join(logdir, HEALTHY_RUN), "float32", lambda step, stats: None)
    return logdir

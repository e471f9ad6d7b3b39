"""Findings during training: the read side's rules on the last logged steps.

The monitor hands every logged step it writes to `LiveFindings.add`.
`Window` keeps, in host memory, only the columns the rules read
(`findings.COLUMNS`) for the last `history` logged steps and offers them the
way `findings.evaluate` reads a run (`steps`, `layers`, `layer_info`,
`stats`, `column`), so training-time findings come from the same rules as
`RunData.findings()`, with no second implementation.  Memory: 4 bytes per
layer, step and kept column plus the presence mask -- about 1.6 MB for 37
layers x 1,000 steps of all six metrics, 22 MB for 500 layers.

On a run longer than `history` logged steps the rules see only the window:
a finding is reported when it shows there (its onset is then at most
`history` steps back), which is what training-time reporting needs.  A
finding's identity is `(kind, layer)`: each is reported once per monitor
(`warnings.warn`, an info through `logging`; then `on_finding`), even if it
ends and comes back later.
"""

import logging
import time
import warnings

import numpy as np

from tb_stepsize import findings, metadata

HISTORY = 1000  # logged steps the window keeps
_LOG = logging.getLogger("tb_stepsize")
_COST_FACTOR = 20  # wait >= 20x the last evaluation's cost between two: <= ~5% of the host's time


class FindingWarning(UserWarning):
    """The warning of a finding during training: its own category, so that
    `warnings.filterwarnings("ignore", category=FindingWarning)` silences
    findings and nothing else (a monitor failure is a plain `UserWarning`)."""


def check_stop_on(stop_on):
    """`stop_on` as a tuple of finding kinds; ValueError for a name no rule reports."""
    kinds = (stop_on,) if isinstance(stop_on, str) else tuple(stop_on or ())
    unknown = [k for k in kinds if k not in findings.KINDS]
    if unknown:
        raise ValueError(f"stop_on: unknown finding kinds {unknown}; known: {list(findings.KINDS)}")
    return kinds


class Window:
    """The last `history` logged steps of the columns the rules read, as a ring buffer.

    `layers` are the monitor's `{"path", "shape", "dtype"}` dicts (model
    order), `metrics` the metrics it records.
    """

    def __init__(self, layers, metrics, history=HISTORY):
        self.layers = [layer["path"] for layer in layers]
        self.layer_info = [dict(layer) for layer in layers]
        self.stats = {}
        for metric, stat in findings.COLUMNS:
            if metric in metrics:
                self.stats.setdefault(metric, []).append(stat)
        self._keys = {(m, s): k for k, (m, s) in enumerate((m, s) for m in self.stats for s in self.stats[m])}
        self._history = int(history)
        self._values = np.full((len(self._keys), len(layers), self._history), np.nan, np.float32)
        self._present = np.zeros((len(layers), self._history), bool)
        self._steps = np.zeros(self._history, np.int64)
        self._added = 0

    def add(self, step, stats):
        """Keep logged step `step`: `stats[m]` `[L, S]` as the writer gets it
        (all `ELEMENT_STATS` columns of an elementwise metric, one otherwise)."""
        j = self._added % self._history
        for (metric, stat), k in self._keys.items():
            col = metadata.ELEMENT_STATS.index(stat) if metadata.METRICS[metric].elementwise else 0
            self._values[k, :, j] = np.asarray(stats[metric])[:, col]
        # As the writer's index: a variable this update did not touch has a NaN count.
        self._present[:, j] = ~np.isnan(np.asarray(stats["step"])[:, metadata.ELEMENT_STATS.index("nonfinite")])
        self._steps[j] = step
        self._added += 1

    def _ordered(self, array):
        """`array`'s kept columns, oldest first (a copy only once the ring wrapped)."""
        if self._added <= self._history:
            return array[..., : self._added]
        j = self._added % self._history
        return np.concatenate([array[..., j:], array[..., :j]], axis=-1)

    @property
    def steps(self):
        return self._ordered(self._steps)

    def column(self, metric, stat):
        """`(values float32 [L, T], present bool [L, T])` over the window."""
        return self._ordered(self._values[self._keys[(metric, stat)]]), self._ordered(self._present)


class LiveFindings:
    """Evaluates the rules on a `Window` and reports each new finding once.

    Each new error or warning is warned (`FindingWarning`), an info is
    logged (`logging`, logger "tb_stepsize", level INFO); then each is
    passed to `on_finding`; an exception raised by `on_finding` propagates to the
    caller (it is the user's code: hiding it would hide their bug, and
    raising is a way to stop training), and the findings after it are
    reported at the next `check`.  An evaluation waits at least `min(interval,
    20 x the last evaluation's time)` after the previous one unless forced,
    so a costly evaluation (hundreds of layers) stays a small share of the
    host's time.  A finding of a kind in `stop_on` sets `stop_requested`.
    """

    def __init__(self, layers, metrics, *, on_finding=None, stop_on=(), history=HISTORY, interval=5.0, thresholds=None):
        self.window = Window(layers, metrics, history)
        self.found = []  # reported findings, in the order reported
        self.stop_requested = False
        self.eval_seconds = 0.0  # the last evaluation's time
        self._on_finding = on_finding
        self._stop_on = check_stop_on(stop_on)
        self._interval = interval
        self._thresholds = thresholds
        self._reported = set()
        self._fresh = False  # steps added since the last evaluation
        self._last = -np.inf
        self._broken = False
        self._queue = []  # new findings not reported yet

    def add(self, step, stats):
        self.window.add(step, stats)
        self._fresh = True

    def check(self, force=False):
        """Evaluate if there is something new (and it is time, unless `force`); report what is new."""
        if not self._broken and self._fresh:
            now = time.monotonic()
            if force or now - self._last >= min(self._interval, _COST_FACTOR * self.eval_seconds):
                self._evaluate(now)
        while self._queue:  # one at a time: after a raising on_finding the rest come next time
            finding = self._queue.pop(0)
            if finding.severity == "info":  # expected or harmless: not worth a warning
                _LOG.info("tb_stepsize: %s", finding.message)
            else:
                warnings.warn(f"tb_stepsize: {finding.message}", FindingWarning, stacklevel=3)
            if self._on_finding is not None:
                self._on_finding(finding)

    def _evaluate(self, now):
        self._fresh = False
        try:
            current = findings.evaluate(self.window, self._thresholds)
        except Exception as e:  # a bug in a rule must not break training
            self._broken = True
            warnings.warn(
                f"tb_stepsize: evaluating findings failed: {type(e).__name__}: {e}; "
                "no more findings are reported during training.",
                stacklevel=4,
            )
            return
        self._last = time.monotonic()
        self.eval_seconds = self._last - now
        for finding in current:
            if (finding.kind, finding.layer) not in self._reported:
                self._reported.add((finding.kind, finding.layer))
                self.found.append(finding)
                self._queue.append(finding)
                self.stop_requested |= finding.kind in self._stop_on

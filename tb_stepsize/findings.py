"""Findings: what looks wrong in a run, in which layer, from which step.

The rules read a few per-layer statistics of a run (`RunData.column`) and
nothing else, so the dashboard, `RunData.findings()` in a notebook and
the training-time callback can share one implementation.  Pure numpy: the
read side imports no framework.

Every rule works on `[L, T]` arrays (layers x logged steps) with a presence
mask: a missing cell (the variable got no gradient at that step, or the
metric was not recorded) neither counts towards a condition nor breaks a run
of consecutive steps.  A condition "for K steps" means K consecutive
*logged* steps at which the layer is present, so a run logged every 10th
step needs 10x as many optimizer steps to show the same finding: thresholds
are in logged steps because that is all a reader can see.

Rules (thresholds are fields of `Thresholds`):

* ``nonfinite`` (error): the first logged step at which any layer's
  elementwise metric has NaN/Inf elements (its ``nonfinite`` count) or its
  ``second_moment_rms`` is not finite.  One finding per run, naming the
  layers (model order) that are non-finite at that step.  ``update_ratio``
  is not judged: it is NaN by definition for an all-zero weight.  A single
  logged step is enough: a NaN is not noise.
* ``no_update`` (error): a layer whose applied ``step`` is exactly 0 for
  every element (``max`` == 0) over its last `window` logged steps.  The
  cause is told apart from ``intended_step``: non-zero means the update was
  rounded away in the weight's dtype; zero (or not recorded) means a zero
  gradient or an optimizer that does not move it.  When no layer moves, one
  run-level finding (``layer`` None) says so.
* ``lost_to_rounding`` (warning): ``lost_fraction`` >= `lost_fraction` for
  `window` consecutive logged steps (layers without a ``no_update`` finding).
* ``partly_frozen`` (warning): ``step``'s ``zero_fraction`` >=
  `frozen_share` for `window` consecutive logged steps, in a layer that
  neither stopped entirely nor loses its updates to rounding (those rules
  say more).  Typical cause: units whose gradient is zero (dead ReLUs) while
  Adam's momentum decays until the step rounds to 0.
* ``ratio_high`` / ``ratio_low`` (warning): ``update_ratio`` above
  `ratio_high` / below `ratio_low` for `window` consecutive logged steps --
  the band around the ~1e-3 rule of thumb (cs231n; DL4J's training UI
  guide).  ``ratio_high`` does not judge a weight that starts at exactly
  zero (biases, norm shifts): its scale comes from training itself, so a
  step relative to its own size says little.  ``ratio_low`` judges only the steps at which the run's median
  layer moves at least half as fast as at its peak: a warm-up (still rising)
  and a learning-rate decay to zero (the end of a cosine schedule) make
  every layer slow on purpose; a run whose learning rate is too low
  everywhere still has a peak, and is judged there.
* ``rms_spike`` (warning): ``second_moment_rms`` above both `rms_floor`
  and `rms_factor` times the mean of the layer's values in the previous
  `rms_history` logged steps (at least `window` of them): Adam's second moment lags a
  sudden rise of the gradient, the precursor of loss spikes reported by
  Wortsman et al. 2023 ("Stable and low-precision training for large-scale
  vision-language models").  One finding per spike (adjacent spiking steps
  merge), naming every layer that spikes in it.
* ``outlier_layer`` (info): a layer whose median ``step`` stays at least
  `outlier_decades` orders of magnitude from the median layer's for
  `outlier_share` of the logged steps (at least `window` of them).  An
  attention key bias is expected to: softmax ignores a constant shift, so
  its gradient is (almost) zero.

A rule judges a layer only with at least `window` present logged steps
(``nonfinite`` excepted).
"""

import dataclasses

import numpy as np

SEVERITIES = ("error", "warning", "info")

# The heatmap that shows each kind of finding, `(metric, statistic)`: where
# the dashboard goes when a finding is clicked (the `findings` route serves
# this table, so the rules and their views are named in one place).
VIEWS = {
    "nonfinite": ("step", "nonfinite"),
    "no_update": ("step", "max"),
    "lost_to_rounding": ("lost_fraction", "value"),
    "partly_frozen": ("step", "zero_fraction"),
    "ratio_high": ("update_ratio", "value"),
    "ratio_low": ("update_ratio", "value"),
    "rms_spike": ("second_moment_rms", "value"),
    "outlier_layer": ("step", "p50"),
}
# Every kind of finding the rules report (one per rule, `ratio_*` two).
KINDS = tuple(VIEWS)
# Every (metric, statistic) the rules read: what a caller must keep to evaluate them
# (the training-time window of `live_findings` keeps these only).
COLUMNS = (
    ("step", "max"),
    ("step", "p50"),
    ("step", "zero_fraction"),
    ("step", "nonfinite"),
    ("intended_step", "max"),
    ("intended_step", "nonfinite"),
    ("effective_lr", "nonfinite"),
    ("update_ratio", "value"),
    ("lost_fraction", "value"),
    ("second_moment_rms", "value"),
)
_ROW_BLOCK_CELLS = 1 << 22  # cells handled at once: bounds temporaries on 10^5-step runs


@dataclasses.dataclass(frozen=True)
class Thresholds:
    """What the rules call a problem; every field is documented in the module docstring."""

    window: int = 5
    frozen_share: float = 0.5
    lost_fraction: float = 0.5
    ratio_high: float = 1e-2
    ratio_low: float = 1e-4
    rms_floor: float = 5.0
    rms_factor: float = 5.0
    rms_history: int = 10
    outlier_decades: float = 2.0
    outlier_share: float = 0.8


@dataclasses.dataclass(frozen=True)
class Finding:
    """One problem: what (`kind`, `metric`), where (`layer`, None for the whole
    run; `layers`: all layers concerned), when (`first_step`..`last_step`,
    logged optimizer steps), how bad (`severity`, the measured `value` and the
    `threshold` it crossed), and a sentence a person can act on."""

    kind: str
    severity: str
    layer: str | None
    metric: str
    first_step: int
    last_step: int
    value: float
    threshold: float
    message: str
    layers: tuple = ()

    def to_dict(self):
        out = dataclasses.asdict(self)
        out["layers"] = list(self.layers)
        return out


# ----------------------------------------------------------- array helpers


def stretches(cond, present, min_len):
    """Runs of consecutive present columns where `cond` holds, per row.

    `cond`, `present`: bool `[L, T]`.  A column that is not present neither
    counts nor breaks a run.  Returns int arrays `(rows, starts, ends,
    lengths)` of the runs with at least `min_len` present columns (`starts`
    and `ends` are column indices, inclusive), in row-major order.
    """
    hit = cond & present
    n_cols = cond.shape[1]
    rows_hit = np.nonzero(hit.any(axis=1))[0]  # most rows of a healthy run have none: skip them
    found = [[], [], [], []]
    block = max(1, _ROW_BLOCK_CELLS // max(1, n_cols))
    for lo in range(0, rows_hit.size, block):
        rows = rows_hit[lo : lo + block]
        h, p = hit[rows], present[rows]
        run_id = np.cumsum(p & ~h, axis=1, dtype=np.int32)  # a break starts a new run
        r, cols = np.nonzero(h)
        key = r.astype(np.int64) * (n_cols + 1) + run_id[r, cols]
        new = np.concatenate([[True], key[1:] != key[:-1]])  # keys are sorted (row-major, run ids rise)
        first = np.nonzero(new)[0]
        lengths = np.diff(np.append(first, key.size))
        keep = lengths >= min_len
        found[0].append(rows[r[first][keep]])
        found[1].append(cols[first][keep])
        found[2].append(cols[first + lengths - 1][keep])
        found[3].append(lengths[keep])
    return tuple(np.concatenate(f).astype(np.int64) if f else np.zeros(0, np.int64) for f in found)


def trailing_stretch(cond, present, min_len):
    """Per row: the first column of the run of `cond` that reaches the last
    present column, if that run has at least `min_len` present columns, else -1."""
    rows, starts, ends, _ = stretches(cond, present, min_len)
    out = np.full(cond.shape[0], -1)
    last_present = np.where(present.any(axis=1), present.shape[1] - 1 - np.argmax(present[:, ::-1], axis=1), -1)
    reaches_end = ends == last_present[rows]
    out[rows[reaches_end]] = starts[reaches_end]
    return out


def layer_median(values, ok):
    """`[T]`: per column, the median over the rows where `ok` (NaN if none).

    One sort of the transposed grid (NaN sorts last) instead of
    `np.nanmedian`, which is ~20x slower on a few hundred rows.
    """
    x = np.sort(np.where(ok, values, np.nan).T, axis=1)
    n = ok.sum(axis=0)
    cols = np.arange(x.shape[0])
    lo, hi = np.maximum((n - 1) // 2, 0), np.maximum(n // 2, 0)
    with np.errstate(invalid="ignore"):
        median = 0.5 * (x[cols, lo].astype(np.float64) + x[cols, hi])
    median[n == 0] = np.nan
    return median


def _names(layers, rows, most=3):
    names = [layers[r] for r in rows[:most]]
    more = len(rows) - len(names)
    return ", ".join(names) + (f" (+{more} more)" if more > 0 else "")


# ------------------------------------------------------------------ inputs


class _Columns:
    """The statistics the rules read, each read once from the run: `get(metric,
    stat)` -> `(values float [L, T], present bool [L, T])`, or None if the run
    did not record it."""

    def __init__(self, run):
        self._run = run
        self._read = {}

    def get(self, metric, stat):
        if stat not in self._run.stats.get(metric, ()):
            return None
        key = (metric, stat)
        if key not in self._read:
            values, present = self._run.column(metric, stat)
            self._read[key] = (np.asarray(values), np.asarray(present, bool))
        return self._read[key]


class _Context:
    """What every rule needs: the run's axes, its columns and the thresholds."""

    def __init__(self, run, thresholds):
        self.steps = np.asarray(run.steps)
        self.layers = list(run.layers)
        self.dtypes = [str(info.get("dtype", "")) for info in run.layer_info]
        self.columns = _Columns(run)
        self.t = thresholds

    def step(self, col):
        return int(self.steps[col])

    def finding(self, kind, severity, row, metric, first, last, value, threshold, message, rows=None):
        layer = None if row is None else self.layers[row]
        rows = [] if rows is None else rows
        return Finding(
            kind=kind,
            severity=severity,
            layer=layer,
            metric=metric,
            first_step=self.step(first),
            last_step=self.step(last),
            value=float(value),
            threshold=float(threshold),
            message=message,
            layers=tuple(self.layers[r] for r in rows) or ((layer,) if layer else ()),
        )


# ------------------------------------------------------------------- rules


def _nonfinite(ctx):
    bad = np.zeros((len(ctx.layers), ctx.steps.size), bool)
    for metric, stat in (("step", "nonfinite"), ("intended_step", "nonfinite"), ("effective_lr", "nonfinite")):
        col = ctx.columns.get(metric, stat)
        if col is not None:
            values, present = col
            bad |= present & ((values > 0) | np.isnan(values))
    col = ctx.columns.get("second_moment_rms", "value")
    if col is not None:
        values, present = col
        bad |= present & ~np.isfinite(values)
    if not bad.any():
        return []
    onset = int(np.nonzero(bad.any(axis=0))[0][0])
    rows = np.nonzero(bad[:, onset])[0]
    last = int(np.nonzero(bad.any(axis=0))[0][-1])
    count = ctx.columns.get("step", "nonfinite")
    value = float(np.nansum(count[0][rows, onset])) if count is not None else float(len(rows))
    message = (
        f"NaN/Inf updates from step {ctx.step(onset)} on in {_names(ctx.layers, rows)}: training diverged "
        "there; look at the loss and the learning rate just before that step (too high a learning rate, "
        "a bad batch, or an overflow in low precision are the usual causes)."
    )
    return [ctx.finding("nonfinite", "error", int(rows[0]), "step", onset, last, value, 0, message, list(rows))]


def _no_update(ctx):
    step_max = ctx.columns.get("step", "max")
    if step_max is None:
        return []
    values, present = step_max
    start = trailing_stretch(values == 0, present, ctx.t.window)
    rows = np.nonzero(start >= 0)[0]
    if rows.size == 0:
        return []
    last = int(present.shape[1] - 1 - np.argmax(present[:, ::-1].any(axis=0)))
    intended = ctx.columns.get("intended_step", "max")

    def rounded(row):
        if intended is None:
            return None
        v, p = intended
        window = p[row, start[row] :] & np.isfinite(v[row, start[row] :])
        return bool((v[row, start[row] :][window] > 0).any())

    def cause(row):
        r = rounded(row)
        if r:
            return (
                f"the optimizer's update is non-zero but is rounded away in {ctx.dtypes[row] or 'the weight dtype'} "
                "(keep the weights in float32, e.g. a mixed-precision policy, or raise the learning rate)"
            )
        if r is None:
            return "its gradient is zero or the optimizer does not move it (check that it is used and not frozen by the optimizer)"
        return "its gradient is zero (check that it is used in the loss and that no stop_gradient or dead activation blocks it)"

    n_present = present.any(axis=1).sum()
    if rows.size == n_present and rows.size > 1:
        first = int(start[rows].min())
        message = (
            f"No weight moved in any of the {rows.size} layers from step {ctx.step(first)} on: "
            f"{cause(int(rows[0]))}."
        )
        return [ctx.finding("no_update", "error", None, "step", first, last, 0.0, 0, message, list(rows))]
    out = []
    for row in rows:
        first = int(start[row])
        message = f"{ctx.layers[row]} has not moved since step {ctx.step(first)}: {cause(int(row))}."
        out.append(ctx.finding("no_update", "error", int(row), "step", first, last, 0.0, 0, message))
    return out


@dataclasses.dataclass(frozen=True)
class _WindowRule:
    """A warning for a layer whose `metric`/`stat` compares (`test`) against the
    `threshold` field of `Thresholds` for `window` consecutive logged steps.
    `message` is formatted with the layer, dtype, value, onset step and
    threshold."""

    kind: str
    metric: str
    stat: str
    threshold: str
    test: object  # numpy comparison ufunc
    message: str


_LOST = _WindowRule(
    "lost_to_rounding", "lost_fraction", "value", "lost_fraction", np.greater_equal,
    "{value:.0%} of the elements of {layer} get a non-zero update that rounds away in {dtype} (since step "
    "{step}): keep the weights in float32 (a mixed-precision policy) or raise the learning rate.",
)
_FROZEN = _WindowRule(
    "partly_frozen", "step", "zero_fraction", "frozen_share", np.greater_equal,
    "{value:.0%} of the elements of {layer} have not moved since about step {step}: their gradient is zero "
    "while the rest still learn -- often dead ReLU units or unused embedding rows (look at the activations "
    "feeding this layer).",
)
_RATIO_HIGH = _WindowRule(
    "ratio_high", "update_ratio", "value", "ratio_high", np.greater,
    "{layer} changes by {value:.3g} of its size per step (since step {step}), above {threshold:g}: its "
    "weights are overwritten within a few hundred steps; lower its learning rate.",
)
_RATIO_LOW = _WindowRule(
    "ratio_low", "update_ratio", "value", "ratio_low", np.less,
    "{layer} changes by only {value:.3g} of its size per step (since step {step}), below {threshold:g}: it "
    "barely learns; its learning rate may be too low for its scale.",
)


def _windowed(ctx, rule, skip_rows=(), judged=None):
    """One warning per layer (not in `skip_rows`) for the runs of `rule` lasting
    `window` logged steps, only where `judged` (`[L, T]` or `[1, T]`, None:
    everywhere): from the first such run's start to the last one's end;
    `value` is the metric at that end."""
    col = ctx.columns.get(rule.metric, rule.stat)
    if col is None:
        return []
    values, present = col
    if judged is not None:
        present = present & judged
    threshold = getattr(ctx.t, rule.threshold)
    with np.errstate(invalid="ignore"):
        cond = rule.test(values, threshold) & np.isfinite(values)
    rows, starts, ends, _ = stretches(cond, present, ctx.t.window)
    out = []
    for row in np.unique(rows):
        if row in skip_rows:
            continue
        mine = rows == row
        first, last = int(starts[mine].min()), int(ends[mine].max())
        value = float(values[row, last])
        message = rule.message.format(
            layer=ctx.layers[row], dtype=ctx.dtypes[row] or "its dtype", value=value, step=ctx.step(first), threshold=threshold
        )
        out.append(ctx.finding(rule.kind, "warning", int(row), rule.metric, first, last, value, threshold, message))
    return out


def _not_started_at_zero(ctx):
    """`[L, 1]`: the layers whose `update_ratio` is judged against `ratio_high`.

    A weight that starts at exactly zero (a bias, a norm's shift: its first
    ratio is NaN) gets its scale from training itself, so a step relative
    to its own size says little about the learning rate; the ~1e-3 rule of
    thumb is about weights.  On the demo these biases stay near 1e-2 long
    after the warm-up peak while their kernels are back below it.
    """
    col = ctx.columns.get("update_ratio", "value")
    if col is None:
        return None
    values, present = col
    first = np.argmax(present, axis=1)
    started_at_zero = present.any(axis=1) & ~np.isfinite(values[np.arange(values.shape[0]), first])
    return ~started_at_zero[:, None]


def _median_layer_peak(ctx):
    """`[1, T]`: the run's median layer `update_ratio` is at least half its peak
    (not a warm-up, not a decay to zero).  None if the run has no ratio.

    The median is over the weights that did not start at zero (if any): a
    bias's ratio while it grows from zero says nothing about the schedule.
    """
    col = ctx.columns.get("update_ratio", "value")
    if col is None:
        return None
    values, present = col
    weights = _not_started_at_zero(ctx)
    if weights.any():
        values, present = values[weights[:, 0]], present[weights[:, 0]]
    median = layer_median(values, present & np.isfinite(values))
    if not np.isfinite(median).any():
        return None
    return (np.nan_to_num(median, nan=-np.inf) >= 0.5 * np.nanmax(median))[None, :]


def _recent_level(values, ok, history, at_least):
    """`[L, T]` float64: mean of each row's `ok` values in the `history`
    columns before each column (NaN with fewer than `at_least` of them)."""
    x = np.where(ok, values, 0.0).astype(np.float64)
    sums = np.cumsum(np.pad(x, ((0, 0), (1, 0))), axis=1)  # sums[:, j] = sum of columns < j
    counts = np.cumsum(np.pad(ok, ((0, 0), (1, 0))), axis=1, dtype=np.int32)
    lo = np.zeros_like(sums[:, :-1])
    lo_counts = np.zeros_like(counts[:, :-1])
    lo[:, history:], lo_counts[:, history:] = sums[:, : -history - 1], counts[:, : -history - 1]
    n = counts[:, :-1] - lo_counts
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n >= at_least, (sums[:, :-1] - lo) / n, np.nan)


def _rms_spikes(ctx):
    col = ctx.columns.get("second_moment_rms", "value")
    if col is None:
        return []
    values, present = col
    t = ctx.t
    ok = present & np.isfinite(values)
    with np.errstate(invalid="ignore"):
        above = ok & (values > t.rms_floor)
    spikes = np.zeros(values.shape, bool)
    judged = np.nonzero(above.any(axis=1))[0]  # the level matters only where the floor is crossed
    level = _recent_level(values[judged], ok[judged], t.rms_history, t.window)  # rows `judged`
    with np.errstate(invalid="ignore"):
        spikes[judged] = above[judged] & (values[judged] > t.rms_factor * level)
    hit_cols = np.nonzero(spikes.any(axis=0))[0]
    if hit_cols.size == 0:
        return []
    groups = np.split(hit_cols, np.nonzero(np.diff(hit_cols) > 1)[0] + 1)
    out = []
    for group in groups:
        rows = np.nonzero(spikes[:, group].any(axis=1))[0]
        peak = values[rows][:, group]
        top_row, top_col = np.unravel_index(np.nanargmax(np.where(spikes[rows][:, group], peak, -np.inf)), peak.shape)
        row, colj = int(rows[top_row]), int(group[top_col])
        value = float(values[row, colj])
        message = (
            f"second_moment_rms jumped to {value:.3g} (recent level {level[judged == row][0, colj]:.3g}) at step "
            f"{ctx.step(colj)} in {_names(ctx.layers, rows)}: Adam's second moment lags a sudden rise of the "
            "gradient, so these steps are oversized; this often precedes a loss spike (lower the learning rate, "
            "raise beta_2's responsiveness, or clip gradients)."
        )
        out.append(ctx.finding("rms_spike", "warning", row, "second_moment_rms", int(group[0]), int(group[-1]), value, t.rms_floor, message, list(rows)))
    return out


def _outliers(ctx):
    col = ctx.columns.get("step", "p50")
    if col is None:
        return []
    values, present = col
    t = ctx.t
    with np.errstate(invalid="ignore"):
        usable = present & (values > 0) & (values < np.inf)
    logs = np.log10(np.where(usable, values, np.float32(1)))
    median = layer_median(logs, usable).astype(logs.dtype)
    distance = logs - median[None, :]  # NaN in columns without a usable layer: never far
    judged = usable & np.isfinite(median)[None, :]
    with np.errstate(invalid="ignore"):
        far = judged & (np.abs(distance) >= t.outlier_decades)
    counts, n = far.sum(axis=1), judged.sum(axis=1)
    out = []
    for row in np.nonzero((n >= t.window) & (counts >= t.outlier_share * np.maximum(n, 1)))[0]:
        cols = np.nonzero(far[row])[0]
        decades = float(np.nanmedian(distance[row, cols]))
        direction = "smaller" if decades < 0 else "larger"
        layer = ctx.layers[row]
        if layer.endswith("key/bias") and decades < 0:
            why = (
                "expected for an attention key bias: softmax ignores a constant shift of the scores, "
                "so its gradient is (almost) zero and Adam moves it by noise"
            )
        else:
            why = "check its initialisation, a per-layer learning-rate multiplier, or a normalisation that rescales it"
        message = (
            f"The median step of {layer} stays about 10^{abs(decades):.1f} times {direction} than the median "
            f"layer's at {counts[row]} of {n[row]} logged steps: {why}."
        )
        out.append(
            ctx.finding("outlier_layer", "info", int(row), "step", int(cols[0]), int(cols[-1]), decades, t.outlier_decades, message)
        )
    return out


def evaluate(run, thresholds=None):
    """The findings of `run` (anything with `steps`, `layers`, `layer_info`,
    `stats` and `column(metric, stat)`, e.g. a `RunData`): most severe first,
    then by `first_step`, then in model order."""
    t = thresholds or Thresholds()
    ctx = _Context(run, t)
    if ctx.steps.size == 0 or not ctx.layers:
        return []
    found = _nonfinite(ctx)
    stopped = _no_update(ctx)
    found += stopped
    stopped_rows = {ctx.layers.index(l) for f in stopped for l in f.layers}
    lost = _windowed(ctx, _LOST, skip_rows=stopped_rows)
    found += lost
    explained = stopped_rows | {ctx.layers.index(f.layer) for f in lost}
    found += _windowed(ctx, _FROZEN, skip_rows=explained)
    found += _windowed(ctx, _RATIO_HIGH, skip_rows=stopped_rows, judged=_not_started_at_zero(ctx))
    found += _windowed(ctx, _RATIO_LOW, skip_rows=stopped_rows, judged=_median_layer_peak(ctx))
    found += _rms_spikes(ctx)
    found += _outliers(ctx)
    order = {layer: i for i, layer in enumerate(ctx.layers)}
    return sorted(
        found,
        key=lambda f: (SEVERITIES.index(f.severity), f.first_step, -1 if f.layer is None else order[f.layer], f.kind),
    )

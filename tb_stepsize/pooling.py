"""Pooling adjacent logged steps into the columns of a wide heatmap (pure numpy).

The dashboard asks for at most `max_steps = N` columns.  When a run has more
logged steps T than N, adjacent steps are pooled into `ceil(T / g)` columns
of `g = ceil(T / N)` steps each (`group_size`; the last column may be
shorter).  Within a group, per layer:

* if any cell is NaN the pooled cell is NaN, else if any is +Inf it is +Inf,
  else if any is -Inf it is -Inf (a non-finite value never disappears);
* otherwise it is the `min` of the finite values for the statistic `min`,
  their `max` for `max` and `nonfinite`, and their arithmetic mean (in
  float64) for every other statistic.  Which rule a statistic pools
  by is a fact of the format: `metadata.pooling_rule(stat)` names it, and
  the functions here take that name;
* it is missing only if every cell of the group is missing.

Without pooling (T <= N or no `max_steps`) the values are exactly those of
`RunData.matrix(metric, stat)`.  The plugin serves these functions'
results, and `RunData.pooled` calls them too, so a notebook pools exactly
as the dashboard does::

    run = tb_stepsize.load("logs/run")
    grid = run.pooled("step", "p50", max_steps=500)
    grid.values, grid.present  # [L, C]: what the heatmap shows
    grid.firsts, grid.ends     # first and last logged step of each column
"""

import numpy as np

POOL_BLOCK_CELLS = 1 << 22  # cells pooled at once: bounds the temporaries of a huge heatmap


def group_size(num_steps, max_steps):
    """Steps per pooled column so that at most `max_steps` columns remain."""
    if max_steps is None or num_steps <= max_steps:
        return 1
    return -(-num_steps // max_steps)


def pool(values, present, group, rule):
    """Pools `[L, T]` `values` (with presence mask) into `[L, ceil(T/group)]`.

    Returns `(pooled, pooled_present)` in the same representation: a present
    cell holds a finite value or the NaN/+Inf/-Inf that won the group.
    Means are taken in float64.  `group <= 1` returns the inputs themselves.
    """
    if group <= 1:
        return values, present
    n_layers, n_steps = values.shape
    cols = -(-n_steps // group)
    out = np.empty((n_layers, cols))
    out_present = np.empty((n_layers, cols), bool)
    block = max(1, POOL_BLOCK_CELLS // max(1, n_steps))
    for start in range(0, n_layers, block):
        rows = slice(start, start + block)
        out[rows], out_present[rows] = _pool_rows(values[rows], present[rows], group, rule)
    return out, out_present


def pool_span(values, present, rule):
    """One pooled value of 1-D `values` (with presence mask): `(value, present)`.

    What `pool` makes of a group holding exactly these cells; the plugin's
    `cell` route pools one layer's steps `first..last` with it.
    """
    pooled, pooled_present = _pool_rows(np.asarray(values)[None, :], np.asarray(present)[None, :], max(1, len(values)), rule)
    return float(pooled[0, 0]), bool(pooled_present[0, 0])


def _pool_rows(values, present, group, rule):
    n_layers, n_steps = values.shape
    cols = -(-n_steps // group)
    pad = cols * group - n_steps
    v = np.pad(values.astype(np.float64), ((0, 0), (0, pad)), constant_values=np.nan).reshape(n_layers, cols, group)
    p = np.pad(present, ((0, 0), (0, pad)), constant_values=False).reshape(n_layers, cols, group)
    finite = p & np.isfinite(v)
    count = finite.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        if rule == "min":
            agg = np.where(finite, v, np.inf).min(axis=-1)
        elif rule == "max":
            agg = np.where(finite, v, -np.inf).max(axis=-1)
        else:
            agg = np.where(finite, v, 0.0).sum(axis=-1) / count
    out = np.where(count > 0, agg, np.nan)
    out[(p & (v == -np.inf)).any(axis=-1)] = -np.inf
    out[(p & (v == np.inf)).any(axis=-1)] = np.inf
    out[(p & np.isnan(v)).any(axis=-1)] = np.nan
    return out, p.any(axis=-1)


def column_bounds(steps, group):
    """(first step, last step) of every pooled column."""
    steps = np.asarray(steps)
    if steps.size == 0:
        return steps, steps
    firsts = steps[::group]
    ends = steps[np.minimum(np.arange(group - 1, steps.size + group - 1, group), steps.size - 1)]
    return firsts, ends

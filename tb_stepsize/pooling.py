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

Rows pool the same way (`pool_groups`, the dashboard's rows grouped by
module): each column of a group row pools its members' cells of that
column by the same rule, the mean weighted by the members' element counts.

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
    return _reduce(v, p, rule)


def _reduce(v, p, rule, weights=None):
    """One rule over the last axis of float64 `v` (presence `p`): `(pooled, present)`.

    The one statement of the rules above.  `weights` (one per cell of the
    last axis, or None for equal weights) weigh the mean: the min and max
    and the non-finite precedence do not depend on them.
    """
    finite = p & np.isfinite(v)
    with np.errstate(invalid="ignore", divide="ignore"):
        if rule == "min":
            agg = np.where(finite, v, np.inf).min(axis=-1)
        elif rule == "max":
            agg = np.where(finite, v, -np.inf).max(axis=-1)
        else:
            w = np.ones(v.shape[-1]) if weights is None else np.asarray(weights, np.float64)
            agg = np.where(finite, v * w, 0.0).sum(axis=-1) / np.where(finite, w, 0.0).sum(axis=-1)
    out = np.where(finite.any(axis=-1), agg, np.nan)
    out[(p & (v == -np.inf)).any(axis=-1)] = -np.inf
    out[(p & (v == np.inf)).any(axis=-1)] = np.inf
    out[(p & np.isnan(v)).any(axis=-1)] = np.nan
    return out, p.any(axis=-1)


def pool_groups(values, present, groups, rule, weights=None):
    """Pools rows of a `[L, C]` grid into `[len(groups), C]`: row g pools, in
    each column, the cells of the rows `groups[g]` (a list of row indices).

    The rules are the step axis's (`pool`): NaN, then +Inf, then -Inf win;
    `min` of the members' cells for "min", `max` for "max", else their mean
    weighted by `weights` (float `[L]`, e.g. each variable's element count;
    None: equal weights) over the members present and finite in that column;
    a cell is missing only if every member's is.  A one-row group is that row.
    """
    n_cols = values.shape[1]
    out = np.empty((len(groups), n_cols))
    out_present = np.empty((len(groups), n_cols), bool)
    for g, rows in enumerate(groups):
        rows = np.asarray(rows, np.int64)
        if rows.size == 1:  # exactly the row (no float64 round trip through a weight)
            out[g], out_present[g] = values[rows[0]], present[rows[0]]
            continue
        v = np.asarray(values[rows], np.float64).T  # [C, members]
        w = None if weights is None else np.asarray(weights, np.float64)[rows]
        out[g], out_present[g] = _reduce(v, np.asarray(present[rows]).T, rule, w)
    return out, out_present


def column_bounds(steps, group):
    """(first step, last step) of every pooled column."""
    steps = np.asarray(steps)
    if steps.size == 0:
        return steps, steps
    firsts = steps[::group]
    ends = steps[np.minimum(np.arange(group - 1, steps.size + group - 1, group), steps.size - 1)]
    return firsts, ends

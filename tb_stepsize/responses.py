"""What each of the plugin's data routes answers, as plain JSON data built from a `RunData`.

No HTTP and no caching here (that is `plugin` and `runstore`): each function
takes already-checked request values and returns the dict the route sends,
so a route's meaning can be read, and tested, in one place.  Grids are
encoded by `encoding.encode_grid`.
"""

import dataclasses
import math

import numpy as np

from tb_stepsize import findings as rules
from tb_stepsize import layer_groups, pooling, reader
from tb_stepsize.encoding import encode_grid

_UNREADABLE = {"layers": [], "layer_info": [], "metrics": [], "stats": {}, "max_step": -1, "num_steps": 0, "optimizer": ""}


def tags_entry(summary, problems):
    """One run of `tags`: its `RunData.summary()` (None if unreadable) and its problems."""
    return {**(_UNREADABLE if summary is None else summary), "problems": list(problems)}


@dataclasses.dataclass(frozen=True)
class RowRequest:
    """Which rows a `heatmap` shows: grouped at `depth` (None: one row per
    layer), with the groups `expand` listed, only variables of `kind`
    (None: all) -- see `layer_groups`."""

    depth: "int | None" = None
    expand: tuple = ()
    kind: "str | None" = None

    @property
    def plain(self):
        return self.depth is None and self.kind is None


def heatmap(run, data, metric, stat, max_steps, start=None, end=None, rows=RowRequest()):
    """`stat` of `metric` for every layer (or the `rows` asked for, groups
    pooled over their members: `layer_groups`), pooled into at most
    `max_steps` columns over the logged steps `start..end`."""
    pooled = data.pooled(metric, stat, max_steps, start, end)
    values, present = pooled.values, pooled.present
    if rows.plain:
        shown = [layer_groups.Row(p, (i,), "", False) for i, p in enumerate(data.layers)]
    else:
        shown = layer_groups.rows(data.layers, rows.depth, rows.expand, rows.kind)
        weights = layer_groups.element_counts(data.layer_info)
        values, present = pooling.pool_groups(values, present, [r.members for r in shown], pooled.rule, weights)
    cells, nonfinite = encode_grid(values, present)
    return {
        "run": run,
        "metric": metric,
        "stat": stat,
        "layers": [r.label for r in shown],
        # per row: how many layers a group row pools (0 for a layer's row), its group ("" for none)
        "row_members": [len(r.members) if r.is_group else 0 for r in shown],
        "row_groups": [r.group for r in shown],
        "num_layers": len(data.layers),
        "steps": pooled.firsts.tolist(),
        "step_ends": pooled.ends.tolist(),
        # null for a wall time that is not a finite number (a damaged event)
        "wall_times": [w if np.isfinite(w) else None for w in pooled.wall_times.tolist()],
        "values": cells,
        "nonfinite": nonfinite,
        "pooling": pooled.rule,
    }


def layer(run, data, layer, metric, max_steps):
    """Every statistic of `metric` for one layer, pooled as `heatmap` pools them."""
    data.check(metric, layer=layer)
    row = data.layers.index(layer)
    names = data.stats[metric]
    columns, present = [], None
    for name in names:  # one statistic at a time: at most one matrix is read at once
        pooled = data.pooled(metric, name, max_steps)
        columns.append(np.asarray(pooled.values[row], np.float64))
        present = pooled.present[row]
    values = np.stack(columns, axis=1)  # [C, S]
    cells, nonfinite = encode_grid(values, np.repeat(present[:, None], len(names), axis=1))
    return {
        "run": run,
        "layer": layer,
        "metric": metric,
        "stats": list(names),
        "steps": pooled.firsts.tolist(),
        "step_ends": pooled.ends.tolist(),
        "values": cells,
        "nonfinite": nonfinite,
    }


def cell(run, data, layer, metric, first, last, max_steps=None, start=None, end=None):
    """Every statistic of `metric` for one layer pooled over the logged steps
    `first..last` (from the pooled matrices if that is a column of the grid
    pooled to `max_steps` over `start..end`)."""
    values, present = data.pooled_span(metric, layer, first, last, max_steps, start, end)
    cells, nonfinite = encode_grid(values, present)
    return {
        "run": run,
        "layer": layer,
        "metric": metric,
        "first": first,
        "last": last,
        "stats": list(data.stats[metric]),
        "values": cells,
        "nonfinite": nonfinite,
    }


def _finite_or_none(value):
    return value if not isinstance(value, float) or math.isfinite(value) else None


def findings(run, data):
    """`data.findings()` with the default thresholds, each as `Finding.to_dict()`
    (a non-finite number as null: JSON has no NaN), the thresholds used, and
    the heatmap that shows each kind (`findings.VIEWS`)."""
    found = [{k: _finite_or_none(v) for k, v in f.to_dict().items()} for f in data.findings()]
    return {
        "run": run,
        "findings": found,
        "thresholds": dataclasses.asdict(rules.Thresholds()),
        "views": {kind: {"metric": metric, "stat": stat} for kind, (metric, stat) in rules.VIEWS.items()},
    }


def scalars(run, series):
    """The run's scalar series (`scalars.read`): per tag its steps and values
    (null for a non-finite value, listed in `nonfinite` as `[j, kind]`)."""
    tags = {}
    for tag, (steps, values) in series.items():
        cells, nonfinite = encode_grid(values, np.ones(values.shape, bool))
        tags[tag] = {"steps": steps.tolist(), "values": cells, "nonfinite": nonfinite}
    return {"run": run, "tags": tags}


def histogram_steps(run, layer, metric, steps):
    return {"run": run, "layer": layer, "metric": metric, "steps": steps.tolist()}


def histogram(run, layer, metric, steps, arrays, step):
    """The histogram logged at the step nearest `step` (the earlier one on a tie)."""
    if not len(arrays):
        raise reader.NotFound(f"no histograms of {metric!r} for layer {layer!r} in run {run!r}")
    i = int(np.searchsorted(steps, step))
    if i == len(steps) or (i > 0 and step - steps[i - 1] <= steps[i] - step):
        i -= 1
    return {"step": int(steps[i]), "bins": arrays[i].tolist()}

"""The Step Sizes dashboard's backend: a TensorBoard plugin named `stepsize`, as thin HTTP routes.

It reads only through `context.data_provider` (so it works the same with
TensorBoard's Python loader and the Rust data server) and imports no
TensorFlow.  Every number it serves comes from `reader.RunData`, the code
behind `tb_stepsize.load`, so the dashboard and a notebook agree.

Each route is a small function: parse and check the parameters, get the run
from the `runstore.RunStore` (listing, signatures, caches), let
`responses` build the answer from plain data.  Errors take one path, the
`_route` decorator: `_HttpError` (400) and `reader.NotFound` (404) become
`{"error": "..."}`, anything else a logged 500 with the same JSON shape --
never an HTML page.  Pooling is described in `pooling`, caching and memory
in `runstore`, the listing and signatures in `listing`.

Routes (under `/data/plugin/stepsize/`)
---------------------------------------
Static: the files of `assets.STATIC_FILES` -- a fixed table of names;
nothing else is ever read from disk.

JSON (errors are `{"error": "..."}` with 400 for a missing or malformed
parameter, 404 for an unknown run/metric/stat/layer):

* `info` -> the format's user-facing facts, from `metadata.describe()` (no
  run data): `{"format_version", "metrics": [{"name", "elementwise",
  "label", "unit", "description", "help", "reference": {"value", "label"}
  or null}, ...], "element_stats", "scalar_stats", "stat_labels",
  "quantile_stats", "pooling": {stat: "min" | "max" | "mean"}}`.
* `tags` -> `{run: {"layers", "layer_info", "metrics", "stats": {metric:
  [names]}, "max_step", "num_steps", "optimizer", "problems"}}`.
* `heatmap?run&metric&stat[&max_steps]` -> `{"run", "metric", "stat",
  "layers", "steps", "step_ends", "wall_times", "values", "nonfinite",
  "pooling"}`.  `values[i][j]` is layer i, column j; null for a missing or
  non-finite cell; `nonfinite` lists `[i, j, "nan" | "inf" | "-inf"]`.
  `steps`/`step_ends` are the first/last logged step of each column,
  `wall_times` the first wall time (null if not finite); `pooling` names the
  rule used for `stat` (see `pooling`).  `max_steps` must be an integer >= 1 (larger
  than 100000 is capped).  Zoom: `start_step` / `end_step` (integers >= 0,
  inclusive, either may be left out) pool only the logged steps in that
  range -- 400 if `end_step < start_step` or no step in it was logged.
  Rows (`layer_groups`): `group_depth=d` (1..32) groups layers by their
  first d path components into rows labelled `<group>/*`, each pooled over
  its members (`pooling.pool_groups`: the step axis's rules, means weighted
  by element count); `expand` (a JSON list of group names) lists those
  groups' members after their group row; `kind` (kernel, bias, norm,
  embedding, other) keeps only variables of that kind.  Then `layers` are
  the row labels, `row_members[i]` the number of layers row i pools (0: a
  layer's row), `row_groups[i]` its group ("" for none), `num_layers` the
  run's layer count.
* `layer?run&layer&metric[&max_steps]` -> `{"run", "layer", "metric",
  "stats", "steps", "step_ends", "values", "nonfinite"}`; `values[j]` holds
  every statistic of column j and `nonfinite` lists `[j, stat_index, kind]`.
* `cell?run&layer&metric&first&last[&max_steps]` -> `{"run", "layer", "metric",
  "first", "last", "stats", "values", "nonfinite"}`: every statistic of one
  layer pooled (same rules) over the logged steps `first..last` inclusive
  -- what a tooltip shows for one heatmap column; `values[s]` is statistic
  s, `nonfinite` lists `[stat_index, kind]`.  400 unless `first <= last`
  are integers, 404 if no step in that range was logged.  Reads only the
  statistics, never histograms; with the heatmap's `max_steps`, a span
  that is one of its columns (with `start_step` / `end_step`: of the zoomed
  heatmap's) is served from the pooled matrices.
* `findings?run` -> `{"run", "findings": [...], "thresholds": {...},
  "views": {kind: {"metric", "stat"}}}`: `RunData.findings()` (the rules of
  `findings`, default thresholds), each finding as `Finding.to_dict()`
  (`kind`, `severity`, `layer` or null for the whole run, `layers`,
  `metric`, `first_step`, `last_step`, `value`, `threshold`, `message`),
  most severe first; `thresholds` the `findings.Thresholds` used; `views`
  the heatmap that shows each kind (`findings.VIEWS`).  Cached per run
  signature like `heatmap`: computed again once TensorBoard has loaded new data.
* `scalars?run` -> `{"run", "tags": {tag: {"steps", "values",
  "nonfinite"}}}`: the run's ordinary TensorBoard scalars (`scalars`: the
  loss, the learning rate...; at most `scalars.MAX_TAGS` tags), values null
  where not finite, `nonfinite` listing `[j, "nan" | "inf" | "-inf"]`.
  `tags` is empty for a run without scalars; 404 for a run without
  step-size data.  Not cached (see the route).
* `histogram_steps?run&layer&metric` -> `{"run", "layer", "metric",
  "steps"}`: the steps that have a histogram of this layer (drill-down).
* `histogram?run&layer&metric&step` -> `{"step", "bins"}`: the histogram
  logged at the step nearest `step` (the earlier one on a tie), bins as
  `[left, right, count]` rows, the first `[0, 0, zeros]`.
"""

import dataclasses
import json
import logging
import os
import re

from werkzeug import wrappers

from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.plugins import base_plugin

from tb_stepsize import assets, layer_groups, metadata, pooling, reader, responses, runstore, scalars
from tb_stepsize.encoding import gzip_json

logger = logging.getLogger(__name__)

MAX_STEPS_CAP = 100_000
MAX_PARAM_CHARS = 4096
_JSON = "application/json"

# URL path -> (file in the package's static/ dir, content type).  The only
# files this plugin ever reads (the list is `assets.STATIC_FILES`).
STATIC_FILES = {"/" + name: (name, kind) for name, kind in assets.STATIC_FILES.items()}
_STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


# ------------------------------------------------------------------ errors and parameters


class _HttpError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def _bad(message):
    return _HttpError(400, message)


@dataclasses.dataclass(frozen=True)
class _Body:
    """A response body that is not a JSON-able value: gzipped JSON or a static file."""

    content: bytes
    content_type: str = _JSON
    encoding: str = "gzip"


def _route(method):
    """Wraps a `(self, request) -> dict | _Body` handler into a WSGI app: the one error path."""

    @wrappers.Request.application
    def app(self, request):
        try:
            result = method(self, request)
        except _HttpError as e:
            return http_util.Respond(request, {"error": str(e)}, _JSON, code=e.code)
        except reader.NotFound as e:
            return http_util.Respond(request, {"error": str(e)}, _JSON, code=404)
        except Exception as e:  # noqa: BLE001 -- report, never an HTML 500 page
            logger.exception("stepsize: %s failed", request.path)
            return http_util.Respond(
                request, {"error": f"internal error: {type(e).__name__}: {e}"}, _JSON, code=500
            )
        if isinstance(result, _Body):
            return http_util.Respond(request, result.content, result.content_type, content_encoding=result.encoding)
        return http_util.Respond(request, result, _JSON)

    app.__name__ = method.__name__
    return app


def _param(request, name, required=True):
    values = request.args.getlist(name)
    if len(values) > 1:
        raise _bad(f"parameter {name!r} given more than once")
    if not values:
        if required:
            raise _bad(f"missing parameter {name!r}")
        return None
    value = values[0]
    if len(value) > MAX_PARAM_CHARS:
        raise _bad(f"parameter {name!r} is too long")
    return value


_INT = re.compile(r"-?[0-9]{1,18}")


def _int_param(request, name, required=True):
    value = _param(request, name, required)
    if value is None:
        return None
    if not _INT.fullmatch(value):
        raise _bad(f"parameter {name!r} must be an integer, got {value[:40]!r}")
    return int(value)


def _max_steps_param(request):
    n = _int_param(request, "max_steps", required=False)
    if n is None:
        return None
    if n < 1:
        raise _bad("max_steps must be at least 1")
    return min(n, MAX_STEPS_CAP)


def _step_range_params(request):
    """`(start, end)` of `start_step` / `end_step` (None where not given); 400
    unless integers >= 0 with `start <= end`."""
    start = _int_param(request, "start_step", required=False)
    end = _int_param(request, "end_step", required=False)
    for name, value in (("start_step", start), ("end_step", end)):
        if value is not None and value < 0:
            raise _bad(f"{name} must not be negative, got {value}")
    if start is not None and end is not None and end < start:
        raise _bad(f"end_step ({end}) must not be before start_step ({start})")
    return start, end


def _check_step_range(data, start, end):
    """400 if the run logged no step in `start..end` (a zoom beyond its steps)."""
    if (start is not None or end is not None) and not data.steps[data.step_slice(start, end)].size:
        have = f"{data.steps[0]}..{data.steps[-1]}" if data.steps.size else "none"
        raise _bad(f"no logged step in [{start}, {end}] (logged steps: {have})")


def _row_params(request):
    """`responses.RowRequest` of `group_depth`, `expand` (a JSON list of group
    names) and `kind` (one of `layer_groups.KINDS`); 400 if malformed."""
    depth = _int_param(request, "group_depth", required=False)
    if depth is not None and not 1 <= depth <= layer_groups.MAX_DEPTH:
        raise _bad(f"group_depth must be between 1 and {layer_groups.MAX_DEPTH}, got {depth}")
    expand = _param(request, "expand", required=False)
    names = ()
    if expand is not None:
        try:
            names = json.loads(expand)
        except ValueError:
            names = None
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise _bad("expand must be a JSON list of group names")
        names = tuple(sorted(set(names)))
    kind = _param(request, "kind", required=False) or None
    if kind is not None and kind not in layer_groups.KINDS:
        raise _bad(f"kind must be one of {', '.join(layer_groups.KINDS)}, got {kind[:40]!r}")
    return responses.RowRequest(depth, names, kind)


@dataclasses.dataclass(frozen=True)
class _LayerRequest:
    """A per-layer request's run, layer and metric, checked, with the run's data."""

    run: str
    layer: str
    metric: str
    scope: object  # caches.Scope of `data`
    data: reader.RunData


# ------------------------------------------------------------------ plugin


class StepSizePlugin(base_plugin.TBPlugin):
    """Serves per-layer step sizes to the Step Sizes dashboard."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context):
        self._provider = context.data_provider
        self._store = None if self._provider is None else runstore.RunStore(self._provider)

    def get_plugin_apps(self):
        apps = {route: self._static_route(name, kind) for route, (name, kind) in STATIC_FILES.items()}
        apps.update(
            {
                "/info": self._info_route,
                "/tags": self._tags_route,
                "/heatmap": self._heatmap_route,
                "/layer": self._layer_route,
                "/cell": self._cell_route,
                "/findings": self._findings_route,
                "/scalars": self._scalars_route,
                "/histogram_steps": self._histogram_steps_route,
                "/histogram": self._histogram_route,
            }
        )
        return apps

    def is_active(self):
        if self._store is None:
            return False
        try:
            from tensorboard import context as tb_context

            return self._store.catalog.listing(tb_context.RequestContext(), "").has_data()
        except Exception:  # noqa: BLE001
            logger.exception("stepsize: is_active failed")
            return False

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Step Sizes")

    # helpers --------------------------------------------------------------

    def _run(self, request, run):
        """`(scope, RunData)` of `run` in the request's experiment; 404 if it has none."""
        if self._store is None:
            raise reader.NotFound("no data provider")
        ctx = plugin_util.context(request.environ)
        return self._store.get(ctx, plugin_util.experiment_id(request.environ), run)

    def _layer_request(self, request):
        run = _param(request, "run")
        layer = _param(request, "layer")
        metric = _param(request, "metric")
        scope, data = self._run(request, run)
        data.check(metric, layer=layer)
        return _LayerRequest(run, layer, metric, scope, data)

    # routes ---------------------------------------------------------------

    def _static_route(self, name, content_type):
        @_route
        def serve(self, request):
            try:
                with open(os.path.join(_STATIC_DIR, name), "rb") as f:
                    return _Body(f.read(), content_type, encoding=None)
            except OSError:
                raise reader.NotFound(f"{name} is not installed") from None

        return serve.__get__(self)

    @_route
    def _info_route(self, request):
        return metadata.describe()

    @_route
    def _tags_route(self, request):
        if self._store is None:
            return {}
        ctx = plugin_util.context(request.environ)
        summaries = self._store.summaries(ctx, plugin_util.experiment_id(request.environ))
        return {run: responses.tags_entry(summary, problems) for run, (summary, problems) in summaries.items()}

    @_route
    def _heatmap_route(self, request):
        run = _param(request, "run")
        metric = _param(request, "metric")
        stat = _param(request, "stat")
        max_steps = _max_steps_param(request)
        start, end = _step_range_params(request)
        rows = _row_params(request)
        scope, data = self._run(request, run)
        data.check(metric, stat)
        _check_step_range(data, start, end)
        span = data.step_slice(start, end)
        group = pooling.group_size(span.stop - span.start, max_steps)
        key = ("heatmap", metric, stat, group, span.start, span.stop, rows)
        return _Body(
            self._store.response(
                scope, key, lambda: gzip_json(responses.heatmap(run, data, metric, stat, max_steps, start, end, rows))
            )
        )

    @_route
    def _layer_route(self, request):
        max_steps = _max_steps_param(request)
        r = self._layer_request(request)
        key = ("layer", r.metric, r.layer, pooling.group_size(r.data.steps.size, max_steps))
        return _Body(
            self._store.response(
                r.scope, key, lambda: gzip_json(responses.layer(r.run, r.data, r.layer, r.metric, max_steps))
            )
        )

    @_route
    def _cell_route(self, request):
        first = _int_param(request, "first")
        last = _int_param(request, "last")
        if last < first:
            raise _bad("last must not be before first")
        max_steps = _max_steps_param(request)
        start, end = _step_range_params(request)
        r = self._layer_request(request)
        return responses.cell(r.run, r.data, r.layer, r.metric, first, last, max_steps, start, end)

    @_route
    def _findings_route(self, request):
        run = _param(request, "run")
        scope, data = self._run(request, run)
        return _Body(self._store.response(scope, ("findings",), lambda: gzip_json(responses.findings(run, data))))

    @_route
    def _scalars_route(self, request):
        run = _param(request, "run")
        scope, _ = self._run(request, run)
        # Not cached: scalars may sit in other event files than the step
        # sizes, loaded at other times, so the run's signature does not
        # tell when they change; the provider holds them in memory anyway.
        series = scalars.read(self._provider, plugin_util.context(request.environ), scope.experiment, run)
        return _Body(gzip_json(responses.scalars(run, series)))

    @_route
    def _histogram_steps_route(self, request):
        r = self._layer_request(request)
        steps, _ = self._store.histograms(r.scope, r.data, r.metric, r.layer)
        return responses.histogram_steps(r.run, r.layer, r.metric, steps)

    @_route
    def _histogram_route(self, request):
        step = _int_param(request, "step")
        r = self._layer_request(request)
        steps, arrays = self._store.histograms(r.scope, r.data, r.metric, r.layer)
        return responses.histogram(r.run, r.layer, r.metric, steps, arrays, step)

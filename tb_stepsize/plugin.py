"""The Step Sizes dashboard's backend: a TensorBoard plugin named `stepsize`.

It reads only through `context.data_provider` (so it works the same with
TensorBoard's Python loader and the Rust data server) and imports no
TensorFlow.  Every number it serves comes from `reader.read_run`, the code
behind `tb_stepsize.load`, so the dashboard and a notebook agree.

Routes (under `/data/plugin/stepsize/`)
---------------------------------------
Static: `index.js`, `heatmap.js`, `drilldown.js`, `colormaps.js`, `api.js`,
`style.css` -- a fixed table of names; nothing else is ever read from disk.

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
  rule used for `stat` (below).  `max_steps` must be an integer >= 1 (larger
  than 100000 is capped).
* `layer?run&layer&metric[&max_steps]` -> `{"run", "layer", "metric",
  "stats", "steps", "step_ends", "values", "nonfinite"}`; `values[j]` holds
  every statistic of column j and `nonfinite` lists `[j, stat_index, kind]`.
* `cell?run&layer&metric&first&last` -> `{"run", "layer", "metric",
  "first", "last", "stats", "values", "nonfinite"}`: every statistic of one
  layer pooled (same rules) over the logged steps `first..last` inclusive
  -- what a tooltip shows for one heatmap column; `values[s]` is statistic
  s, `nonfinite` lists `[stat_index, kind]`.  400 unless `first <= last`
  are integers, 404 if no step in that range was logged.  Reads only the
  statistics, never histograms.
* `histogram_steps?run&layer&metric` -> `{"run", "layer", "metric",
  "steps"}`: the steps that have a histogram of this layer (drill-down).
* `histogram?run&layer&metric&step` -> `{"step", "bins"}`: the histogram
  logged at the step nearest `step` (the earlier one on a tie), bins as
  `[left, right, count]` rows, the first `[0, 0, zeros]`.

Pooling (`max_steps=N`)
-----------------------
When a run has more logged steps T than N, adjacent steps are pooled into
`ceil(T / g)` columns of `g = ceil(T / N)` steps each (the last column may be
shorter).  Within a group, per layer:

* if any cell is NaN the pooled cell is NaN, else if any is +Inf it is +Inf,
  else if any is -Inf it is -Inf (a non-finite value never disappears);
* otherwise it is the `min` of the finite values for the statistic `min`,
  their `max` for `max` and `nonfinite`, and their arithmetic mean for every
  other statistic (quantiles, `mean`, `rms`, `zero_fraction`, `value`);
* it is missing only if every cell of the group is missing.

Without pooling (T <= N or no `max_steps`) the values are exactly those of
`RunData.matrix(metric, stat)`.

Caching and memory
------------------
A run's `RunData` (its steps and index: which variable was updated when) is
cached per (experiment, run) under a signature made of the (tag, max_step,
max_wall_time) of its index tags and the names of all its tags, as listed
by the data provider; after TensorBoard reloads new data the signature
changes and the run is read again.  A signature is asked of the data
provider (only the few index tags: cheap) at most once per
`LISTING_TTL_SECS` (1 s), so new steps show up at most that long after
TensorBoard loaded them.  The full tag listing (both plugin names) is made
synchronously only for the first request and when runs come or go, and
re-made in a background thread (the old one serving meanwhile) when a run's
index tags moved on or every `DISCOVERY_TTL_SECS` (30 s).

Matrices are read one `(metric, stat)` at a time, when a request needs them
(4 bytes per layer-step plus a 1-byte mask).  Byte-bounded LRU caches
(`TB_STEPSIZE_CACHE_MB`, default 1024, = B) hold:

* matrices and histogram tables of runs: B;
* pooled matrices (`max_steps` columns; what `heatmap` and `layer` serve):
  B/4;
* run indexes: B/8; encoded (gzipped) `heatmap` and `layer` responses: B/4;
  one layer's histograms: B/8.

The most recently used entry of each is always kept.  So the plugin's own
memory stays below about 1.75 x B plus one matrix larger than B, if any,
while a request is not running; a request pools its matrix in row blocks of
`POOL_BLOCK_CELLS` cells, so it needs at most a few hundred MB on top, and a
`layer` request holds one matrix at a time.  TensorBoard's loader holds the
event data itself: all logged steps of the statistics, and a sample of the
histograms (see `plugin_loader`).
"""

import collections
import gzip
import json
import logging
import os
import re
import threading
import time

import numpy as np
from werkzeug import wrappers

from tensorboard import plugin_util
from tensorboard.backend import http_util
from tensorboard.data import provider as tb_provider
from tensorboard.plugins import base_plugin

from tb_stepsize import assets, metadata, reader
from tb_stepsize.metadata import pooling_rule

logger = logging.getLogger(__name__)

MAX_STEPS_CAP = 100_000
LISTING_TTL_SECS = 1.0  # how long a run's signature / the run list may be reused
DISCOVERY_TTL_SECS = 30.0  # the full tag listing is re-made at least this often
MAX_PROBLEMS = 50
MAX_PARAM_CHARS = 4096
_JSON = "application/json"
MAX_EXPERIMENTS = 16  # listings kept (one per experiment id; local TensorBoard uses "")
RUN_LOCKS = 64

# URL path -> (file in the package's static/ dir, content type).  The only
# files this plugin ever reads (the list is `assets.STATIC_FILES`).
STATIC_FILES = {"/" + name: (name, kind) for name, kind in assets.STATIC_FILES.items()}
_STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


def _cache_budget():
    try:
        mb = float(os.environ.get("TB_STEPSIZE_CACHE_MB", "1024"))
    except ValueError:
        mb = 1024.0
    return max(1, int(mb * 2**20))


# ----------------------------------------------------------------- pooling


def group_size(num_steps, max_steps):
    """Steps per pooled column so that at most `max_steps` columns remain."""
    if max_steps is None or num_steps <= max_steps:
        return 1
    return -(-num_steps // max_steps)


POOL_BLOCK_CELLS = 1 << 22  # cells pooled at once: bounds the temporaries of a huge heatmap


def pool(values, present, group, rule):
    """Pools `[L, T]` `values` (with presence mask) into `[L, ceil(T/group)]`.

    Returns `(pooled, pooled_present)` in the same representation: a present
    cell holds a finite value or the NaN/+Inf/-Inf that won the group.
    Means are taken in float64.
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


def _kind(x):
    if np.isnan(x):
        return "nan"
    return "inf" if x > 0 else "-inf"


def nonfinite_cells(values, present):
    """`[index..., kind]` of every present, non-finite cell (row-major order)."""
    bad = present & ~np.isfinite(values)
    if not bad.any():
        return []
    return [[*(int(i) for i in index), _kind(values[index])] for index in zip(*np.nonzero(bad))]


def encode_grid(values, present):
    """`values` as nested lists with None for missing/non-finite cells, plus
    the `[index..., kind]` list of the non-finite ones."""
    finite = present & np.isfinite(values)
    if finite.all():
        return values.tolist(), []
    cells = values.astype(object)
    cells[~finite] = None
    return cells.tolist(), nonfinite_cells(values, present)


# ------------------------------------------------------------------ caches


class _LRU:
    """A byte-bounded LRU map; the newest entry is kept even if too big."""

    def __init__(self, budget):
        self.budget = budget
        self._items = collections.OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, key):
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def put(self, key, value, nbytes):
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, nbytes)
            self._bytes += nbytes
            while self._bytes > self.budget and len(self._items) > 1:
                _, (_, size) = self._items.popitem(last=False)
                self._bytes -= size

    def discard(self, predicate):
        with self._lock:
            for key in [k for k in self._items if predicate(k)]:
                self._bytes -= self._items.pop(key)[1]

    @property
    def nbytes(self):
        return self._bytes

    def __len__(self):
        return len(self._items)


class _Scoped:
    """One run's view of a shared LRU: its keys are prefixed with `scope`."""

    def __init__(self, lru, scope):
        self._lru, self._scope = lru, scope

    def get(self, key):
        return self._lru.get(self._scope + key)

    def put(self, key, value, nbytes):
        self._lru.put(self._scope + key, value, nbytes)


class _Listing:
    """One experiment's step-size tags (both plugin names): parsed contents and time-series info."""

    def __init__(self, series, all_runs):
        self.series = series  # {run: {tag: TensorTimeSeries}}
        self.all_runs = all_runs  # every run name (any plugin) when listed, or None
        self.contents = {run: reader.parse_contents(tags) for run, tags in series.items()}
        self.signatures = {}  # run -> (time, signature), filled by the plugin
        self.created = self.checked = time.monotonic()

    def index_tags(self, run):
        return sorted(
            tag
            for tag, c in self.contents.get(run, {}).items()
            if isinstance(c, dict) and c.get("kind") == metadata.KIND_INDEX
        )

    def index_state(self, run):
        """(tag, max_step, max_wall_time) of `run`'s index tags when listed."""
        tags = self.series.get(run, {})
        return tuple((t, tags[t].max_step, tags[t].max_wall_time) for t in self.index_tags(run))

    def runs(self):
        """Runs with at least one readable index tag or a reported problem."""
        return sorted(
            run
            for run, tags in self.contents.items()
            if any(
                isinstance(c, Exception) or c.get("kind") == metadata.KIND_INDEX
                for c in tags.values()
            )
        )

    def has_data(self):
        return any(self.index_tags(run) for run in self.contents)


# ------------------------------------------------------------------ errors


class _HttpError(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code


def _bad(message):
    return _HttpError(400, message)


def _missing(message):
    return _HttpError(404, message)


def _json_route(method):
    """Wraps a `(self, request) -> dict|bytes` handler into a WSGI app."""

    @wrappers.Request.application
    def app(self, request):
        try:
            result = method(self, request)
        except _HttpError as e:
            return http_util.Respond(request, {"error": str(e)}, _JSON, code=e.code)
        except Exception as e:  # noqa: BLE001 -- report, never an HTML 500 page
            logger.exception("stepsize: %s failed", request.path)
            return http_util.Respond(
                request, {"error": f"internal error: {type(e).__name__}: {e}"}, _JSON, code=500
            )
        if isinstance(result, bytes):  # cached, already gzipped JSON
            return http_util.Respond(request, result, _JSON, content_encoding="gzip")
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


def _gzip_json(obj):
    raw = json.dumps(obj, allow_nan=False, separators=(",", ":")).encode("utf-8")
    return gzip.compress(raw, compresslevel=3, mtime=0)


# ------------------------------------------------------------------ plugin


class StepSizePlugin(base_plugin.TBPlugin):
    """Serves per-layer step sizes to the Step Sizes dashboard."""

    plugin_name = metadata.PLUGIN_NAME

    def __init__(self, context):
        self._provider = context.data_provider
        budget = _cache_budget()
        self._runs = _LRU(budget // 8)  # (eid, run) -> (signature, RunData): steps and index
        self._columns = _LRU(budget)  # (eid, run, signature, ...) -> a run's matrices and histogram tables
        self._pooled_matrices = _LRU(budget // 4)  # (eid, run, signature, metric, stat, group) -> pooled matrix
        self._responses = _LRU(budget // 4)  # (eid, run, signature, ...) -> gzipped JSON
        self._histograms = _LRU(budget // 8)  # (eid, run, signature, metric, layer) -> (steps, arrays)
        self._summaries = _LRU(4 * 2**20)  # (eid, run) -> (signature, tags entry)
        self._listings = collections.OrderedDict()  # eid -> _Listing, at most MAX_EXPERIMENTS
        self._discovering = set()  # eids whose listing is being re-made
        self._lock = threading.Lock()
        self._run_locks = [threading.Lock() for _ in range(RUN_LOCKS)]

    # TensorBoard interface ------------------------------------------------

    def get_plugin_apps(self):
        apps = {route: self._static_app(route) for route in STATIC_FILES}
        apps.update(
            {
                "/info": self._serve_info,
                "/tags": self._serve_tags,
                "/heatmap": self._serve_heatmap,
                "/layer": self._serve_layer,
                "/cell": self._serve_cell,
                "/histogram_steps": self._serve_histogram_steps,
                "/histogram": self._serve_histogram,
            }
        )
        return apps

    def is_active(self):
        if self._provider is None:
            return False
        try:
            from tensorboard import context as tb_context

            return self._listing(tb_context.RequestContext(), "").has_data()
        except Exception:  # noqa: BLE001
            logger.exception("stepsize: is_active failed")
            return False

    def frontend_metadata(self):
        return base_plugin.FrontendMetadata(es_module_path="/index.js", tab_name="Step Sizes")

    # data access ----------------------------------------------------------

    def _discover(self, ctx, eid):
        """Lists every stepsize tag of the experiment (costly with the Python
        loader: it walks every stored event of every tag)."""
        all_runs = self._all_runs(ctx, eid)
        listing = _Listing(reader.list_series(self._provider, ctx, eid), all_runs)
        with self._lock:
            self._listings[eid] = listing
            self._listings.move_to_end(eid)
            while len(self._listings) > MAX_EXPERIMENTS:
                self._listings.popitem(last=False)
        return listing

    def _all_runs(self, ctx, eid):
        try:
            return frozenset(r.run_name for r in self._provider.list_runs(ctx, experiment_id=eid))
        except Exception:  # noqa: BLE001 -- a provider without list_runs: rely on the TTL
            return None

    def _listing(self, ctx, eid):
        """The experiment's listing.

        Made synchronously the first time and when runs come or go (checked
        at most once per `LISTING_TTL_SECS`); re-made in the background
        every `DISCOVERY_TTL_SECS`, the old one serving meanwhile.
        """
        with self._lock:
            listing = self._listings.get(eid)
        if listing is None:
            return self._discover(ctx, eid)
        now = time.monotonic()
        if now - listing.checked > LISTING_TTL_SECS:
            listing.checked = now
            if self._all_runs(ctx, eid) != listing.all_runs:
                return self._discover(ctx, eid)
        if now - listing.created > DISCOVERY_TTL_SECS:
            self._discover_in_background(ctx, eid)
        return listing

    def _discover_in_background(self, ctx, eid):
        with self._lock:
            if eid in self._discovering:
                return
            self._discovering.add(eid)

        def work():
            try:
                self._discover(ctx, eid)
            except Exception:  # noqa: BLE001
                logger.exception("stepsize: listing tags failed")
            finally:
                with self._lock:
                    self._discovering.discard(eid)

        threading.Thread(target=work, name="stepsize-listing", daemon=True).start()

    def _signatures(self, ctx, eid, listing, runs):
        """`{run: signature or None}`.

        A signature changes whenever TensorBoard has loaded new data for the
        run: it holds the (tag, max_step, max_wall_time) of the run's stats
        tags, asked of the provider (cheap: a few tags) at most once per
        `LISTING_TTL_SECS`, and the run's tag names from the listing.  When
        the stats tags moved on, new tags may have come too: the listing is
        re-made in the background.
        """
        now = time.monotonic()
        result, stale = {}, []
        for run in runs:
            cached = listing.signatures.get(run)
            if cached is not None and now - cached[0] <= LISTING_TTL_SECS:
                result[run] = cached[1]
            else:
                stale.append(run)
        if not stale:
            return result
        tags = sorted({t for run in stale for t in listing.index_tags(run)})
        current = {}
        if tags:
            current = self._provider.list_tensors(
                ctx,
                experiment_id=eid,
                plugin_name=metadata.PLUGIN_NAME,
                run_tag_filter=tb_provider.RunTagFilter(runs=stale, tags=tags),
            )
        moved = False
        for run in stale:
            signature = None
            series = current.get(run, {})
            state = tuple(
                (t, series[t].max_step, series[t].max_wall_time)
                for t in listing.index_tags(run)
                if t in series
            )
            if state:
                signature = (state, frozenset(listing.contents.get(run, {})))
                moved = moved or state != listing.index_state(run)
            listing.signatures[run] = (now, signature)
            result[run] = signature
        if moved:
            self._discover_in_background(ctx, eid)
        return result

    def _run(self, ctx, eid, run):
        """`(signature, RunData)` of `run`; 404 if it has no step-size data."""
        if self._provider is None:
            raise _missing("no data provider")
        listing = self._listing(ctx, eid)
        if run not in listing.contents:
            raise _missing(f"no step-size data for run {run!r}")
        signature = self._signatures(ctx, eid, listing, [run])[run]
        if signature is None:
            raise _missing(f"run {run!r} has no readable step-size data")
        key = (eid, run)
        with self._run_locks[hash(key) % RUN_LOCKS]:
            cached = self._runs.get(key)
            if cached is not None and cached[0] == signature:
                return cached
            cache = _Scoped(self._columns, (eid, run, signature))
            data = reader.read_run(self._provider, ctx, eid, run, listing.contents[run], cache)
            if data is None:
                raise _missing(f"run {run!r} has no readable step-size data")
            entry = (signature, data)
            self._runs.put(key, entry, data.nbytes)
            summary = self._summary(data)
            self._summaries.put(key, (signature, summary), 200 + 100 * len(data.layers))
            # Responses of older signatures can never be hit again.
            self._responses.discard(lambda k: k[:2] == key and k[2] != signature)
            self._histograms.discard(lambda k: k[:2] == key and k[2] != signature)
            self._columns.discard(lambda k: k[:2] == key and k[2] != signature)
            self._pooled_matrices.discard(lambda k: k[:2] == key and k[2] != signature)
            return entry

    @staticmethod
    def _summary(data):
        problems = list(data.problems)
        if len(problems) > MAX_PROBLEMS:
            problems = problems[:MAX_PROBLEMS] + [f"... and {len(problems) - MAX_PROBLEMS} more"]
        return {
            "layers": list(data.layers),
            "layer_info": [
                {"path": i.get("path"), "shape": i.get("shape"), "dtype": i.get("dtype")}
                for i in data.layer_info
            ],
            "metrics": data.metrics,
            "stats": {m: list(names) for m, names in data.stats.items()},
            "max_step": int(data.steps[-1]) if data.steps.size else -1,
            "num_steps": int(data.steps.size),
            "optimizer": data.optimizer,
            "problems": problems,
        }

    def _histograms_of(self, ctx, eid, run, signature, data, metric, layer):
        key = (eid, run, signature, metric, layer)
        cached = self._histograms.get(key)
        if cached is None:
            steps, arrays = data.histograms(metric, layer)
            cached = (steps, arrays)
            self._histograms.put(key, cached, steps.nbytes + sum(a.nbytes + 100 for a in arrays))
        return cached

    def _pooled(self, eid, run, signature, data, metric, stat, group):
        """`(values [L, C], present)`: `stat` of `metric` pooled by `group` steps.

        Cached apart from the matrices: a `layer` request takes one row of
        each statistic, so on a run whose matrices do not all fit in the
        cache, hovering layer after layer reads the run once, not once per
        layer.
        """
        if group <= 1:
            return data.column(metric, stat)
        key = (eid, run, signature, metric, stat, group)
        cached = self._pooled_matrices.get(key)
        if cached is None:
            cached = pool(*data.column(metric, stat), group, pooling_rule(stat))
            self._pooled_matrices.put(key, cached, cached[0].nbytes + cached[1].nbytes)
        return cached

    @staticmethod
    def _check_metric(data, run, metric):
        if metric not in data.stats:
            raise _missing(f"run {run!r} has no metric {metric!r} (has {data.metrics})")

    @staticmethod
    def _check_layer(data, run, layer):
        if layer not in data.layers:
            raise _missing(f"run {run!r} has no layer {layer!r}")

    # routes ---------------------------------------------------------------

    def _static_app(self, route):
        name, content_type = STATIC_FILES[route]

        @wrappers.Request.application
        def app(request):
            try:
                with open(os.path.join(_STATIC_DIR, name), "rb") as f:
                    body = f.read()
            except OSError:
                return http_util.Respond(
                    request, {"error": f"{name} is not installed"}, _JSON, code=404
                )
            return http_util.Respond(request, body, content_type)

        return app

    @_json_route
    def _serve_tags(self, request):
        ctx = plugin_util.context(request.environ)
        eid = plugin_util.experiment_id(request.environ)
        if self._provider is None:
            return {}
        listing = self._listing(ctx, eid)
        signatures = self._signatures(ctx, eid, listing, listing.runs())
        result = {}
        for run in listing.runs():
            content_problems = [
                f"{tag}: {c}"
                for tag, c in sorted(listing.contents[run].items())
                if isinstance(c, Exception)
            ]
            signature = signatures.get(run)
            entry = None
            if signature is not None:
                cached = self._summaries.get((eid, run))
                if cached is not None and cached[0] == signature:
                    entry = cached[1]
                else:
                    try:
                        entry = self._summary(self._run(ctx, eid, run)[1])
                    except _HttpError:
                        entry = None
                    except Exception as e:  # noqa: BLE001 -- one unreadable run must not hide the others
                        logger.exception("stepsize: reading run %r failed", run)
                        content_problems.insert(0, f"reading the run failed: {type(e).__name__}: {e}")
                        entry = None
            if entry is None:  # only unreadable tags: report why
                entry = {
                    "layers": [],
                    "layer_info": [],
                    "metrics": [],
                    "stats": {},
                    "max_step": -1,
                    "num_steps": 0,
                    "optimizer": "",
                    "problems": content_problems[:MAX_PROBLEMS]
                    or ["no readable step-size data"],
                }
            result[run] = entry
        return result

    @_json_route
    def _serve_heatmap(self, request):
        ctx = plugin_util.context(request.environ)
        eid = plugin_util.experiment_id(request.environ)
        run = _param(request, "run")
        metric = _param(request, "metric")
        stat = _param(request, "stat")
        max_steps = _max_steps_param(request)
        signature, data = self._run(ctx, eid, run)
        self._check_metric(data, run, metric)
        if stat not in data.stats[metric]:
            raise _missing(f"metric {metric!r} has no statistic {stat!r} (has {data.stats[metric]})")
        group = group_size(data.steps.size, max_steps)
        key = (eid, run, signature, "heatmap", metric, stat, group)
        cached = self._responses.get(key)
        if cached is not None:
            return cached

        values, present = self._pooled(eid, run, signature, data, metric, stat, group)
        firsts, ends = column_bounds(data.steps, group)
        cells, nonfinite = encode_grid(values, present)
        body = _gzip_json(
            {
                "run": run,
                "metric": metric,
                "stat": stat,
                "layers": list(data.layers),
                "steps": firsts.tolist(),
                "step_ends": ends.tolist(),
                # null for a wall time that is not a finite number (a damaged event)
                "wall_times": [w if np.isfinite(w) else None for w in data.wall_times[::group].tolist()],
                "values": cells,
                "nonfinite": nonfinite,
                "pooling": pooling_rule(stat),
            }
        )
        self._responses.put(key, body, len(body) + 200)
        return body

    def _layer_request(self, request):
        """`(ctx, eid, run, layer, metric, signature, data)` of a per-layer route, checked."""
        ctx = plugin_util.context(request.environ)
        eid = plugin_util.experiment_id(request.environ)
        run = _param(request, "run")
        layer = _param(request, "layer")
        metric = _param(request, "metric")
        signature, data = self._run(ctx, eid, run)
        self._check_metric(data, run, metric)
        self._check_layer(data, run, layer)
        return ctx, eid, run, layer, metric, signature, data

    @_json_route
    def _serve_layer(self, request):
        max_steps = _max_steps_param(request)
        ctx, eid, run, layer, metric, signature, data = self._layer_request(request)
        group = group_size(data.steps.size, max_steps)
        key = (eid, run, signature, "layer", metric, layer, group)
        cached = self._responses.get(key)
        if cached is not None:
            return cached

        row = data.layers.index(layer)
        names = data.stats[metric]
        pooled, pooled_present = [], None
        for name in names:  # one statistic at a time: at most one matrix is read at once
            v, p = self._pooled(eid, run, signature, data, metric, name, group)
            pooled.append(np.asarray(v[row], np.float64))
            pooled_present = p[row]
        if pooled:
            values = np.stack(pooled, axis=1)  # [C, S]
            present = np.repeat(pooled_present[:, None], len(names), axis=1)
        else:
            values = np.zeros((0, 0))
            present = np.zeros((0, 0), bool)
        cells, nonfinite = encode_grid(values, present)
        firsts, ends = column_bounds(data.steps, group)
        body = _gzip_json(
            {
                "run": run,
                "layer": layer,
                "metric": metric,
                "stats": list(names),
                "steps": firsts.tolist(),
                "step_ends": ends.tolist(),
                "values": cells,
                "nonfinite": nonfinite,
            }
        )
        self._responses.put(key, body, len(body) + 200)
        return body

    @_json_route
    def _serve_histogram(self, request):
        step = _int_param(request, "step")
        ctx, eid, run, layer, metric, signature, data = self._layer_request(request)
        steps, arrays = self._histograms_of(ctx, eid, run, signature, data, metric, layer)
        if not len(arrays):
            raise _missing(f"no histograms of {metric!r} for layer {layer!r} in run {run!r}")
        i = int(np.searchsorted(steps, step))
        if i == len(steps) or (i > 0 and step - steps[i - 1] <= steps[i] - step):
            i -= 1
        return {"step": int(steps[i]), "bins": arrays[i].tolist()}


    @_json_route
    def _serve_histogram_steps(self, request):
        ctx, eid, run, layer, metric, signature, data = self._layer_request(request)
        steps, _ = self._histograms_of(ctx, eid, run, signature, data, metric, layer)
        return {"run": run, "layer": layer, "metric": metric, "steps": steps.tolist()}

    @_json_route
    def _serve_cell(self, request):
        first = _int_param(request, "first")
        last = _int_param(request, "last")
        if last < first:
            raise _bad("last must not be before first")
        ctx, eid, run, layer, metric, signature, data = self._layer_request(request)
        lo, hi = np.searchsorted(data.steps, [first, last + 1])
        if lo >= hi:
            raise _missing(f"run {run!r} has no logged step in [{first}, {last}]")
        row = data.layers.index(layer)
        names = data.stats[metric]
        values = np.empty(len(names))
        present = np.zeros(len(names), bool)
        for s, name in enumerate(names):
            v, p = data.column(metric, name)
            pooled, pooled_present = pool(v[row : row + 1, lo:hi], p[row : row + 1, lo:hi], hi - lo, pooling_rule(name))
            values[s], present[s] = pooled[0, 0], pooled_present[0, 0]
        cells, nonfinite = encode_grid(values, present)
        return {
            "run": run,
            "layer": layer,
            "metric": metric,
            "first": first,
            "last": last,
            "stats": list(names),
            "values": cells,
            "nonfinite": nonfinite,
        }

    @_json_route
    def _serve_info(self, request):
        return metadata.describe()

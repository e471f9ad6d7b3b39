"""Reads step-size runs through TensorBoard's data provider.

The plugin and `load` share this code, so the dashboard and a notebook see
the same numbers.  No TensorFlow is imported: `load` uses TensorBoard's own
event-file readers (its TF stub when TF is absent).

A run is read lazily: `read_run` reads only the small index tags (the step
axis and which variable was updated when); each `(metric, stat)` matrix and
each metric's histograms are read from the data provider on first use and
kept in a cache (`caches.Unbounded` for `load`, the plugin's byte-bounded
LRU in TensorBoard).  So showing one heatmap of a huge run reads 4 bytes per
layer-step, not the whole run.  `RunData.pooled` pools a statistic the way
the dashboard does (`pooling`).

Which tags a run has, and of which kind, is decided once, in
`listing.RunTags`.  Every check of a metric, statistic or layer name is
`RunData.check`, which raises `NotFound` (the plugin answers 404).
"""

import collections.abc
import dataclasses
import os
import threading
import warnings

import numpy as np
from tensorboard import context as tb_context
from tensorboard.data import provider as tb_provider

from tb_stepsize import caches, findings, listing, metadata, pooling

# read_tensors keeps every sample up to this many per tag.
_ALL_SAMPLES = 10**9


class NotFound(KeyError):
    """A name (run, metric, statistic, layer) or step range a run does not have."""

    def __str__(self):
        return str(self.args[0]) if self.args else ""


@dataclasses.dataclass
class Pooled:
    """A statistic pooled into columns (see `pooling`).

    `values` float `[L, C]` and `present` bool `[L, C]` as in
    `RunData.column`; column j pools the logged steps `firsts[j]..ends[j]`,
    `wall_times[j]` is the wall time of its first step; `group` steps per
    column (1: not pooled), `rule` the pooling rule used.
    """

    values: np.ndarray
    present: np.ndarray
    firsts: np.ndarray
    ends: np.ndarray
    wall_times: np.ndarray
    group: int
    rule: str


@dataclasses.dataclass
class _Source:
    """One layer set's tag of a matrix or histogram: its data go to `rows`."""

    tag: str
    rows: np.ndarray


class _LazyByMetric(collections.abc.Mapping):
    """`{metric: f(metric)}`, computed on access."""

    def __init__(self, metrics, f):
        self._metrics, self._f = metrics, f

    def __getitem__(self, metric):
        if metric not in self._metrics:
            raise KeyError(metric)
        return self._f(metric)

    def __iter__(self):
        return iter(self._metrics)

    def __len__(self):
        return len(self._metrics)


class RunData:
    """One run's step sizes.

    `steps` are the logged optimizer steps (int64 `[T]`), `wall_times` their
    times, `layers` the variable paths in model order (`layer_info` their
    shapes and dtypes), `stats[metric]` the statistic names of each metric.
    `matrix(metric, stat)` is a float64 `[L, T]`; `mask(metric, stat)` tells
    a read value (possibly NaN) from a missing cell (the variable was not
    updated, or nothing was read).  `values[metric]` (`[L, T, S]`) and
    `present[metric]` (`[L, T]`) give a whole metric at once.  `pooled`
    pools one statistic into at most `max_steps` columns, as the dashboard
    shows it.

    `cache` keeps what was read (`get(key)`, `put(key, value, nbytes)`);
    `pooled_cache`, if given, keeps pooled grids the same way.
    """

    def __init__(self, *, steps, wall_times, layers, layer_info, stats, optimizer, problems, updated, sources, histogram_sources, read, cache, pooled_cache=None):
        self.steps = steps
        self.wall_times = wall_times
        self.layers = layers
        self.layer_info = layer_info
        self.stats = stats
        self.optimizer = optimizer
        self.problems = problems
        self._updated = updated
        self._sources = sources  # {(metric, stat): [_Source]}
        self._histogram_sources = histogram_sources  # {metric: [_Source]}
        self._read = read  # (plugin_name, tags, problems) -> {tag: [TensorDatum]}
        self._cache = cache
        self._pooled_cache = pooled_cache
        self._col = {int(s): j for j, s in enumerate(steps)}
        # One read at a time per run: concurrent requests for the same matrix
        # wait for it instead of holding two copies.
        self._reading = threading.Lock()

    # Properties, not attributes: a stored mapping of bound methods would be a
    # reference cycle, keeping the event files open until the cyclic GC runs.
    @property
    def values(self):
        return _LazyByMetric(self.stats, self._values)

    @property
    def present(self):
        return _LazyByMetric(self.stats, lambda m: self.mask(m, self.stats[m][0]))

    @property
    def metrics(self):
        return list(self.stats)

    @property
    def nbytes(self):
        """Memory held by the run itself (not its cached matrices)."""
        return self.steps.nbytes + self.wall_times.nbytes + self._updated.nbytes + 200 * (len(self.layers) + 1)

    def check(self, metric, stat=None, layer=None):
        """Raises `NotFound` unless the run has `metric` (and `stat` of it, and `layer`)."""
        if metric not in self.stats:
            raise NotFound(f"metric {metric!r} not in this run (has {self.metrics})")
        if stat is not None and stat not in self.stats[metric]:
            raise NotFound(f"stat {stat!r} not recorded for {metric!r} (has {self.stats[metric]})")
        if layer is not None and layer not in self.layers:
            raise NotFound(f"no layer {layer!r} in this run")

    def _cached(self, key, read):
        """`read()`'s arrays (one or a tuple), read once per key and kept in the cache."""
        cached = self._cache.get(key)
        if cached is None:
            with self._reading:
                cached = self._cache.get(key)
                if cached is None:
                    cached = read()
                    arrays = cached if isinstance(cached, tuple) else (cached,)
                    self._cache.put(key, cached, sum(a.nbytes for a in arrays))
        return cached

    def summary(self):
        """What the run holds, as plain JSON data (the plugin's `tags` entry but `problems`)."""
        return {
            "layers": list(self.layers),
            "layer_info": [{"path": i.get("path"), "shape": i.get("shape"), "dtype": i.get("dtype")} for i in self.layer_info],
            "metrics": self.metrics,
            "stats": {m: list(names) for m, names in self.stats.items()},
            "max_step": int(self.steps[-1]) if self.steps.size else -1,
            "num_steps": int(self.steps.size),
            "optimizer": self.optimizer,
        }

    def note(self, problems):
        """Add `problems` found while reading (a re-read after eviction finds them again)."""
        self.problems.extend(p for p in problems if p not in self.problems)

    def column(self, metric, stat):
        """`(values float32 [L, T], mask bool [L, T])` of one statistic, read once and cached."""
        self.check(metric, stat)
        return self._cached(("column", metric, stat), lambda: self._read_column(metric, stat))

    def _read_column(self, metric, stat):
        values = np.full(self._updated.shape, np.nan, np.float32)
        seen = np.zeros(self._updated.shape, bool)
        sources = self._sources.get((metric, stat), [])
        problems = []
        data = self._read(metadata.PLUGIN_NAME, [s.tag for s in sources], problems)
        for source in sources:
            cols, arrays = [], []
            for datum in data.get(source.tag, []):
                col = self._col.get(datum.step)
                if col is None:
                    continue  # no index at this step: a damaged event
                array = datum.numpy
                if not (isinstance(array, np.ndarray) and array.dtype.kind in "iuf"):
                    array = _numeric(array)
                if array is None or array.shape != source.rows.shape:
                    problems.append(f"{source.tag} step {datum.step}: not a [{len(source.rows)}] array of numbers; skipped")
                    continue
                cols.append(col)
                arrays.append(array)
            if arrays:  # one vectorised assignment: a long run has 10^5 steps
                cells = np.ix_(source.rows, np.array(cols))
                values[cells] = np.stack(arrays, axis=1)
                seen[cells] = True
        seen &= self._updated
        values[~seen] = np.nan
        self.note(problems)
        return values, seen

    def matrix(self, metric, stat):
        """`[L, T]` float64 of `stat` of `metric`; NaN where a layer has no value."""
        return self.column(metric, stat)[0].astype(np.float64)

    def mask(self, metric, stat):
        """`[L, T]` bool: True where `matrix(metric, stat)` holds a read value."""
        return self.column(metric, stat)[1]

    def step_slice(self, start=None, end=None):
        """`slice` of the logged steps in `start..end` (inclusive; None: open
        on that side) -- possibly empty."""
        lo = 0 if start is None else int(np.searchsorted(self.steps, start))
        hi = self.steps.size if end is None else int(np.searchsorted(self.steps, end, side="right"))
        return slice(lo, max(lo, hi))

    def pooled(self, metric, stat, max_steps=None, start=None, end=None):
        """`Pooled`: `stat` of `metric` pooled into at most `max_steps` columns
        (`pooling`; every logged step its own column if None), over the logged
        steps `start..end` only (None: from the first / to the last): a
        zoomed heatmap pools only its range, so 100 steps of a 100,000-step
        run are 100 columns of their own."""
        self.check(metric, stat)
        span = self.step_slice(start, end)
        whole = span.start == 0 and span.stop == self.steps.size
        steps = self.steps[span]
        group = pooling.group_size(steps.size, max_steps)
        rule = metadata.pooling_rule(stat)
        firsts, ends = pooling.column_bounds(steps, group)
        if group <= 1:
            values, present = self.column(metric, stat)
            if not whole:
                values, present = values[:, span], present[:, span]
        else:
            key = ("pooled", metric, stat, group) + (() if whole else (span.start, span.stop))
            cached = self._pooled_cache.get(key) if self._pooled_cache is not None else None
            if cached is None:
                values, present = self.column(metric, stat)
                cached = pooling.pool(values[:, span], present[:, span], group, rule)
                if self._pooled_cache is not None:
                    self._pooled_cache.put(key, cached, cached[0].nbytes + cached[1].nbytes)
            values, present = cached
        return Pooled(values, present, firsts, ends, self.wall_times[span][::group], group, rule)

    def pooled_span(self, metric, layer, first, last, max_steps=None, start=None, end=None):
        """`(values float64 [S], present bool [S])`: every statistic of `metric`
        for `layer`, pooled over the logged steps `first..last` (inclusive).

        When `first..last` is exactly a column of the grid pooled to
        `max_steps` over `start..end` (a heatmap's, zoomed or not), the values
        come from the pooled matrices (`pooled`, cached apart from the
        columns): on a run whose statistics do not all fit in the column
        cache, hovering cell after cell then reads the run once, not once per
        hover.  Otherwise the statistics' columns are read (cached) and only
        this layer's cells in that range are pooled.  `NotFound` if no step
        in the range was logged.
        """
        self.check(metric, layer=layer)
        lo, hi = np.searchsorted(self.steps, [first, last + 1])
        if lo >= hi:
            raise NotFound(f"no logged step in [{first}, {last}]")
        row = self.layers.index(layer)
        names = self.stats[metric]
        values, present = np.empty(len(names)), np.zeros(len(names), bool)
        col = self._pooled_column(first, last, max_steps, self.step_slice(start, end))
        for s, stat in enumerate(names):  # one statistic at a time: one matrix is read at once
            if col is not None:
                p = self.pooled(metric, stat, max_steps, start, end)
                values[s], present[s] = p.values[row, col], p.present[row, col]
                continue
            v, p = self.column(metric, stat)
            values[s], present[s] = pooling.pool_span(v[row, lo:hi], p[row, lo:hi], metadata.pooling_rule(stat))
        return values, present

    def _pooled_column(self, first, last, max_steps, span):
        """The column of the grid pooled to `max_steps` over the steps `span`
        that spans exactly `first..last`, or None (no `max_steps`, or not a
        column of it)."""
        if max_steps is None:
            return None
        steps = self.steps[span]
        firsts, ends = pooling.column_bounds(steps, pooling.group_size(steps.size, max_steps))
        j = int(np.searchsorted(firsts, first))
        return j if j < firsts.size and firsts[j] == first and ends[j] == last else None

    def findings(self, thresholds=None):
        """What looks wrong in this run: `findings.evaluate` (a list of
        `findings.Finding`, most severe first) with `thresholds`
        (`findings.Thresholds`, its defaults if None).  Reads only the
        statistics the rules need, through the same cache as `column`."""
        return findings.evaluate(self, thresholds)

    def _values(self, metric):
        return np.stack([self.matrix(metric, s) for s in self.stats[metric]], axis=-1)

    def histograms(self, metric, layer):
        """`(steps [T'], [[k, 3] arrays])` of one layer's histogram over time.

        Rows are `(left, right, count)`; the first is `[0, 0, zeros]`, then
        the half-octave bins from the first to the last non-empty one.
        TensorBoard may keep only a sample of the logged steps' histograms.
        """
        self.check(metric, layer=layer)
        row = self.layers.index(layer)
        # int64 [N, 4]: step, row, bin, count
        table = self._cached(("histograms", metric), lambda: self._read_histogram_table(metric))
        mine = table[table[:, 1] == row]
        steps, starts = np.unique(mine[:, 0], return_index=True)
        parts = np.split(mine[:, 2:], starts[1:]) if mine.size else []
        return steps.astype(np.int64), [_histogram_rows(part[:, 0], part[:, 1]) for part in parts]

    def _read_histogram_table(self, metric):
        sources = self._histogram_sources.get(metric, [])
        problems = []
        data = self._read(metadata.HISTOGRAM_PLUGIN_NAME, [s.tag for s in sources], problems)
        self.note(problems)
        parts = []
        for source in sources:
            for datum in data.get(source.tag, []):
                triples = _histogram_triples(datum.numpy, len(source.rows))
                if triples is None or datum.step not in self._col:
                    continue
                rows = source.rows[triples[:, 0]]
                parts.append(np.stack([np.full(len(triples), datum.step), rows, triples[:, 1], triples[:, 2]], axis=1))
        table = np.concatenate(parts) if parts else np.zeros((0, 4), np.int64)
        return table[np.lexsort((table[:, 2], table[:, 0]))]  # by step, then bin


def _histogram_triples(value, n_rows):
    """A histogram tensor as int64 `[n, 3]` (row, bin, count), or None if it is not one."""
    array = _numeric(value)
    if array is None or array.ndim != 2 or array.shape[1] != 3 or not np.isfinite(array).all():
        return None
    triples = array.astype(np.int64)
    ok = (
        np.array_equal(triples, array)
        and (triples[:, 0] >= 0).all()
        and (triples[:, 0] < n_rows).all()
        and (triples[:, 1] >= 0).all()
        and (triples[:, 1] <= metadata.HIST_FINITE_BINS).all()
        and (triples[:, 2] >= 0).all()
    )
    return triples if ok else None


def _histogram_rows(bins, counts):
    """`[k, 3]` (left, right, count) float64 rows: `[0, 0, zeros]`, then bins
    from the first to the last non-empty finite one."""
    rows = [np.array([[0.0, 0.0, counts[bins == 0].sum()]])]
    finite = bins > 0
    if finite.any():
        first, last = bins[finite].min(), bins[finite].max()
        dense = np.zeros(last - first + 1)
        np.add.at(dense, bins[finite] - first, counts[finite])
        left, right = metadata.histogram_edges(first, last)
        rows.append(np.stack([left, right, dense], axis=1))
    return np.concatenate(rows)


def _numeric(value):
    """`value` as a float64 array, or None if it is not real numbers (strings, complex, ...)."""
    try:
        array = np.asarray(value)
        if array.dtype.kind not in "iuf":
            return None
        return array.astype(np.float64)
    except (TypeError, ValueError):
        return None


# What TensorBoard's tensor conversion raises on a tensor it cannot turn into
# an array (unknown dtype, content that does not fit the shape, ...).
_CONVERSION_ERRORS = (TypeError, ValueError, KeyError, OverflowError)


class RunTooLargeError(RuntimeError):
    """A tag's data does not fit in one answer of TensorBoard's data server."""


def _too_large(error):
    """True for gRPC's RESOURCE_EXHAUSTED (an answer above the client's message
    limit) and CANCELLED (the data server gives up on an answer of gigabytes)."""
    code = getattr(error, "code", None)
    try:
        return callable(code) and getattr(code(), "name", "") in ("RESOURCE_EXHAUSTED", "CANCELLED")
    except Exception:  # noqa: BLE001
        return False


def _read_tensors(provider, ctx, experiment_id, run, plugin_name, tags, problems):
    """{tag: [TensorDatum]} of `run`'s `tags`.

    The data provider converts every tensor of a request to an array and
    fails the whole request on one it cannot convert, and the data server
    refuses answers above 256 MiB; then each tag is read on its own and a
    tag that fails to convert is skipped (named in `problems`).
    """

    def read(some):
        try:
            return provider.read_tensors(
                ctx,
                experiment_id=experiment_id,
                plugin_name=plugin_name,
                downsample=_ALL_SAMPLES,
                run_tag_filter=tb_provider.RunTagFilter(runs=[run], tags=list(some)),
            ).get(run, {})
        except Exception as e:  # noqa: BLE001
            if len(some) == 1 and _too_large(e):
                raise RunTooLargeError(
                    f"run {run!r}, tag {some[0]!r}: the data server cannot send it in one answer "
                    "(TensorBoard's limit is 256 MiB); start TensorBoard with --load_fast=false, "
                    "or log every N-th step"
                ) from None
            raise

    if not tags:
        return {}
    try:
        return read(tags)
    except Exception as e:  # noqa: BLE001
        if not isinstance(e, _CONVERSION_ERRORS) and not _too_large(e):
            raise
    out = {}
    for tag in tags:
        try:
            out.update(read([tag]))
        except _CONVERSION_ERRORS as e:
            problems.append(f"{tag}: unreadable tensor data ({type(e).__name__}: {e}); skipped")
    return out


def _layer_sets(index_contents, problems):
    """Run layers (union, model order), their info, and each digest's rows."""
    layers, info, rows_of = [], {}, {}
    for tag, content in index_contents.items():
        paths = [l["path"] for l in content["layers"]]
        if metadata.layer_digest(paths) != content["digest"] or len(set(paths)) != len(paths):
            problems.append(f"{tag}: layer list does not match its digest; skipped")
            continue
        for l in content["layers"]:
            if l["path"] not in info:
                layers.append(l["path"])
                info[l["path"]] = l
        rows_of[content["digest"]] = [l["path"] for l in content["layers"]]
    index = {p: i for i, p in enumerate(layers)}
    rows_of = {d: np.array([index[p] for p in paths], np.int64) for d, paths in rows_of.items()}
    return layers, [info[p] for p in layers], rows_of


def read_run(provider, ctx, experiment_id, run, tags=None, cache=None, pooled_cache=None):
    """A `RunData` for `run` (None if it has no readable index).

    `tags` is the run's `listing.RunTags` (listed if None); `cache` keeps the
    matrices read later (`caches.Unbounded` if None), `pooled_cache` the
    pooled ones (none kept if None); both follow the `caches` protocol.
    """
    if tags is None:
        tags = listing.list_runs(provider, ctx, experiment_id).get(run)
        if tags is None:
            return None
    problems = list(tags.problems)
    layers, layer_info, rows_of = _layer_sets(tags.index, problems)
    index_tags = {t: c for t, c in tags.index.items() if c["digest"] in rows_of}
    if not index_tags:
        return None

    def read(plugin_name, tags, problems):
        return _read_tensors(provider, ctx, experiment_id, run, plugin_name, tags, problems)

    data = read(metadata.PLUGIN_NAME, list(index_tags), problems)
    wall = {}
    for tag in index_tags:
        for datum in data.get(tag, []):
            wall.setdefault(datum.step, datum.wall_time)
    steps = np.array(sorted(wall), np.int64)
    col_of = {int(s): j for j, s in enumerate(steps)}
    updated = np.zeros((len(layers), len(steps)), bool)
    for tag, content in index_tags.items():
        rows = rows_of[content["digest"]]
        for datum in data.get(tag, []):
            array = _numeric(datum.numpy)
            if array is None or array.shape != rows.shape:
                problems.append(f"{tag} step {datum.step}: not a [{len(rows)}] index; skipped")
                continue
            updated[rows, col_of[datum.step]] = array != 0

    stats = {}
    for metric in list(metadata.METRICS) + sorted({m for c in index_tags.values() for m in c["metrics"]} - set(metadata.METRICS)):
        for content in index_tags.values():
            for stat in content["metrics"].get(metric, []):
                if stat not in stats.setdefault(metric, []):
                    stats[metric].append(stat)
    sources, histogram_sources = {}, {}
    for tag, content in tags.stats.items():
        if content["digest"] not in rows_of or content["stat"] not in stats.get(content["metric"], []):
            problems.append(f"{tag}: no index lists its layer set, metric and statistic; skipped")
            continue
        sources.setdefault((content["metric"], content["stat"]), []).append(_Source(tag, rows_of[content["digest"]]))
    for tag, content in tags.histogram.items():
        if content["digest"] in rows_of and content["metric"] in stats:
            histogram_sources.setdefault(content["metric"], []).append(_Source(tag, rows_of[content["digest"]]))

    return RunData(
        steps=steps,
        wall_times=np.array([wall[s] for s in steps], np.float64),
        layers=layers,
        layer_info=layer_info,
        stats=stats,
        optimizer=next((str(c.get("optimizer", "")) for c in index_tags.values()), ""),
        problems=problems,
        updated=updated,
        sources=sources,
        histogram_sources=histogram_sources,
        read=read,
        cache=caches.Unbounded() if cache is None else cache,
        pooled_cache=pooled_cache,
    )


# Unparsable events skipped per `load` before giving up (each retry skips one).
_MAX_SKIPPED_EVENTS = 1000


def _reload(multiplexer, logdir):
    """`multiplexer.Reload()`, skipping events whose bytes pass the CRC but do not parse.

    TensorBoard's loader raises on such an event; its record reader has
    already moved past it, so reloading again goes on with the next one.
    """
    from google.protobuf.message import DecodeError

    skipped = []
    while True:
        try:
            multiplexer.Reload()
            break
        except DecodeError as e:
            skipped.append(str(e))
            if len(skipped) >= _MAX_SKIPPED_EVENTS:
                break
    if skipped:
        warnings.warn(
            f"tb_stepsize: skipped {len(skipped)} unreadable event(s) under {logdir!r} "
            f"({skipped[0]})",
            stacklevel=3,
        )


def _local_provider(logdir):
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        tensor_size_guidance={metadata.PLUGIN_NAME: 0, metadata.HISTOGRAM_PLUGIN_NAME: 0}
    )
    multiplexer.AddRunsFromDirectory(logdir)
    _reload(multiplexer, logdir)
    return data_provider.MultiplexerDataProvider(multiplexer, logdir)


def load_runs(logdir):
    """{run name: RunData} for every run under `logdir`, named as TensorBoard names them."""
    if not os.path.isdir(logdir):
        raise FileNotFoundError(f"no such log directory: {logdir!r}")
    provider = _local_provider(logdir)
    ctx = tb_context.RequestContext()
    listed = listing.list_runs(provider, ctx, "")
    runs = {}
    for run in sorted(listed):
        data = read_run(provider, ctx, "", run, listed[run])
        if data is not None:
            runs[run] = data
    return runs


def load(logdir):
    """The run stored directly in `logdir` (a `RunData`), else `load_runs(logdir)`."""
    runs = load_runs(logdir)
    if "." in runs:
        return runs["."]
    return runs

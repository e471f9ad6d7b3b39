"""Reads step-size runs through TensorBoard's data provider.

The plugin and `load` share this code, so the dashboard and a notebook see
the same numbers.  No TensorFlow is imported: `load` uses TensorBoard's own
event-file readers (its TF stub when TF is absent).
"""

import dataclasses
import os
import warnings

import numpy as np
from tensorboard import context as tb_context
from tensorboard.data import provider as tb_provider

from tb_stepsize import metadata

# read_tensors keeps every sample up to this many per tag.
_ALL_SAMPLES = 10**9


@dataclasses.dataclass
class RunData:
    """One run's step sizes.

    `steps` are the logged optimizer steps (int64 `[T]`), `layers` the
    variable paths in model order, `values[metric]` a float64 array
    `[L, T, S]` whose last axis is `stats[metric]`.
    """

    steps: np.ndarray
    wall_times: np.ndarray
    layers: list
    layer_info: list
    stats: dict
    values: dict
    optimizer: str = ""
    problems: list = dataclasses.field(default_factory=list)
    histogram_tags: dict = dataclasses.field(default_factory=dict)
    # present[metric]: bool `[L, T]`, True where a value was read (tells a
    # logged NaN from a missing cell).
    present: dict = dataclasses.field(default_factory=dict)
    _histogram_reader: object = dataclasses.field(default=None, repr=False)

    @property
    def metrics(self):
        return list(self.values)

    def matrix(self, metric, stat):
        """`[L, T]` float64 of `stat` of `metric`; NaN where a layer has no value."""
        if metric not in self.values:
            raise KeyError(f"metric {metric!r} not in this run (has {self.metrics})")
        names = self.stats[metric]
        if stat not in names:
            raise KeyError(f"stat {stat!r} not recorded for {metric!r} (has {names})")
        return self.values[metric][:, :, names.index(stat)]

    def histograms(self, metric, layer):
        """`(steps [T'], [[k, 3] arrays])` of one layer's histogram over time."""
        tags = self.histogram_tags.get((metric, layer), [])
        if not tags or self._histogram_reader is None:
            return np.zeros(0, np.int64), []
        by_step = {}
        for tag in tags:
            for datum in self._histogram_reader(tag):
                array = _numeric(datum.numpy)
                # A histogram's edges and counts are finite: anything else is not one.
                if array is not None and array.ndim == 2 and array.shape[1] == 3 and np.isfinite(array).all():
                    by_step[datum.step] = array
        steps = sorted(by_step)
        return np.array(steps, np.int64), [by_step[s] for s in steps]


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


def _read_tensors(provider, ctx, experiment_id, run, tags, problems=None):
    """{tag: [TensorDatum]} of `run`'s `tags`.

    The data provider converts every tensor of a request to an array and
    fails the whole request on one it cannot convert; then each tag is read
    on its own and a tag that fails is skipped (named in `problems`).
    """

    def read(some):
        return provider.read_tensors(
            ctx,
            experiment_id=experiment_id,
            plugin_name=metadata.PLUGIN_NAME,
            downsample=_ALL_SAMPLES,
            run_tag_filter=tb_provider.RunTagFilter(runs=[run], tags=list(some)),
        ).get(run, {})

    try:
        return read(tags)
    except _CONVERSION_ERRORS:
        if len(tags) == 1:
            if problems is not None:
                problems.append(f"{tags[0]}: unreadable tensor data; skipped")
            return {}
    except Exception as e:  # noqa: BLE001
        if not _too_large(e):
            raise
        if len(tags) == 1:
            raise RunTooLargeError(
                f"run {run!r}, tag {tags[0]!r}: the data server cannot send it in one answer "
                "(TensorBoard's limit is 256 MiB: too many logged steps x layers for --load_fast=true); "
                "start TensorBoard with --load_fast=false, or log every N-th step"
            ) from None
    out = {}
    for tag in tags:
        try:
            out.update(read([tag]))
        except _CONVERSION_ERRORS as e:
            if problems is not None:
                problems.append(f"{tag}: unreadable tensor data ({type(e).__name__}: {e}); skipped")
        except Exception as e:  # noqa: BLE001
            if not _too_large(e):
                raise
            raise RunTooLargeError(
                f"run {run!r}, tag {tag!r}: the data server cannot send it in one answer "
                "(TensorBoard's limit is 256 MiB: too many logged steps x layers for --load_fast=true); "
                "start TensorBoard with --load_fast=false, or log every N-th step"
            ) from None
    return out


class RunTooLargeError(RuntimeError):
    """A run's data does not fit in one answer of TensorBoard's data server."""


def _too_large(error):
    """True for gRPC's RESOURCE_EXHAUSTED (an answer above the client's message
    limit) and CANCELLED (the data server gives up on an answer of gigabytes)."""
    code = getattr(error, "code", None)
    try:
        return callable(code) and getattr(code(), "name", "") in ("RESOURCE_EXHAUSTED", "CANCELLED")
    except Exception:  # noqa: BLE001
        return False


def _time_series_contents(provider, ctx, experiment_id):
    """{run: {tag: parsed content or FormatError}} for the plugin's tags."""
    listing = provider.list_tensors(
        ctx, experiment_id=experiment_id, plugin_name=metadata.PLUGIN_NAME
    )
    out = {}
    for run, tags in listing.items():
        out[run] = {}
        for tag, series in tags.items():
            try:
                out[run][tag] = metadata.parse_content(series.plugin_content)
            except metadata.FormatError as e:
                out[run][tag] = e
    return out


def list_runs(provider, ctx, experiment_id=""):
    """Names of runs that hold step-size data."""
    return sorted(
        run
        for run, tags in _time_series_contents(provider, ctx, experiment_id).items()
        if any(not isinstance(c, Exception) for c in tags.values())
    )


def read_run(provider, ctx, experiment_id, run, contents=None):
    """Build a `RunData` for `run` from the data provider (None if it has no data)."""
    if contents is None:
        contents = _time_series_contents(provider, ctx, experiment_id).get(run, {})
    problems = []
    stats_tags = {}
    histogram_tags = {}
    for tag, content in sorted(contents.items()):
        if isinstance(content, Exception):
            problems.append(f"{tag}: {content}")
        elif content["kind"] == metadata.KIND_STATS:
            stats_tags[tag] = content
        else:
            histogram_tags.setdefault((content["metric"], content["layer"]), []).append(tag)
    if not stats_tags:
        return None
    data = _read_tensors(provider, ctx, experiment_id, run, list(stats_tags), problems)

    layers, layer_info, optimizer = [], {}, ""
    for content in stats_tags.values():
        optimizer = optimizer or str(content.get("optimizer", ""))
        for info in content["layers"]:
            if info["path"] not in layer_info:
                layers.append(info["path"])
                layer_info[info["path"]] = info
    row_of = {path: i for i, path in enumerate(layers)}

    wall = {}
    for series in data.values():
        for datum in series:
            wall.setdefault(datum.step, datum.wall_time)
    steps = np.array(sorted(wall), np.int64)
    col_of = {int(s): j for j, s in enumerate(steps)}

    stats, values, present = {}, {}, {}
    metrics_order = list(metadata.METRICS) + sorted(
        {c["metric"] for c in stats_tags.values()} - set(metadata.METRICS)
    )
    for metric in metrics_order:
        tags = [t for t, c in stats_tags.items() if c["metric"] == metric]
        if not tags:
            continue
        # Tags that disagree on the statistics: keep this format's own list
        # for a known metric (a foreign tag must not hide the real data).
        canonical = list(metadata.stats_for(metric)) if metric in metadata.METRICS else None
        names = next(
            (stats_tags[t]["stats"] for t in tags if stats_tags[t]["stats"] == canonical),
            stats_tags[tags[0]]["stats"],
        )
        grid = np.full((len(layers), len(steps), len(names)), np.nan)
        seen = np.zeros((len(layers), len(steps)), bool)
        for tag in tags:
            content = stats_tags[tag]
            if content["stats"] != names:
                problems.append(f"{tag}: statistics differ from the other {metric!r} tags; skipped")
                continue
            rows = [row_of[l["path"]] for l in content["layers"]]
            for datum in data.get(tag, []):
                array = _numeric(datum.numpy)
                if array is None:
                    problems.append(f"{tag} step {datum.step}: not numeric; skipped")
                    continue
                if array.shape != (len(rows), len(names)):
                    problems.append(f"{tag} step {datum.step}: shape {array.shape}; skipped")
                    continue
                grid[rows, col_of[datum.step], :] = array
                seen[rows, col_of[datum.step]] = True
        stats[metric] = list(names)
        values[metric] = grid
        present[metric] = seen
    # A variable the update did not touch (no gradient) is written as a row
    # whose `nonfinite` count is NaN: that cell is missing, not a NaN step.
    if "nonfinite" in stats.get("step", []):
        # (only where `step` was read: a cell it lacks says nothing of the others)
        updated = ~(present["step"] & np.isnan(values["step"][:, :, stats["step"].index("nonfinite")]))
        for metric in present:
            present[metric] &= updated
            values[metric][~updated] = np.nan

    def read_histogram(tag):
        return _read_tensors(provider, ctx, experiment_id, run, [tag]).get(tag, [])

    return RunData(
        steps=steps,
        wall_times=np.array([wall[s] for s in steps], np.float64),
        layers=layers,
        layer_info=[layer_info[p] for p in layers],
        stats=stats,
        values=values,
        optimizer=optimizer,
        problems=problems,
        histogram_tags=histogram_tags,
        present=present,
        _histogram_reader=read_histogram,
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
        tensor_size_guidance={metadata.PLUGIN_NAME: 0}
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
    contents = _time_series_contents(provider, ctx, "")
    runs = {}
    for run in sorted(contents):
        data = read_run(provider, ctx, "", run, contents[run])
        if data is not None:
            runs[run] = data
    return runs


def load(logdir):
    """The run stored directly in `logdir` (a `RunData`), else `load_runs(logdir)`."""
    runs = load_runs(logdir)
    if "." in runs:
        return runs["."]
    return runs

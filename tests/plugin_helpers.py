"""Synthetic step-size logdirs (written with `StepWriter`) and an in-process TensorBoard app.

Reading needs no TensorFlow: the writer is imported only where data is written."""

import json
import math
import os

import numpy as np
import pytest

from tb_stepsize import metadata

LAYERS_A = [
    {"path": "dense/kernel", "shape": [8, 4], "dtype": "float32"},
    {"path": "dense/bias", "shape": [4], "dtype": "float32"},
    {"path": "odd <b>ü&\"x\"</b>..\\/kernel", "shape": [4, 2], "dtype": "float32"},
]
# A later monitor watching one more variable: a second layer set (digest).
LAYERS_B = LAYERS_A + [{"path": "late/kernel", "shape": [2, 2], "dtype": "float32"}]
METRICS = ["step", "update_ratio"]


def random_stats(rng, n_layers, metric):
    if metadata.METRICS[metric].elementwise:
        base = rng.uniform(1e-6, 1e-3, size=(n_layers, 1))
        quant = np.sort(rng.uniform(0.5, 2.0, size=(n_layers, 9)), axis=1) * base
        mean = quant[:, 4:5] * rng.uniform(0.9, 1.1, size=(n_layers, 1))
        rms = mean * 1.2
        zero = rng.uniform(0, 0.5, size=(n_layers, 1))
        nonfinite = np.zeros((n_layers, 1))
        return np.concatenate([quant, mean, rms, zero, nonfinite], axis=1).astype(np.float32)
    return rng.uniform(1e-5, 1e-2, size=(n_layers, 1)).astype(np.float32)


def random_hists(rng, n_layers):
    hists = np.zeros((n_layers, metadata.HIST_BINS), np.int64)
    for row in range(n_layers):
        lo = int(rng.integers(200, 230))
        hists[row, lo : lo + 6] = rng.integers(1, 20, size=6)
        hists[row, 0] = rng.integers(0, 5)
    return hists


# Cells (layer row, step) that get a non-finite value in every statistic of
# `step` but `nonfinite` -- in set A's steps.
NONFINITE_CELLS = {(0, 3): np.nan, (1, 5): np.inf, (2, 5): -np.inf, (1, 6): -np.inf}


def write_synthetic_run(run_dir, steps_a=range(1, 9), steps_b=range(9, 13), seed=0):
    """A run with two layer sets: A for `steps_a`, A + `late/kernel` for `steps_b`.

    `late/kernel` is therefore missing for `steps_a`; `NONFINITE_CELLS` hold
    NaN / +Inf / -Inf.  Returns the list of logged steps.
    """
    from tb_stepsize.summary import StepWriter

    rng = np.random.default_rng(seed)
    os.makedirs(run_dir, exist_ok=True)
    for layers, steps in ((LAYERS_A, steps_a), (LAYERS_B, steps_b)):
        writer = StepWriter(run_dir, layers, METRICS, "Adam")
        for step in steps:
            stats = {m: random_stats(rng, len(layers), m) for m in METRICS}
            for (row, s), value in NONFINITE_CELLS.items():
                if s == step and row < len(layers):
                    # Every statistic non-finite; `nonfinite` counts the bad
                    # elements (a NaN count would mean "not updated": missing).
                    stats["step"][row, :] = value
                    stats["step"][row, metadata.ELEMENT_STATS.index("nonfinite")] = 3
            hists = {"step": random_hists(rng, len(layers))}
            writer.write(step, stats, hists, wall_time=1000.0 + step)
        writer.close()
    return list(steps_a) + list(steps_b)


def append_steps(run_dir, steps, layers=LAYERS_B, seed=1):
    """Appends more steps (a live run) in a new event file."""
    from tb_stepsize.summary import StepWriter

    rng = np.random.default_rng(seed)
    writer = StepWriter(run_dir, layers, METRICS, "Adam")
    for step in steps:
        stats = {m: random_stats(rng, len(layers), m) for m in METRICS}
        writer.write(step, stats, {"step": random_hists(rng, len(layers))}, wall_time=1000.0 + step)
    writer.close()


def write_raw_tag(run_dir, tag, content, array, step=1):
    """A tag with arbitrary plugin content bytes (for bad-data tests)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
    from tensorboard.util import tensor_util

    if not isinstance(content, bytes):
        content = json.dumps(content).encode("utf-8")
    value = summary_pb2.Summary.Value(tag=tag, tensor=tensor_util.make_tensor_proto(array))
    value.metadata.CopyFrom(
        summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(
                plugin_name=metadata.PLUGIN_NAME, content=content
            ),
            data_class=summary_pb2.DATA_CLASS_TENSOR,
        )
    )
    writer = EventFileWriter(run_dir)
    writer.add_event(
        event_pb2.Event(wall_time=1.0, step=step, summary=summary_pb2.Summary(value=[value]))
    )
    writer.close()


def write_scalars(run_dir, series):
    """Ordinary TensorBoard scalars: `series` is `{tag: [(step, value), ...]}`."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(run_dir)
    for tag, points in series.items():
        for step, value in points:
            writer.add_event(
                event_pb2.Event(
                    wall_time=1.0 + step,
                    step=step,
                    summary=summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, simple_value=value)]),
                )
            )
    writer.close()


# What `write_scalars` writes beside the synthetic run in the scalar tests:
# a loss with a NaN and the learning rate at every other step.
SCALARS = {
    "stepsize/loss": [(s, 1.0 / s if s != 7 else math.nan) for s in range(1, 13)],
    "stepsize/learning_rate": [(s, 1e-3) for s in range(1, 13, 2)],
}


def write_scalar_only_run(run_dir):
    """A run holding only another plugin's data (a scalar)."""
    write_scalars(run_dir, {"loss": [(step, 1.0 / (step + 1)) for step in range(3)]})


def make_provider(logdir):
    from tensorboard.backend.event_processing import data_provider, plugin_event_multiplexer

    multiplexer = plugin_event_multiplexer.EventMultiplexer(
        tensor_size_guidance={metadata.PLUGIN_NAME: 0, metadata.HISTOGRAM_PLUGIN_NAME: 0}
    )
    multiplexer.AddRunsFromDirectory(logdir)
    multiplexer.Reload()
    return multiplexer, data_provider.MultiplexerDataProvider(multiplexer, logdir)


def live_app(root, monkeypatch):
    """A synthetic run `live` under `root`, served in-process with the
    listing's time-to-live 0 (a reload is seen at the next request):
    `(run dir, client, plugin, multiplexer)`."""
    from tb_stepsize import listing

    monkeypatch.setattr(listing, "LISTING_TTL_SECS", 0.0)
    run_dir = str(root / "live")
    write_synthetic_run(run_dir)
    return (run_dir, *make_app(str(root)))


def read_scalars(logdir, run, tags):
    """`{tag: [(step, value)]}` of ordinary scalars, through TensorBoard's data provider."""
    from tensorboard import context
    from tensorboard.data import provider as tb_provider

    _, provider = make_provider(logdir)
    read = provider.read_scalars(
        context.RequestContext(),
        experiment_id="",
        plugin_name="scalars",
        downsample=10**6,
        run_tag_filter=tb_provider.RunTagFilter(runs=[run], tags=list(tags)),
    ).get(run, {})
    return {tag: [(d.step, d.value) for d in read.get(tag, [])] for tag in tags}


def get_json(client, url, code=200):
    """The JSON answer of `url` (asserting its status code and content type)."""
    response = client.get(url)
    assert response.status_code == code, (url, response.status_code, response.get_data()[:300])
    assert response.headers["Content-Type"].startswith("application/json")
    return json.loads(response.get_data(as_text=True))


def make_app(logdir):
    """`(werkzeug test Client, plugin, multiplexer)` over `logdir`."""
    from tensorboard.backend import application
    from tensorboard.plugins import base_plugin
    from werkzeug import test as werkzeug_test

    from tb_stepsize.plugin_loader import StepSizeLoader

    multiplexer, provider = make_provider(logdir)
    context = base_plugin.TBContext(data_provider=provider, logdir=logdir)
    plugin = StepSizeLoader().load(context)
    app = application.TensorBoardWSGI([plugin], data_provider=provider)
    return werkzeug_test.Client(app), plugin, multiplexer


# Reference statement of the pooling rule, for checking responses.


def reference_pool(values, present, group, stat):
    """Plain-python statement of the documented pooling rule."""
    n_layers, n_steps = values.shape
    out = []
    for i in range(n_layers):
        row = []
        for start in range(0, n_steps, group):
            cells = [values[i, j] for j in range(start, min(start + group, n_steps)) if present[i, j]]
            if not cells:
                row.append(("missing", None))
            elif any(math.isnan(c) for c in cells):
                row.append(("nan", None))
            elif any(c == math.inf for c in cells):
                row.append(("inf", None))
            elif any(c == -math.inf for c in cells):
                row.append(("-inf", None))
            elif stat == "min":
                row.append(("value", min(cells)))
            elif stat in ("max", "nonfinite"):
                row.append(("value", max(cells)))
            else:
                row.append(("value", math.fsum(cells) / len(cells)))
        out.append(row)
    return out


def numpy_pool(values, present, group, rule):
    """The rule, one group at a time: `(values, present)` like `pooling.pool`."""
    n_layers, n_steps = values.shape
    cols = -(-n_steps // group)
    out, out_present = np.full((n_layers, cols), np.nan), np.zeros((n_layers, cols), bool)
    for i in range(n_layers):
        for j in range(cols):
            v = values[i, j * group : (j + 1) * group][present[i, j * group : (j + 1) * group]].astype(np.float64)
            if not v.size:
                continue
            out_present[i, j] = True
            finite = v[np.isfinite(v)]
            if np.isnan(v).any():
                out[i, j] = np.nan
            elif (v == np.inf).any():
                out[i, j] = np.inf
            elif (v == -np.inf).any():
                out[i, j] = -np.inf
            else:
                out[i, j] = {"min": np.min, "max": np.max, "mean": np.mean}[rule](finite)
    return out, out_present


def check_grid(values_json, nonfinite_json, expected):
    """`values`/`nonfinite` of a response against `reference_pool` output."""
    flags = {(i, j): kind for i, j, kind in nonfinite_json}
    assert len(flags) == len(nonfinite_json)
    assert len(values_json) == len(expected)
    for i, row in enumerate(expected):
        assert len(values_json[i]) == len(row)
        for j, (kind, value) in enumerate(row):
            got = values_json[i][j]
            if kind == "value":
                assert got is not None and (i, j) not in flags
                assert got == pytest.approx(value, rel=1e-12, abs=0), (i, j)
            else:
                assert got is None, (i, j)
                assert flags.get((i, j)) == (None if kind == "missing" else kind), (i, j)


SENTINEL = "SENTINEL-7f3a-not-to-be-served"


def static_sandbox(root):
    """A logdir with `run1` and a stand-in static dir holding the listed files,
    with `secret.txt` (containing `SENTINEL`) beside, above and inside it, in
    the logdir, and an unlisted `index.js.map`.  Returns `(client, static dir,
    bytes of the listed files)`; point `plugin._STATIC_DIR` at the static dir.
    """
    from tb_stepsize import plugin as plugin_mod

    logdir = root / "logs"
    write_synthetic_run(str(logdir / "run1"))
    static = root / "pkg" / "static"
    static.mkdir(parents=True)
    for name, _ in plugin_mod.STATIC_FILES.values():
        (static / name).write_text(f"/* {name} */")
    for where in (root, root / "pkg", static, logdir, logdir / "run1"):
        (where / "secret.txt").write_text(SENTINEL)
    (static / "index.js.map").write_text(SENTINEL)
    client, _, _ = make_app(str(logdir))
    allowed = {(static / name).read_bytes() for name, _ in plugin_mod.STATIC_FILES.values()}
    return client, str(static), allowed

"""Hostile event files: `load` and every plugin route answer with data or a
clear error -- never a traceback, never a 500, never a hang.

Byte level (hypothesis): one run's event file truncated at any offset, bytes
flipped, garbage inserted, and records whose payload is mutated under valid
CRCs (so the event parser, not the CRC check, sees the garbage).

Proto level (hypothesis): a valid run plus one hostile tag: tensors of wrong
shapes and dtypes (string, int, bool, complex, half, unknown enums), content
lengths that do not match the shape, wrong/newer versions, malformed plugin
content (not JSON, not UTF-8, wrong types, duplicate or missing layers),
odd steps and NaN/Inf wall times.  The valid run's data must still be
served as it was.

Every example: `load` under a time limit, then every route over what `tags`
lists through the werkzeug test client (200/400/404, JSON).
"""

import json
import os
import tempfile
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.summary.writer.event_file_writer import EventFileWriter

import plugin_helpers as h
import robustness_helpers as rh
import tb_stepsize
from tb_stepsize import metadata
from tb_stepsize.summary import StepWriter

STEPS = list(range(1, 7))
SETTINGS = dict(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)


class Base(tuple):
    """(file name, bytes, RunData) of the valid run; short repr in failure reports."""

    def __new__(cls, *items):
        return super().__new__(cls, items)

    def __repr__(self):
        return f"Base({self[0]!r}, <{len(self[1])} bytes>)"


def write_base(run_dir):
    rng = np.random.default_rng(0)
    writer = StepWriter(run_dir, h.LAYERS_A, h.METRICS, "Adam")
    for step in STEPS:
        stats = {m: h.random_stats(rng, len(h.LAYERS_A), m) for m in h.METRICS}
        writer.write(step, stats, {"step": h.random_hists(rng, len(h.LAYERS_A))}, wall_time=1000.0 + step)
    writer.close()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("base") / "run")
    write_base(run_dir)
    (path,) = rh.event_files(run_dir)
    with open(path, "rb") as f:
        data = f.read()
    return Base(os.path.basename(path), data, tb_stepsize.load(run_dir))


def check_logdir(logdir):
    """`load` and every route on `logdir`; returns `load`'s answer."""
    with rh.time_limit(30, "load"):
        loaded = tb_stepsize.load_runs(logdir)
    for run in loaded.values():
        for metric, grid in run.values.items():
            assert grid.shape == (len(run.layers), len(run.steps), len(run.stats[metric]))
        assert list(run.steps) == sorted(set(run.steps))
        for problem in run.problems:
            assert isinstance(problem, str) and problem
    client = rh.make_app(logdir)
    with rh.time_limit(60, "routes"):
        tags = rh.sweep_routes(client)
    assert sorted(tags) == sorted(set(tags) | set(loaded))
    return loaded


def check_prefix(loaded, base_run):
    """A damaged copy of the base run reads as a prefix of its steps, same values."""
    if not loaded:
        return 0
    (run,) = loaded.values()
    steps = list(run.steps)
    assert steps == STEPS[: len(steps)] or set(steps) <= set(STEPS), steps
    for metric, grid in run.values.items():
        cols = [STEPS.index(s) for s in steps]
        np.testing.assert_array_equal(grid, base_run.values[metric][:, cols, :])
    return len(steps)


def run_mutated(name, data, base_run):
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = os.path.join(tmp, "run")
        os.makedirs(run_dir)
        with open(os.path.join(run_dir, name), "wb") as f:
            f.write(data)
        return check_logdir(tmp)


# --------------------------------------------------------------- byte level


@settings(**SETTINGS)
@given(st.data())
def test_truncated_at_any_offset(base, data):
    name, raw, base_run = base
    cut = data.draw(st.integers(0, len(raw)), label="cut")
    loaded = run_mutated(name, raw[:cut], base_run)
    # Exactly the complete records before the cut are read.
    spans, _ = rh.record_spans(raw[:cut])
    n = check_prefix(loaded, base_run)
    assert n == max(0, len(spans) - 1)  # the first record is file_version


@settings(**SETTINGS)
@given(st.data())
def test_flipped_bytes(base, data):
    name, raw, base_run = base
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        at = data.draw(st.integers(0, len(raw) - 1))
        buf[at] ^= data.draw(st.integers(1, 255))
    check_prefix(run_mutated(name, bytes(buf), base_run), base_run)


@settings(**SETTINGS)
@given(st.data())
def test_inserted_garbage(base, data):
    name, raw, base_run = base
    at = data.draw(st.integers(0, len(raw)), label="at")
    garbage = data.draw(st.binary(min_size=1, max_size=64), label="garbage")
    loaded = run_mutated(name, raw[:at] + garbage + raw[at:], base_run)
    check_prefix(loaded, base_run)


def frame(payload):
    header = len(payload).to_bytes(8, "little")
    return (
        header
        + masked_crc32c(header).to_bytes(4, "little")
        + payload
        + masked_crc32c(payload).to_bytes(4, "little")
    )


@settings(**SETTINGS)
@given(st.data())
def test_mutated_payload_under_valid_crc(base, data):
    """The event parser sees garbage: flipped, cut or extended event protos."""
    name, raw, base_run = base
    spans, _ = rh.record_spans(raw)
    index = data.draw(st.integers(1, len(spans) - 1), label="record")
    offset, length = spans[index]
    payload = bytearray(raw[offset + 12 : offset + length - 4])
    how = data.draw(st.sampled_from(["flip", "cut", "extend"]), label="how")
    if how == "flip":
        for _ in range(data.draw(st.integers(1, 6))):
            at = data.draw(st.integers(0, len(payload) - 1))
            payload[at] ^= data.draw(st.integers(1, 255))
    elif how == "cut":
        payload = payload[: data.draw(st.integers(0, len(payload) - 1))]
    else:
        payload += data.draw(st.binary(min_size=1, max_size=40))
    mutated = raw[:offset] + frame(bytes(payload)) + raw[offset + length :]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "skipped N unreadable event(s)"
        run_mutated(name, mutated, base_run)


# -------------------------------------------------------------- proto level

DTYPES = [
    types_pb2.DT_FLOAT,
    types_pb2.DT_DOUBLE,
    types_pb2.DT_STRING,
    types_pb2.DT_INT32,
    types_pb2.DT_INT64,
    types_pb2.DT_BOOL,
    types_pb2.DT_COMPLEX64,
    types_pb2.DT_COMPLEX128,
    types_pb2.DT_HALF,
    types_pb2.DT_BFLOAT16,
    types_pb2.DT_UINT8,
    types_pb2.DT_INVALID,
    types_pb2.DT_RESOURCE,
    types_pb2.DT_VARIANT,
    999,  # an enum value no reader knows
]

json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
)
json_any = st.recursive(json_leaf, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4), max_leaves=12)


DIGEST = metadata.layer_digest([l["path"] for l in h.LAYERS_A])


@st.composite
def plugin_content(draw):
    """Raw content bytes: a valid content with one field broken, or junk."""
    kind = draw(st.sampled_from(["index", "stats", "histogram", "junk_json", "junk_bytes"]))
    if kind == "junk_bytes":
        return draw(st.binary(max_size=40))
    if kind == "junk_json":
        return json.dumps(draw(json_any)).encode()
    digest = draw(st.sampled_from([DIGEST, "0123456789"]))
    if kind == "index":
        layers = [dict(l) for l in h.LAYERS_A]
        if draw(st.booleans()):
            layers = draw(
                st.lists(
                    st.sampled_from(h.LAYERS_A) | st.fixed_dictionaries({"path": st.text(max_size=8)}),
                    max_size=5,
                )
            )
        content = metadata.index_content(digest, layers, h.METRICS, "Adam")
        if draw(st.booleans()):  # statistics this reader does not know, or none
            content["metrics"]["novel"] = draw(st.lists(st.sampled_from(list(metadata.ELEMENT_STATS) + ["value", "?"]), max_size=14))
    elif kind == "stats":
        metric = draw(st.sampled_from(["step", "update_ratio", "novel"]))
        content = metadata.stats_content(digest, metric, draw(st.sampled_from(["p50", "value", "?"])))
    else:
        content = metadata.histogram_content(digest, draw(st.sampled_from(["step", "update_ratio", "novel"])))
    field = draw(st.sampled_from(["none", "version", "kind", "digest", "metric", "stat", "metrics", "layers", "drop"]))
    if field == "drop":
        content.pop(draw(st.sampled_from(sorted(content))))
    elif field == "version":
        content["version"] = draw(st.sampled_from([0, 1, 3, 10**30, -1, "2", 2.0, None, True, [2]]))
    elif field != "none":
        content[field] = draw(json_any)
    return json.dumps(content).encode()


@st.composite
def hostile_tensor(draw):
    dtype = draw(st.sampled_from(DTYPES))
    shape = draw(st.lists(st.integers(0, 6), max_size=4))
    tensor = tensor_pb2.TensorProto(
        dtype=dtype,
        tensor_shape=tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in shape]
        ),
    )
    source = draw(st.sampled_from(["content", "float_val", "string_val", "int_val", "none"]))
    if source == "content":
        tensor.tensor_content = draw(st.binary(max_size=200))
    elif source == "float_val":
        tensor.float_val.extend(draw(st.lists(st.floats(width=32), max_size=30)))
    elif source == "string_val":
        tensor.string_val.extend(draw(st.lists(st.binary(max_size=5), max_size=5)))
    elif source == "int_val":
        tensor.int_val.extend(draw(st.lists(st.integers(-(2**31), 2**31 - 1), max_size=30)))
    return tensor


def hostile_event(tag, content, tensor, step, wall_time, plugin_name=metadata.PLUGIN_NAME):
    value = summary_pb2.Summary.Value(tag=tag, tensor=tensor)
    value.metadata.CopyFrom(
        summary_pb2.SummaryMetadata(
            plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name=plugin_name, content=content),
            data_class=summary_pb2.DATA_CLASS_TENSOR,
        )
    )
    return event_pb2.Event(wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=[value]))


@settings(**SETTINGS)
@given(
    content=plugin_content(),
    tensor=hostile_tensor(),
    tag=st.sampled_from(["index", "stats", "other", "hist"]),
    step=st.sampled_from([0, 3, 7, -1, 2**63 - 1, -(2**63)]),
    wall_time=st.sampled_from([1.0, 0.0, -1.0, float("nan"), float("inf"), 1e300]),
    separate_file=st.booleans(),
)
def test_hostile_summaries(base, content, tensor, tag, step, wall_time, separate_file):
    name, raw, base_run = base
    tag_name = {
        "index": metadata.index_tag(DIGEST),  # these three collide with valid tags
        "stats": metadata.stats_tag("step", DIGEST, "p50"),
        "hist": metadata.histogram_tag("step", DIGEST),
        "other": "step/0123456789/p50",
    }[tag]
    plugin_name = metadata.HISTOGRAM_PLUGIN_NAME if tag == "hist" else metadata.PLUGIN_NAME
    event = hostile_event(tag_name, content, tensor, step, wall_time, plugin_name)
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = os.path.join(tmp, "run")
        write_base(run_dir)
        if separate_file:
            writer = EventFileWriter(run_dir, filename_suffix=".hostile")
            writer.add_event(event)
            writer.close()
        else:  # appended to the valid file (same event stream)
            (path,) = rh.event_files(run_dir)
            with open(path, "ab") as f:
                f.write(frame(event.SerializeToString()))
        loaded = check_logdir(tmp)
    if tag in ("other", "hist"):
        # The valid statistics are untouched (but where a foreign tag claims
        # the same layer at the same step).
        run = loaded["run"]
        rows = [run.layers.index(l["path"]) for l in h.LAYERS_A]
        cols = [list(run.steps).index(s) for s in STEPS if s != step]
        base_cols = [i for i, s in enumerate(STEPS) if s != step]
        np.testing.assert_array_equal(
            run.values["step"][np.ix_(rows, cols)], base_run.values["step"][:, base_cols, :]
        )


def _dims(*sizes):
    return tensor_shape_pb2.TensorShapeProto(dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in sizes])


def _with_bad_update_ratio(run_dir, bad):
    """The base run plus steps whose index is valid but whose `update_ratio` is `bad[step]`."""
    write_base(run_dir)
    index = json.dumps(metadata.index_content(DIGEST, h.LAYERS_A, h.METRICS, "Adam")).encode()
    content = json.dumps(metadata.stats_content(DIGEST, "update_ratio", "value")).encode()
    ones = tensor_pb2.TensorProto(dtype=types_pb2.DT_UINT8, int_val=[1, 1, 1], tensor_shape=_dims(3))
    writer = EventFileWriter(run_dir, filename_suffix=".bad")
    for step, tensor in bad.items():
        writer.add_event(hostile_event(metadata.index_tag(DIGEST), index, ones, step, 2000.0 + step))
        writer.add_event(hostile_event(metadata.stats_tag("update_ratio", DIGEST, "value"), content, tensor, step, 2000.0 + step))
    writer.close()
    return tb_stepsize.load(run_dir)


def test_wrong_dtypes_and_shapes_leave_their_cells_missing(tmp_path, base):
    """Convertible but wrong tensors: those cells are missing, the rest is served."""
    run = _with_bad_update_ratio(
        str(tmp_path / "run"),
        {
            10: tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING, string_val=[b"x", b"y", b"z"], tensor_shape=_dims(3)),
            11: tensor_pb2.TensorProto(
                dtype=types_pb2.DT_COMPLEX64, tensor_content=np.ones(3, np.complex64).tobytes(), tensor_shape=_dims(3)
            ),
            12: tensor_pb2.TensorProto(dtype=types_pb2.DT_BOOL, bool_val=[True] * 3, tensor_shape=_dims(3)),
            13: tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0, 2.0], tensor_shape=_dims(2)),
            14: tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE, double_val=[1.0] * 8, tensor_shape=_dims(2, 2, 2)),
            15: tensor_pb2.TensorProto(dtype=types_pb2.DT_INT32, int_val=[1, 2, 3], tensor_shape=_dims(3)),
        },
    )
    base_run = base[2]
    assert list(run.steps) == STEPS + list(range(10, 16))
    cols = [list(run.steps).index(s) for s in STEPS]
    for metric in h.METRICS:
        np.testing.assert_array_equal(run.values[metric][:, cols, :], base_run.values[metric])
    # Integers are numbers: accepted.  Strings, complex, bool and wrong shapes are not.
    assert run.matrix("update_ratio", "value")[:, list(run.steps).index(15)].tolist() == [1, 2, 3]
    for step in (10, 11, 12, 13, 14):
        assert not run.present["update_ratio"][:, list(run.steps).index(step)].any()
        assert any(f"step {step}:" in p for p in run.problems), (step, run.problems)
    rh.sweep_routes(rh.make_app(str(tmp_path)))


def test_unconvertible_tensors_skip_their_tag(tmp_path, base):
    """Tensors TensorBoard cannot convert (content not fitting the shape, unknown
    dtype) fail the provider's whole read of that tag: the tag is skipped with a
    problem, the other metrics are served unchanged."""
    run = _with_bad_update_ratio(
        str(tmp_path / "run"),
        {
            20: tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\0" * 7, tensor_shape=_dims(3)),
            21: tensor_pb2.TensorProto(dtype=999),
        },
    )
    cols = [list(run.steps).index(s) for s in STEPS]
    np.testing.assert_array_equal(run.values["step"][:, cols, :], base[2].values["step"])
    assert not run.present["update_ratio"].any()
    assert any("update_ratio/" in p and "unreadable tensor data" in p for p in run.problems), run.problems
    tags = rh.sweep_routes(rh.make_app(str(tmp_path)))
    assert tags["run"]["num_steps"] == len(STEPS) + 2


# ------------------------------------------- the data server's answer limit


class _TooLarge(Exception):
    """What gRPC raises for an answer above the client's 256 MiB message limit."""

    def code(self):
        import types

        return types.SimpleNamespace(name="RESOURCE_EXHAUSTED")


def _limited_provider(logdir, too_large):
    """The local provider, raising `_TooLarge` for reads `too_large(run, tags)` says are too big."""
    from tb_stepsize import reader

    provider = reader._local_provider(logdir)
    original = provider.read_tensors

    def read_tensors(ctx=None, **kwargs):
        f = kwargs.get("run_tag_filter")
        if f is not None and f.runs and too_large(list(f.runs)[0], sorted(f.tags or [])):
            raise _TooLarge("Received message larger than max")
        return original(ctx, **kwargs)

    provider.read_tensors = read_tensors
    return provider


def test_answers_above_the_data_server_limit(tmp_path):
    """The Rust data server cannot send more than 256 MiB in one answer: tags
    are then read one by one; a single tag too big is a clear error that
    names the way out, and the other runs and metrics are still served."""
    from tb_stepsize import reader
    from tensorboard import context as tb_context

    logdir = str(tmp_path)
    for run in ("split", "huge", "small"):
        write_base(os.path.join(logdir, run))
    provider = _limited_provider(
        logdir,
        lambda run, tags: (run == "split" and len(tags) > 1) or (run == "huge" and any(t.startswith("step/") for t in tags)),
    )
    ctx = tb_context.RequestContext()
    split = reader.read_run(provider, ctx, "", "split")
    np.testing.assert_array_equal(split.values["step"], tb_stepsize.load(os.path.join(logdir, "split")).values["step"])
    assert split.problems == []
    huge = reader.read_run(provider, ctx, "", "huge")  # the index is small
    assert list(huge.steps) == STEPS
    with pytest.raises(reader.RunTooLargeError, match="--load_fast=false"):
        huge.matrix("step", "p50")

    client = rh.make_app(logdir, provider)
    response = client.get(f"{rh.BASE}/tags")
    assert response.status_code == 200
    tags = json.loads(response.get_data())
    assert tags["small"]["num_steps"] == tags["split"]["num_steps"] == tags["huge"]["num_steps"] == len(STEPS)
    response = client.get(f"{rh.BASE}/heatmap?run=huge&metric=step&stat=p50")
    assert response.headers["Content-Type"].startswith("application/json")
    assert "--load_fast=false" in json.loads(response.get_data())["error"]
    assert client.get(f"{rh.BASE}/heatmap?run=huge&metric=update_ratio&stat=value").status_code == 200
    assert client.get(f"{rh.BASE}/heatmap?run=small&metric=step&stat=p50").status_code == 200

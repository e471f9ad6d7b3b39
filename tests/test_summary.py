"""The writer (`summary`): its bytes parsed back.

Event files are read back three ways: TensorBoard's own loader (what the
plugin sees), and by hand -- TFRecord framing with its masked CRC32C
checked here in pure Python, then `Event` protos -- so a change in how the
writer frames or joins its records cannot hide behind a reader that
tolerates it.  (`test_format` keeps the format contract: tag names, plugin
content, old versions.)
"""

import os
import re
import socket
import struct

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from tensorboard.backend.event_processing import event_file_loader  # noqa: E402
from tensorboard.compat.proto import event_pb2, types_pb2  # noqa: E402
from tensorboard.util import tensor_util  # noqa: E402

import plugin_helpers  # noqa: E402
from tb_stepsize import metadata, summary  # noqa: E402
from tb_stepsize.summary import StepWriter  # noqa: E402

LAYERS = [{"path": f"m/l{i}", "shape": [3], "dtype": "float32"} for i in range(4)]


def _crc32c_table():
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_TABLE = _crc32c_table()


def masked_crc32c(data):
    """TFRecord's checksum: CRC32C (Castagnoli), rotated right by 15 and offset."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def records(path):
    """Payloads of a TFRecord file, every length and payload CRC checked."""
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        header = data[pos : pos + 8]
        (length,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[pos + 8 : pos + 12])[0] == masked_crc32c(header)
        payload = data[pos + 12 : pos + 12 + length]
        assert struct.unpack("<I", data[pos + 12 + length : pos + 16 + length])[0] == masked_crc32c(payload)
        out.append(payload)
        pos += 16 + length
    assert pos == len(data)
    return out


def device_row(rng):
    return rng.random((len(LAYERS), len(metadata.ELEMENT_STATS) - 2)).astype(np.float32)


def test_crc_matches_the_known_value():
    assert masked_crc32c(b"") == ((0 >> 15 | 0 << 17) + 0xA282EAD8) & 0xFFFFFFFF
    # CRC32C("123456789") is 0xE3069283 (RFC 3720's check value).
    crc = 0xE3069283
    assert masked_crc32c(b"123456789") == (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_file_name_and_header_event(tmp_path):
    writer = StepWriter(str(tmp_path / "run"), LAYERS, ["step"], "Adam")
    writer.close()
    (name,) = os.listdir(tmp_path / "run")
    pattern = r"events\.out\.tfevents\.\d{10}\.(.+)\.(\d+)\.(\d{6})\.stepsize"
    host, pid, _ = re.fullmatch(pattern, name).groups()
    assert host == socket.gethostname() and int(pid) == os.getpid()
    (header,) = [event_pb2.Event.FromString(r) for r in records(tmp_path / "run" / name)]
    assert header.file_version == "brain.Event:2" and header.wall_time > 0


def test_events_parsed_by_hand(tmp_path):
    """Index flags, statistics columns and histogram triples, as written, with rows not updated."""
    rng = np.random.default_rng(1)
    writer = StepWriter(str(tmp_path), LAYERS, ["step", "lost_fraction"], "Nadam")
    hist = np.zeros((4, metadata.HIST_BINS), np.int32)
    hist[0, [0, 300, 301]] = [1, 1, 1]
    hist[1, [250, metadata.HIST_FINITE_BINS + 1]] = [2, 1]  # one NaN
    hist[2, 12] = 3
    device = device_row(rng)
    device[3] = np.nan  # layer 3 was not updated at this step: no histogram counts either
    step_stats = writer.element_stats(device, hist)
    lost = rng.random((4, 1)).astype(np.float32)
    writer.write(7, {"step": step_stats, "lost_fraction": lost}, {"step": hist}, wall_time=55.5)
    writer.write(8, {"step": step_stats, "lost_fraction": lost}, {"step": hist}, wall_time=56.5)
    writer.close()
    (path,) = [os.path.join(tmp_path, f) for f in os.listdir(tmp_path)]
    header, *events = [event_pb2.Event.FromString(r) for r in records(path)]
    assert [(e.step, e.wall_time) for e in events] == [(7, 55.5), (8, 56.5)]
    digest = metadata.layer_digest([l["path"] for l in LAYERS])
    for i, event in enumerate(events):
        values = {v.tag: v for v in event.summary.value}
        assert set(values) == (
            {metadata.index_tag(digest), metadata.histogram_tag("step", digest), metadata.stats_tag("lost_fraction", digest, "value")}
            | {metadata.stats_tag("step", digest, s) for s in metadata.ELEMENT_STATS}
        )
        index = values[metadata.index_tag(digest)]
        assert index.tensor.dtype == types_pb2.DT_UINT8
        np.testing.assert_array_equal(tensor_util.make_ndarray(index.tensor), [1, 1, 1, 0])
        if i == 0:
            content = metadata.parse_content(index.metadata.plugin_data.content)
            assert content["layers"] == LAYERS and content["optimizer"] == "Nadam"
            assert content["metrics"] == {"step": list(metadata.ELEMENT_STATS), "lost_fraction": ["value"]}
        columns = np.stack(
            [tensor_util.make_ndarray(values[metadata.stats_tag("step", digest, s)].tensor) for s in metadata.ELEMENT_STATS], 1
        )
        np.testing.assert_array_equal(columns, step_stats)
        assert np.isnan(columns[3]).all()
        zero_fraction = columns[:, metadata.ELEMENT_STATS.index("zero_fraction")]
        nonfinite = columns[:, metadata.ELEMENT_STATS.index("nonfinite")]
        np.testing.assert_array_equal(zero_fraction[:3], np.float32([1 / 3, 0, 0]))
        np.testing.assert_array_equal(nonfinite[:3], [0, 1, 0])
        hist_value = values[metadata.histogram_tag("step", digest)]
        assert hist_value.tensor.dtype == types_pb2.DT_INT32
        assert hist_value.HasField("metadata") == (i == 0)
        triples = tensor_util.make_ndarray(hist_value.tensor)
        # (row, bin, count) of the zero and finite bins only: the NaN bin is in `nonfinite`.
        np.testing.assert_array_equal(triples, [[0, 0, 1], [0, 300, 1], [0, 301, 1], [1, 250, 2], [2, 12, 3]])
        np.testing.assert_array_equal(tensor_util.make_ndarray(values[metadata.stats_tag("lost_fraction", digest, "value")].tensor), lost[:, 0])


def test_without_histograms_no_histogram_tag(tmp_path):
    writer = StepWriter(str(tmp_path), LAYERS, ["step"], "SGD", histograms=False)
    hist = np.zeros((4, metadata.HIST_BINS), np.int32)
    hist[:, 300] = 3
    writer.write(1, {"step": writer.element_stats(device_row(np.random.default_rng(2)), hist)}, {"step": hist}, wall_time=1.0)
    writer.close()
    (path,) = [os.path.join(tmp_path, f) for f in os.listdir(tmp_path)]
    (event,) = [e for e in map(event_pb2.Event.FromString, records(path)) if e.HasField("summary")]
    assert not any(v.tag.endswith("/hist") for v in event.summary.value)


def test_tensor_proto_is_little_endian_raw_bytes():
    """TensorProto's `tensor_content` is little-endian whatever the host's order."""
    for array in (np.float32([1.5, -2.0]), np.int32([[1, 2, 3]]), np.uint8([0, 1])):
        proto = summary.tensor_proto(array)
        assert proto.tensor_content == array.astype(array.dtype.newbyteorder("<")).tobytes()
        np.testing.assert_array_equal(tensor_util.make_ndarray(proto), array)


def test_writer_events_are_plain_summaries(tmp_path):
    """Every event the writer appends parses into ordinary Summary values:
    metadata on each tag's first event only, float32 `[L]` columns equal to
    what was written (later columns are joined from serialized bytes)."""
    layers = [{"path": f"m/l{i}", "shape": [3], "dtype": "float32"} for i in range(4)]
    writer = StepWriter(str(tmp_path), layers, ["step", "update_ratio"], "Adam")
    rng = np.random.default_rng(0)
    written = []
    for step in (1, 2, 3):
        hist = np.zeros((4, metadata.HIST_BINS), np.int32)
        hist[:, 300] = 3
        stats = {
            "step": writer.element_stats(rng.random((4, len(metadata.ELEMENT_STATS) - 2)).astype(np.float32), hist),
            "update_ratio": rng.random((4, 1)).astype(np.float32),
        }
        writer.write(step, stats, {"step": hist}, wall_time=100.0 + step)
        written.append(stats)
    writer.close()
    (path,) = [os.path.join(tmp_path, f) for f in os.listdir(tmp_path)]
    events = [e for e in event_file_loader.EventFileLoader(path).Load() if e.HasField("summary")]
    assert [e.step for e in events] == [1, 2, 3] and [e.wall_time for e in events] == [101.0, 102.0, 103.0]
    digest = metadata.layer_digest([l["path"] for l in layers])
    for i, (event, stats) in enumerate(zip(events, written)):
        values = {v.tag: v for v in event.summary.value}
        assert len(values) == 1 + len(metadata.ELEMENT_STATS) + 1 + 1  # index, step stats, hist, update_ratio
        assert all(v.HasField("metadata") == (i == 0) for v in values.values())
        for m, names in (("step", metadata.ELEMENT_STATS), ("update_ratio", ["value"])):
            for s, name in enumerate(names):
                column = tensor_util.make_ndarray(values[metadata.stats_tag(m, digest, name)].tensor)
                assert column.dtype == np.float32 and column.shape == (4,)
                np.testing.assert_array_equal(column, stats[m][:, s])


def test_loss_and_learning_rate_are_ordinary_scalars(tmp_path):
    """`scalars` go into the step's event as float32 `[]` tensors of TensorBoard's
    scalars plugin (metadata on the first event only), so its data provider's
    `read_scalars` serves them; steps without a loss just have none."""
    writer = StepWriter(str(tmp_path / "run"), LAYERS, ["step"], "Adam")
    hist = np.zeros((4, metadata.HIST_BINS), np.int32)
    stats = {"step": writer.element_stats(device_row(np.random.default_rng(3)), hist)}
    for step, scalars in ((1, {metadata.LEARNING_RATE_TAG: np.float32(1e-3), metadata.LOSS_TAG: 2.5}), (2, {metadata.LEARNING_RATE_TAG: 5e-4})):
        writer.write(step, stats, {"step": hist}, wall_time=10.0 + step, scalars=scalars)
    writer.close()
    (path,) = [os.path.join(tmp_path / "run", f) for f in os.listdir(tmp_path / "run")]
    _, *events = [event_pb2.Event.FromString(r) for r in records(path)]
    for i, event in enumerate(events):
        value = {v.tag: v for v in event.summary.value}[metadata.LEARNING_RATE_TAG]
        assert value.tensor.dtype == types_pb2.DT_FLOAT and not value.tensor.tensor_shape.dim
        assert value.HasField("metadata") == (i == 0)
        assert i or value.metadata.plugin_data.plugin_name == "scalars"

    read = plugin_helpers.read_scalars(str(tmp_path), "run", [metadata.LOSS_TAG, metadata.LEARNING_RATE_TAG])
    assert read[metadata.LOSS_TAG] == [(1, 2.5)]
    assert read[metadata.LEARNING_RATE_TAG] == [(1, pytest.approx(1e-3)), (2, pytest.approx(5e-4))]

"""The format contract: files written by format version 2 stay readable;
version 1 (pre-release) files are refused with a clear message."""

import json
import os

import numpy as np
from tensorboard.compat.proto import summary_pb2

import plugin_helpers as h
import tb_stepsize
from tb_stepsize import metadata

DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


def test_version_2_files_read_back():
    run = tb_stepsize.load(os.path.join(DATA, "format_v2", "run"))
    assert list(run.steps) == [1, 2]
    assert list(run.wall_times) == [1001.0, 1002.0]
    assert run.layers == ["model/dense/kernel", "model/dense/bias"]
    assert run.layer_info[0] == {"path": "model/dense/kernel", "shape": [4, 3], "dtype": "float32"}
    assert run.optimizer == "SGD"
    assert run.stats == {"step": list(metadata.ELEMENT_STATS), "update_ratio": ["value"]}
    np.testing.assert_allclose(run.matrix("step", "p50"), [[0.1, 0.2], [0.2, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(run.matrix("step", "zero_fraction"), [[2 / 12, 2 / 12], [0, 0]])
    np.testing.assert_array_equal(run.matrix("step", "nonfinite"), [[0, 0], [0, 0]])
    ratio = run.matrix("update_ratio", "value")
    np.testing.assert_allclose(ratio[0], [1e-3, 2e-3], rtol=1e-6)
    assert np.all(np.isnan(ratio[1])) and run.mask("update_ratio", "value")[1].all()  # a logged NaN
    steps, hists = run.histograms("step", "model/dense/kernel")
    assert list(steps) == [1, 2]
    left, right = metadata.histogram_edges(250, 250)
    np.testing.assert_array_equal(hists[0], [[0, 0, 2], [left[0], right[0], 10]])
    steps, hists = run.histograms("step", "model/dense/bias")
    left, right = metadata.histogram_edges(251, 251)
    np.testing.assert_array_equal(hists[1], [[0, 0, 0], [left[0], right[0], 3]])
    assert run.problems == []


def test_version_1_files_are_refused_clearly():
    client, _, _ = h.make_app(os.path.join(DATA, "format_v1"))
    tags = json.loads(client.get("/data/plugin/stepsize/tags").get_data())
    assert tags["run"]["num_steps"] == 0
    assert "pre-release" in tags["run"]["problems"][0]
    assert tb_stepsize.load(os.path.join(DATA, "format_v1")) == {}


def test_tags_and_metadata_contract():
    digest = metadata.layer_digest(["a/kernel", "a/bias"])
    assert metadata.index_tag(digest) == f"index/{digest}"
    assert metadata.stats_tag("step", digest, "p50") == f"step/{digest}/p50"
    assert metadata.histogram_tag("step", digest) == f"step/{digest}/hist"
    index = metadata.create_summary_metadata(metadata.index_content(digest, [{"path": "a/kernel"}], ["step"], "Adam"))
    stats = metadata.create_summary_metadata(metadata.stats_content(digest, "step", "p50"))
    hist = metadata.create_summary_metadata(metadata.histogram_content(digest, "step"))
    assert index.plugin_data.plugin_name == stats.plugin_data.plugin_name == "stepsize"
    assert hist.plugin_data.plugin_name == "stepsize_histograms"
    for meta in (index, stats, hist):
        assert meta.data_class == summary_pb2.DATA_CLASS_TENSOR  # else the Rust data server drops it
        assert metadata.parse_content(meta.plugin_data.content)["version"] == metadata.FORMAT_VERSION


def test_writer_events_are_plain_summaries(tmp_path):
    """Every event the writer appends parses into ordinary Summary values:
    metadata on each tag's first event only, float32 `[L]` columns equal to
    what was written (later columns are joined from serialized bytes)."""
    import pytest

    pytest.importorskip("tensorflow")
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.util import tensor_util

    from tb_stepsize.summary import StepWriter

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

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

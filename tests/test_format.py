"""The format contract: files written by format version 1 stay readable."""

import os

import numpy as np
from tensorboard.compat.proto import summary_pb2

import tb_stepsize
from tb_stepsize import metadata

V1 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "format_v1")


def test_version_1_files_read_back():
    run = tb_stepsize.load(os.path.join(V1, "run"))
    assert list(run.steps) == [1, 2]
    assert list(run.wall_times) == [1001.0, 1002.0]
    assert run.layers == ["model/dense/kernel", "model/dense/bias"]
    assert run.layer_info[0] == {"path": "model/dense/kernel", "shape": [4, 3], "dtype": "float32"}
    assert run.optimizer == "SGD"
    assert run.stats["step"] == list(metadata.ELEMENT_STATS)
    np.testing.assert_allclose(run.matrix("step", "p50"), [[0.1, 0.2], [0.2, 0.4]], rtol=1e-6)
    np.testing.assert_allclose(run.matrix("step", "zero_fraction"), [[2 / 12, 2 / 12], [0, 0]])
    np.testing.assert_array_equal(run.matrix("step", "nonfinite"), [[0, 0], [0, 0]])
    ratio = run.matrix("update_ratio", "value")
    np.testing.assert_allclose(ratio[0], [1e-3, 2e-3], rtol=1e-6)
    assert np.all(np.isnan(ratio[1]))
    steps, hists = run.histograms("step", "model/dense/kernel")
    assert list(steps) == [1, 2]
    left, right = metadata.histogram_edges(250, 250)
    np.testing.assert_array_equal(hists[0], [[0, 0, 2], [left[0], right[0], 10]])
    assert run.problems == []


def test_tags_and_metadata_contract():
    digest = metadata.layer_digest(["a/kernel", "a/bias"])
    assert metadata.stats_tag("step", digest) == f"step/{digest}"
    assert metadata.histogram_tag("step", digest, 7) == f"step/{digest}/hist/00007"
    meta = metadata.create_summary_metadata(metadata.stats_content("step", [{"path": "a/kernel"}], "Adam"))
    assert meta.plugin_data.plugin_name == "stepsize"
    assert meta.data_class == summary_pb2.DATA_CLASS_TENSOR  # else the Rust data server drops it
    assert metadata.parse_content(meta.plugin_data.content)["version"] == metadata.FORMAT_VERSION

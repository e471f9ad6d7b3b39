"""DDP and FSDP2 with 2 real worker processes on CPU (gloo) against a single-process run.

DDP: only rank 0 records, and what it records equals the single-process
run with the same global batch.  FSDP2 (`fully_shard`): every rank reduces
its own shard and the per-layer partials are combined across ranks (two
collectives per logged update), so the run equals the unsharded one --
also with the shards reduced in chunks of 5 elements and an uneven shard
(3 output rows over 2 ranks).  Weights are float64 (see the helper).
"""

import glob
import os
import re
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tb_stepsize  # noqa: E402

HELPER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "torch_distributed_helpers.py")
LINE = re.compile(r"rank (\d) logged (\d+) enabled (\d) collectives (\d+) weights (\w+)")


def _train(where, log_dir, *options):
    proc = subprocess.run(
        [sys.executable, HELPER, where, str(log_dir), *options], capture_output=True, text=True, timeout=600,
        env=dict(os.environ, PYTHONWARNINGS="ignore"),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    reports = "".join(open(f).read() for f in glob.glob(f"{log_dir}.rank*"))
    ranks = {int(m[1]): dict(logged=int(m[2]), enabled=int(m[3]), collectives=int(m[4]), weights=m[5]) for m in LINE.finditer(reports)}
    return ranks, tb_stepsize.load(str(log_dir))


def _same_run(got, want, what):
    assert got.layers == want.layers and list(got.steps) == list(want.steps) and got.metrics == want.metrics, what
    assert [l["shape"] for l in got.layer_info] == [l["shape"] for l in want.layer_info], what
    for metric in want.metrics:
        np.testing.assert_allclose(got.values[metric], want.values[metric], rtol=1e-6, atol=0, equal_nan=True, err_msg=f"{what} {metric}")
    for layer in want.layers:
        for metric in ("step", "effective_lr", "intended_step"):
            s1, h1 = got.histograms(metric, layer)
            s2, h2 = want.histograms(metric, layer)
            assert list(s1) == list(s2) and all(np.array_equal(a, b) for a, b in zip(h1, h2)), f"{what} {metric} {layer}"


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    return _train("single", tmp_path_factory.mktemp("single"))


def test_ddp_rank0_records_what_one_process_records(tmp_path, single):
    ranks, run = _train("ddp", tmp_path)
    assert ranks[0]["logged"] == 6 and ranks[1]["enabled"] == 0 and ranks[1]["logged"] == 0
    assert len([f for f in os.listdir(tmp_path) if "tfevents" in f]) == 1  # rank 1 wrote nothing
    _same_run(run, single[1], "ddp")


@pytest.mark.parametrize("chunk", [0, 5], ids=["whole", "chunks_of_5"])
def test_fsdp2_shards_combine_into_the_unsharded_run(tmp_path, single, chunk):
    ranks, run = _train("fsdp", tmp_path, f"chunk={chunk}")
    assert ranks[0]["weights"] == ranks[1]["weights"]
    assert ranks[0]["logged"] == 6 and ranks[1]["logged"] == 0  # rank 0 writes
    assert ranks[0]["collectives"] == ranks[1]["collectives"] == 2 * 6  # two per logged update
    assert run.layers == ["0.weight", "0.bias", "2.weight", "2.bias"] and run.layer_info[2]["shape"] == [3, 16]
    _same_run(run, single[1], f"fsdp chunk={chunk}")


def test_fsdp2_every_n_steps_collects_only_at_logged_steps(tmp_path):
    ranks, run = _train("fsdp", tmp_path, "every_n=4")
    assert list(run.steps) == [1, 5] and ranks[1]["collectives"] == 4

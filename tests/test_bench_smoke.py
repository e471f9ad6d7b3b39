"""Smoke runs of the benchmarks (seconds, no thresholds) so they cannot rot."""

import os
import subprocess
import sys

import pytest

BENCH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "bench")


def run(script, *args, timeout=600):
    proc = subprocess.run(
        [sys.executable, os.path.join(BENCH, script), *args], capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def test_overhead_bench_smoke():
    pytest.importorskip("tensorflow")
    out = run("bench_overhead.py", "--quick", "--models", "cnn", "--memory_repeats", "1")
    assert "every_n=1" in out and "\n         cnn " in out
    cells = out.strip().splitlines()[-1].split()
    cold, warm = map(float, cells[-2].split("/"))  # first fit +s, from fresh processes
    assert float(cells[-1]) > 0  # mem/largest: the callback's peak is above the plain fit's


def test_overhead_bench_smoke_other_backends():
    pytest.importorskip("jax")
    pytest.importorskip("torch")
    out = run("bench_overhead.py", "--quick", "--models", "cnn", "--backends", "jax,torch")
    assert "\n         cnn        jax " in out and "\n         cnn      torch " in out


def test_plugin_bench_smoke():
    out = run("bench_plugin.py", "--layers", "5", "--steps", "50", "--repeats", "1", "--max-steps", "20")
    assert "heatmap" in out


def test_browser_bench_smoke():
    pytest.importorskip("playwright")
    out = run("bench_browser.py", "--layers", "20", "--columns", "100", "--repeat", "1", "--hovers", "10")
    assert "20" in out


def test_distributed_bench_smoke():
    pytest.importorskip("tensorflow")
    out = run("bench_distributed.py", "--quick")
    assert "mirrored x2" in out and "one device" in out


def test_many_variables_bench_smoke():
    pytest.importorskip("tensorflow")
    out = run("bench_many_variables.py", "--vars", "20", "--quick")
    assert "every_n=100" in out and "\n       20 " in out


def test_kernel_bench_smoke():
    out = run("bench_kernel.py", "--quick")
    assert "| OnePass.of |" in out and "| update, 3 metrics |" in out


def test_torch_overhead_bench_smoke():
    pytest.importorskip("torch")
    out = run("bench_torch_overhead.py", "--smoke")
    assert "every_n=100" in out and "\n       cnn1m " in out and "\n transformer " in out

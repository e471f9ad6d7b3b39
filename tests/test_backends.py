"""The same cases (`backend_cases.py`) on every Keras backend, each in its own process.

Keras reads `KERAS_BACKEND` once per process, so each backend runs the whole
case module in a subprocess (`backend_runner.py`); on JAX and torch that
process has TensorFlow blocked, so passing proves those paths never import
it.  JAX's distributed cases run in a further process with two host-platform
devices.  A backend whose framework is not installed is skipped.
"""

import importlib.util
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}


def run_cases(backend, *pytest_args, env=None):
    if importlib.util.find_spec(PACKAGES[backend]) is None:
        pytest.skip(f"{backend} is not installed")
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, "backend_runner.py"), backend, "-x", *pytest_args],
        capture_output=True,
        text=True,
        timeout=3000,
        env=dict(os.environ, **(env or {})),
    )
    assert proc.returncode == 0, (proc.stdout[-6000:], proc.stderr[-3000:])
    return proc.stdout


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_cases_on_backend(backend):
    out = run_cases(backend)
    assert " passed" in out.splitlines()[-1], out[-2000:]


def test_jax_distributed_on_two_host_devices():
    out = run_cases("jax", "-k", "distributed", env={"XLA_FLAGS": "--xla_force_host_platform_device_count=2"})
    assert "2 passed" in out.splitlines()[-1], out[-2000:]

"""Crash safety of the torch monitor: a real training process SIGKILLed at a random moment.

The process prints `STEP t wall_time` after each update (every update
logged, `flush_secs=1`).  After the kill, `tb_stepsize.load` returns exactly
the steps 1..k, only finite statistics, no problems, and every step logged
more than `flush_secs + SLACK` seconds before the kill is among them: only
the unflushed tail can be lost.  The seed is random; set
TB_STEPSIZE_CRASH_SEED to replay one.
"""

import os
import random
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest

pytest.importorskip("torch")

import tb_stepsize  # noqa: E402

SLACK = 1.5  # seconds: scheduling on a busy 2-core machine
FLUSH_SECS = 1.0
TRAIN = textwrap.dedent(
    """
    import sys, time, warnings
    import torch, tb_stepsize.torch as tbs
    warnings.simplefilter("ignore")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 2))
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.randn(64, 8)
    with tbs.StepSizeMonitor(sys.argv[1], opt, model=model, flush_secs=float(sys.argv[2])) as monitor:
        for t in range(1, 100000):
            loss = torch.mean((model(x) - x[:, :2]) ** 2)
            loss.backward(); opt.step(); opt.zero_grad()
            monitor.after_step(loss=loss)
            print("STEP", t, time.time(), flush=True)
            time.sleep(0.02)
    """
)


def _train_and_kill(log_dir, wait):
    proc = subprocess.Popen([sys.executable, "-c", TRAIN, log_dir, str(FLUSH_SECS)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    steps = []

    def read():
        for line in proc.stdout:
            if line.endswith("\n") and line.startswith("STEP "):
                _, t, wall = line.split()
                steps.append((int(t), float(wall)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while len(steps) < 5:
        assert proc.poll() is None and time.monotonic() < deadline, "training did not start"
        time.sleep(0.01)
    time.sleep(wait)
    kill_time = time.time()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(30)
    reader.join(30)
    return steps, kill_time


@pytest.mark.parametrize("round_", [1, 2])
def test_sigkill_loses_only_the_unflushed_tail(tmp_path, round_):
    seed = int(os.environ.get("TB_STEPSIZE_CRASH_SEED", time.time_ns() % 2**32)) + round_
    wait = random.Random(seed).uniform(0.5, 4.0)
    steps, kill_time = _train_and_kill(str(tmp_path), wait)
    run = tb_stepsize.load(str(tmp_path))
    if run == {}:  # killed before the first flush: only the file's header is on disk
        on_disk = []
    else:
        on_disk = list(run.steps)
        assert run.problems == [] and np.isfinite(run.matrix("step", "p50")).all(), seed
    context = f"seed {seed}, waited {wait:.2f} s, logged {len(steps)}, on disk {len(on_disk)}"
    assert on_disk == list(range(1, len(on_disk) + 1)), context
    for t, wall in steps:
        if kill_time - wall > FLUSH_SECS + SLACK:
            assert t in on_disk, (context, t, kill_time - wall)

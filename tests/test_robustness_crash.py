"""Crash safety: a real training process SIGKILLed at random moments, three times.

Each training process prints every logged step (`STEP t wall_time`) and every
epoch end (`EPOCH t wall_time`, after the step-size callback's epoch-end
flush).  After each SIGKILL:

* `tb_stepsize.load` returns exactly the consecutive steps 1..k (a prefix of
  all steps the processes logged), no problems, only finite statistics, and
  the values of every step read before never change;
* the steps lost are only those logged since the last flush.  The flush
  policy checked: with `flush_secs=1` every step logged more than
  `flush_secs + SLACK` seconds before the kill is on disk; with
  `flush_secs=1000` (time flushes effectively off; no histograms, so the
  small events wait in the file buffer) every step logged before the last
  epoch end is on disk (epoch-end flush);
* the plugin (werkzeug test client over a `MultiplexerDataProvider`) answers
  every route over the truncated tail;
* the next process resumes in the same run directory (its optimizer starts
  at the last step on disk, as from a checkpoint) and appends.

A last process runs to the end (close at exit): every step is then on disk.
The seed is random; set TB_STEPSIZE_CRASH_SEED to replay one.
"""

import os
import random
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np

import plugin_helpers as h
import robustness_helpers as rh
import tb_stepsize

SLACK = 1.5  # seconds: scheduling on a busy 2-core machine
KILLS = 3

TRAIN = textwrap.dedent(
    """
    import sys, time
    import numpy as np, keras, tb_stepsize
    log_dir, flush_secs, steps_per_epoch, epochs = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    histograms = sys.argv[5] == "1"
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((8,)),
        keras.layers.Dense(32, activation="tanh", name="hidden"),
        keras.layers.Dense(16, activation="tanh", name="hidden2"),
        keras.layers.Dense(2, name="out"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.optimizer.build(model.trainable_variables)
    x = np.random.default_rng(0).standard_normal((8 * steps_per_epoch, 8)).astype("float32")
    print("READY", flush=True)
    start = int(sys.stdin.readline())  # the last step on disk: resume as from a checkpoint
    model.optimizer.iterations.assign(start)

    class Report(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            print("STEP", int(self.model.optimizer.iterations.numpy()), time.time(), flush=True)
            time.sleep(0.02)

        def on_epoch_end(self, epoch, logs=None):
            print("EPOCH", int(self.model.optimizer.iterations.numpy()), time.time(), flush=True)

    callback = tb_stepsize.StepSizeCallback(log_dir, flush_secs=flush_secs, histograms=histograms)
    model.fit(x, x[:, :2], batch_size=8, epochs=epochs, verbose=0, callbacks=[callback, Report()])
    print("DONE", flush=True)
    """
)


# One report of the training process, at the end of its line: another
# library's output without a newline may precede it on the same line.
REPORT = re.compile(r"(?:(?P<flag>READY|DONE)|(?P<kind>STEP|EPOCH) (?P<step>\d+) (?P<time>[\d.e+-]+))\n\Z")


class Trainer:
    """One training process; lines of its stdout collected with their kind."""

    def __init__(self, log_dir, flush_secs, steps_per_epoch, epochs):
        self.flush_secs = flush_secs
        # Without time flushes, small events (no histograms) stay in the file
        # buffer until the epoch-end flush: that policy is then what saves them.
        histograms = "1" if flush_secs < 100 else "0"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", TRAIN, log_dir, str(flush_secs), str(steps_per_epoch), str(epochs), histograms],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        )
        self.steps, self.epochs, self.ready, self.done = [], [], threading.Event(), False
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            if not line.endswith("\n"):
                break  # the last line, cut off by the kill: a report never finished
            report = REPORT.search(line)
            if report is None:
                continue  # some library's own output
            if report["flag"] == "READY":
                self.ready.set()
            elif report["flag"] == "DONE":
                self.done = True
            else:
                reports = self.steps if report["kind"] == "STEP" else self.epochs
                reports.append((int(report["step"]), float(report["time"])))

    def start(self, step):
        assert self.ready.wait(120), "training process did not start"
        self.proc.stdin.write(f"{step}\n")
        self.proc.stdin.flush()

    def wait_steps(self, n, timeout=120):
        deadline = time.monotonic() + timeout
        while len(self.steps) < n:
            assert self.proc.poll() is None, "training process ended early"
            assert time.monotonic() < deadline, "no steps logged"
            time.sleep(0.01)

    def kill(self):
        kill_time = time.time()
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)
        self.reader.join(30)
        return kill_time

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)


def check_plugin(log_dir, expected_steps):
    client, _, _ = h.make_app(log_dir)
    with rh.time_limit(60, "plugin sweep"):
        tags = rh.sweep_routes(client)
    assert tags["."]["num_steps"] == expected_steps and tags["."]["problems"] == []


def test_sigkill_at_random_moments_loses_only_unflushed_steps(tmp_path):
    seed = int(os.environ.get("TB_STEPSIZE_CRASH_SEED", time.time_ns() % 2**32))
    rng = random.Random(seed)
    log_dir = str(tmp_path / "run")
    # (flush_secs, steps per epoch): time flushes with long epochs, or epoch-end
    # flushes only (and no histograms: small events that wait in the buffer).
    plans = [[(1.0, 400), (1000.0, 15)][i % 2] for i in range(KILLS)]
    on_disk = 0  # steps 1..on_disk are on disk
    known = {}  # step -> its `step` statistics as first read
    report = []
    trainers = [Trainer(log_dir, *plans[0], epochs=50)]
    try:
        for i, (flush_secs, steps_per_epoch) in enumerate(plans):
            trainer = trainers[-1]
            trainer.start(on_disk)
            trainer.wait_steps(rng.randint(3, 12))
            # The next process imports TensorFlow meanwhile; it waits for its start step.
            following = plans[i + 1] if i + 1 < len(plans) else (1.0, 5)
            trainers.append(Trainer(log_dir, *following, epochs=50 if i + 1 < len(plans) else 2))
            time.sleep(rng.uniform(0.2, 3.0))
            kill_time = trainer.kill()
            logged = trainer.steps
            assert [s for s, _ in logged] == list(range(on_disk + 1, on_disk + 1 + len(logged))), f"seed {seed}"

            run = tb_stepsize.load(log_dir)
            steps = list(run.steps)
            context = f"seed {seed}, kill {i + 1}, flush_secs {flush_secs}"
            assert steps == list(range(1, len(steps) + 1)), context
            assert len(steps) >= on_disk, context
            assert run.problems == [], context
            p50 = run.matrix("step", "p50")
            assert np.isfinite(p50).all() and (p50 > 0).all(), context
            for col, step in enumerate(steps):
                values = run.values["step"][:, col, :]
                if step in known:
                    np.testing.assert_array_equal(values, known[step], err_msg=context)
                known[step] = values.copy()

            lost = [(s, t) for s, t in logged if s > len(steps)]
            if flush_secs < 100:
                for s, t in lost:
                    assert kill_time - t <= flush_secs + SLACK, (context, s, kill_time - t)
            else:
                last_epoch_end = max((s for s, _ in trainer.epochs), default=on_disk)
                assert len(steps) >= last_epoch_end, (context, last_epoch_end)
            _, tail = rh.record_spans(open(rh.event_files(log_dir)[-1], "rb").read())
            report.append(
                f"kill {i + 1} (flush_secs={flush_secs:g}): logged {len(logged)}, on disk "
                f"{len(steps) - on_disk}, lost {len(lost)} (oldest {max((kill_time - t for _, t in lost), default=0):.2f} s "
                f"before the kill), partial tail {tail} bytes"
            )
            check_plugin(log_dir, len(steps))
            on_disk = len(steps)

        # The last process runs to the end: everything it logs is on disk.
        final = trainers[-1]
        final.start(on_disk)
        assert final.proc.wait(180) == 0 and final.reader.join(30) is None and final.done
        run = tb_stepsize.load(log_dir)
        assert list(run.steps) == list(range(1, on_disk + len(final.steps) + 1))
        assert len(final.steps) == 10 and run.problems == []
        for col, step in enumerate(run.steps):
            if step in known:
                np.testing.assert_array_equal(run.values["step"][:, col, :], known[step])
        assert len(rh.event_files(log_dir)) == KILLS + 1
        check_plugin(log_dir, len(run.steps))
        print(f"\nseed {seed}\n" + "\n".join(report))
    finally:
        for trainer in trainers:
            trainer.stop()

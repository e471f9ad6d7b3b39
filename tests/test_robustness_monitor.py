"""Monitor failures never stop training.

Faults: log_dir removed during training, a full disk (a real 64 KiB tmpfs
when it can be mounted, and a simulated ENOSPC from the record writer), exceptions inside the monitor's host code (set-up, buffer pull,
statistics, flush).  Each gives exactly one `tb_stepsize:` warning and
`fit` runs to the end; with `on_error="raise"` `fit` raises
`MonitorError` instead.  What was flushed before the fault stays readable.
"""

import errno
import os
import shutil
import subprocess
import threading
import warnings

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import tb_stepsize  # noqa: E402
from tb_stepsize import keras_internals  # noqa: E402
from tb_stepsize import monitor as monitor_mod  # noqa: E402
from tb_stepsize import records, summary  # noqa: E402

X = np.random.default_rng(0).standard_normal((96, 8)).astype("float32")
Y = np.random.default_rng(1).standard_normal((96, 2)).astype("float32")
STEPS_PER_EPOCH = 6  # 96 samples / batch 16


def model_fn(activation="tanh"):
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [
            keras.Input((8,)),
            keras.layers.Dense(16, activation=activation, name="hidden"),
            keras.layers.Dense(2, name="out"),
        ]
    )


class Hook(keras.callbacks.Callback):
    """Calls `fn(batch)` after every batch (after the step-size callback)."""

    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def on_train_batch_end(self, batch, logs=None):
        self.fn(batch)


def fit(log_dir, epochs=3, callbacks=(), x=X, optimizer=None, **cb_kwargs):
    """`(history, callback, our warnings, thread exceptions)` of one fit."""
    model = model_fn()
    model.compile(optimizer=optimizer or keras.optimizers.Adam(1e-2), loss="mse")
    callback = tb_stepsize.StepSizeCallback(str(log_dir), **cb_kwargs)
    thread_errors = []
    old_hook = threading.excepthook
    threading.excepthook = lambda args: thread_errors.append(args.exc_value)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            history = model.fit(
                x, Y, batch_size=16, epochs=epochs, shuffle=False, verbose=0, callbacks=[callback, *callbacks]
            )
            callback.close()
    finally:
        threading.excepthook = old_hook
    # The monitor's failure warnings (a finding's, e.g. Adam(1e-2)'s ratio_high, has its own category).
    ours = [str(w.message) for w in caught if "tb_stepsize" in str(w.message) and w.category is not tb_stepsize.FindingWarning]
    return history, callback, ours, thread_errors


def fit_raises(log_dir, callbacks=(), **cb_kwargs):
    model = model_fn()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    callback = tb_stepsize.StepSizeCallback(str(log_dir), on_error="raise", **cb_kwargs)
    try:
        with pytest.raises(monitor_mod.MonitorError) as info:
            model.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[callback, *callbacks])
    finally:
        callback.close()
    return str(info.value)


def assert_prefix(log_dir, at_least=1):
    """What is on disk is the consecutive prefix 1..k of the logged steps, clean."""
    run = tb_stepsize.load(str(log_dir))
    if at_least == 0 and isinstance(run, dict):
        return 0
    assert list(run.steps) == list(range(1, len(run.steps) + 1))
    assert len(run.steps) >= at_least
    assert run.problems == []
    assert np.isfinite(run.matrix("step", "p50")).all()
    return len(run.steps)


# ------------------------------------------------------------ log_dir removed


def test_log_dir_removed_during_training_warns_once(tmp_path):
    log_dir = tmp_path / "run"

    def remove(batch):
        if batch == 2 and log_dir.exists():
            shutil.rmtree(log_dir)

    history, callback, ours, thread_errors = fit(log_dir, callbacks=[Hook(remove)], flush_secs=0)
    assert len(history.history["loss"]) == 3
    assert len(ours) == 1 and "was removed" in ours[0], ours
    assert not thread_errors
    assert not callback.monitor.enabled
    assert not log_dir.exists()  # nothing recreated behind the user's back

    def remove_again(batch):
        if batch == 2 and log_dir.exists():
            shutil.rmtree(log_dir)

    message = fit_raises(log_dir, callbacks=[Hook(remove_again)], flush_secs=0)
    assert "was removed" in message


# ---------------------------------------------------------------- full disk


@pytest.fixture
def tiny_tmpfs(tmp_path):
    where = tmp_path / "tmpfs"
    where.mkdir()
    try:
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(where)], capture_output=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.skip(f"cannot mount a tmpfs: {e}")
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {proc.stderr.decode()[:200]}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=30)


def test_real_full_disk_warns_once_training_goes_on(tiny_tmpfs):
    log_dir = tiny_tmpfs / "run"
    history, callback, ours, thread_errors = fit(log_dir, epochs=4, flush_secs=0)
    assert len(history.history["loss"]) == 4
    assert len(ours) == 1 and "No space left on device" in ours[0], ours
    assert not thread_errors, thread_errors  # no traceback from TensorBoard's writer thread
    assert 0 < callback.monitor.logged_steps < 4 * STEPS_PER_EPOCH
    # The disk is full: the file ends in a partial record, what came before is clean.
    assert assert_prefix(log_dir, at_least=1) <= callback.monitor.logged_steps

    # Leave ~12 KiB free: the event file opens, then the first steps fill the disk.
    shutil.rmtree(log_dir)
    free = os.statvfs(tiny_tmpfs).f_bavail * os.statvfs(tiny_tmpfs).f_frsize
    (tiny_tmpfs / "filler").write_bytes(b"x" * max(0, free - 12 * 1024))
    message = fit_raises(tiny_tmpfs / "run2", flush_secs=0)
    assert "No space left on device" in message


def test_simulated_enospc_from_the_record_writer(tmp_path, monkeypatch):
    """ENOSPC from the record writer after 5 records (portable: no tmpfs needed)."""

    class FullDisk(records.RecordFile):
        records = 0

        def write(self, record):
            if FullDisk.records >= 5:  # file_version + 4 steps fit on the "disk"
                raise OSError(errno.ENOSPC, "No space left on device")
            FullDisk.records += 1
            super().write(record)

    monkeypatch.setattr(records, "RecordFile", FullDisk)
    history, callback, ours, thread_errors = fit(tmp_path / "run", flush_secs=0)
    assert len(history.history["loss"]) == 3
    assert len(ours) == 1 and "No space left on device" in ours[0], ours
    assert not thread_errors
    assert assert_prefix(tmp_path / "run", at_least=4) == 4


# ------------------------------------------------- exceptions in host code


def _raiser(message):
    def boom(*args, **kwargs):
        raise RuntimeError(message)

    return boom


FAULTS = {
    # where -> (object, attribute)
    "setup": (monitor_mod, "Reducer"),
    "buffer_pull": (monitor_mod.StepSizeMonitor, "_collect"),
    "statistics": (summary.StepWriter, "element_stats"),
    "flush": (summary.StepWriter, "flush"),
}


@pytest.mark.parametrize("where", list(FAULTS))
def test_exception_in_monitor_host_code(tmp_path, monkeypatch, where):
    owner, name = FAULTS[where]
    monkeypatch.setattr(owner, name, _raiser(f"injected fault in {where}"))
    history, callback, ours, thread_errors = fit(tmp_path / "warn", epochs=1)
    assert len(history.history["loss"]) == 1
    assert len(ours) == 1 and f"injected fault in {where}" in ours[0], ours
    assert "RuntimeError" in ours[0]
    assert not callback.monitor.enabled
    assert not thread_errors
    if where in ("setup", "flush"):  # collect's path raises in the full-disk test
        assert f"injected fault in {where}" in fit_raises(tmp_path / "raise")


def test_failed_monitor_unhooks_and_training_is_unchanged(tmp_path, monkeypatch):
    """After a failure the optimizer runs Keras' own update again: same weights as without the callback."""
    model = model_fn()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    model.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    expected = [v.numpy() for v in model.trainable_variables]

    monkeypatch.setattr(monitor_mod.StepSizeMonitor, "_collect", _raiser("pull failed"))
    model = model_fn()
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="mse")
    callback = tb_stepsize.StepSizeCallback(str(tmp_path))
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        model.fit(X, Y, batch_size=16, epochs=2, shuffle=False, verbose=0, callbacks=[callback])
    assert not any(name in model.optimizer.__dict__ for name, _ in keras_internals.HOOKED_METHODS.values())
    for got, want in zip(model.trainable_variables, expected):
        np.testing.assert_array_equal(got.numpy(), want)



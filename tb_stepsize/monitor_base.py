"""What every monitor (Keras on each backend, plain PyTorch) checks the same way.

Argument checks, the writable-directory check, include/exclude selection,
the error type and the failure / flush / close life cycle (`Lifecycle`):
one definition, so every monitor accepts, refuses, fails and closes the
same way with the same messages.  No framework import.
"""

import atexit
import os
import re
import tempfile
import warnings

from tb_stepsize import live_findings, metadata


class MonitorError(RuntimeError):
    """The monitor cannot record (raised only with `on_error="raise"`)."""


def check_arguments(on_error, every_n_steps, metrics, on_finding):
    if on_error not in ("warn", "raise"):
        raise ValueError(f"on_error must be 'warn' or 'raise', not {on_error!r}")
    if int(every_n_steps) < 1:
        raise ValueError(f"every_n_steps must be >= 1, got {every_n_steps!r}")
    unknown = set(metrics or ()) - set(metadata.METRICS)
    if unknown or isinstance(metrics, str):
        raise ValueError(f"metrics must be a list of {sorted(metadata.METRICS)}, got {metrics!r}")
    if on_finding is not None and not callable(on_finding):
        raise ValueError(f"on_finding must be callable, got {on_finding!r}")


def check_writable(log_dir):
    try:
        os.makedirs(log_dir, exist_ok=True)
        tempfile.TemporaryFile(dir=log_dir).close()
    except OSError as e:
        raise MonitorError(f"log_dir {log_dir!r} is not writable: {e}") from None


def completed_updates(calls_before, calls_after, accumulation, every_n_steps):
    """What the optimizer calls after the first `calls_before` up to `calls_after` completed:
    `(logged, last)`, how many of the updates they completed are logged ones, and the
    last update's number if it is logged (its loss is written with it), else None.

    Keras counts `apply` calls; with gradient accumulation an update takes
    `accumulation` calls, and update t (from 1) is logged when (t - 1) is a
    multiple of `every_n_steps`.
    """
    t_lo, t_hi = calls_before // accumulation, calls_after // accumulation
    logged = (t_hi - 1) // every_n_steps - (t_lo - 1) // every_n_steps
    last = t_hi if logged and (t_hi - 1) % every_n_steps == 0 else None
    return logged, last


def select(named, include, exclude):
    """The `(name, item)` pairs of `named` whose name matches `include` (a regex
    searched in it, or None for all) and not `exclude`, in their order."""
    inc = re.compile(include) if include else None
    exc = re.compile(exclude) if exclude else None
    return [
        (name, item)
        for name, item in named
        if (inc is None or inc.search(name)) and (exc is None or not exc.search(name))
    ]


class Lifecycle:
    """How a monitor fails, flushes and closes: the same for every monitor.

    A subclass sets `enabled`, `_on_error`, `_failed = False`, `_writer`
    (a `summary.StepWriter` or None) and `_live` (`live_findings.LiveFindings`
    or None), and provides `_collect(wait)` (pull and write what is pending),
    `_flush_file()` (flush the event file) and `_release()` (stop recording:
    remove hooks).  Nothing here may break training: a failure is one warning
    (or `MonitorError` with `on_error="raise"`), after which the monitor
    records nothing more.
    """

    def _configure(self, every_n_steps, metrics, flush_secs, on_error, on_finding, stop_on):
        """Check and keep the arguments every monitor takes; nothing recorded yet."""
        check_arguments(on_error, every_n_steps, metrics, on_finding)
        self._findings_args = dict(on_finding=on_finding, stop_on=live_findings.check_stop_on(stop_on), interval=flush_secs)
        self.every_n_steps = int(every_n_steps)
        self._on_error = on_error
        self._flush_secs = flush_secs
        self.enabled = False
        self._failed = False
        self._writer = None
        self.host_reads = 0  # pulls of logged updates to the host (a host/device sync each)
        self.logged_steps = 0

    def _attach_guarded(self, *args):
        """`self._attach(*args)`; a failure is one warning (or `MonitorError`), never a crash."""
        try:
            self._attach(*args)
        except MonitorError as e:
            self._fail(str(e))
        except Exception as e:  # never let the monitor break training
            self._fail(f"setting up failed: {type(e).__name__}: {e}")

    def _fail(self, message):
        """Stop recording for good, then warn once (or raise)."""
        first, self._failed = not self._failed, True
        self._shutdown()
        if not first:  # e.g. closing the file failed too while failing: one report only
            return
        if self._on_error == "raise":
            raise MonitorError(message)
        warnings.warn(f"tb_stepsize: {message}; step sizes are not recorded.", stacklevel=3)

    def _shutdown(self):
        """Stop recording and close the event file, without flushing."""
        self.enabled = False
        self._release()
        writer, self._writer = self._writer, None
        atexit.unregister(self.close)
        if writer is not None:
            try:
                writer.close()
            except Exception as e:  # e.g. the disk filled up: what was flushed stays readable
                self._fail(f"closing the event file failed: {type(e).__name__}: {e}")

    def collect(self, wait=False):
        """Pull logged updates from the device, write them and report new findings;
        with `wait`, also those still on their way (asynchronous backends: JAX)."""
        if not self.enabled:
            return
        try:
            self._collect(wait)
        except Exception as e:  # never let the monitor break training
            self._fail(f"writing step sizes failed: {type(e).__name__}: {e}")
        self._report()

    def _report(self, force=False):
        """Evaluate the findings rules on what was pulled; outside `collect`'s guard, so
        that an exception of `on_finding` reaches the caller."""
        if self._live is not None:
            self._live.check(force)

    @property
    def findings(self):
        """The findings reported during training so far (`findings.Finding`), in the order reported."""
        return list(self._live.found) if self._live is not None else []

    @property
    def stop_requested(self):
        """True once a finding of a kind in `stop_on` was reported."""
        return self._live is not None and self._live.stop_requested

    def flush(self):
        """Write everything logged so far to disk (and report every new finding)."""
        self.collect(wait=True)
        if self._writer is not None:
            try:
                self._flush_file()
            except Exception as e:  # a full disk, a removed log_dir: never break training
                self._fail(f"flushing the event file failed: {type(e).__name__}: {e}")
        self._report(force=True)

    def close(self):
        """Write what is pending, close the event file and stop recording (twice is fine)."""
        if self.enabled:
            self.flush()
        self._shutdown()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

"""What every monitor (Keras on each backend, plain PyTorch) checks the same way.

Argument checks, the writable-directory check, include/exclude selection and
the error type: one definition, so every monitor accepts and refuses the
same things with the same messages.  No framework import.
"""

import os
import re
import tempfile

from tb_stepsize import metadata


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

"""tb_stepsize: see the step your optimizer applies to every layer.

`load` (and the TensorBoard plugin) import no TensorFlow; the training side
(`StepSizeCallback`, `StepSizeMonitor`) imports it on first use.
"""

from tb_stepsize.reader import RunData, load, load_runs

__all__ = ["StepSizeCallback", "StepSizeMonitor", "MonitorError", "RunData", "load", "load_runs"]
__version__ = "0.1.0"


def __getattr__(name):
    if name == "StepSizeCallback":
        from tb_stepsize.callback import StepSizeCallback

        return StepSizeCallback
    if name in ("StepSizeMonitor", "MonitorError"):
        from tb_stepsize import monitor

        return getattr(monitor, name)
    raise AttributeError(f"module 'tb_stepsize' has no attribute {name!r}")

"""tb_stepsize: see the step your optimizer applies to every layer.

Everything is imported on first use, so that TensorBoard importing the
plugin's loader (`tb_stepsize.plugin_loader`) runs nothing else; `load` and
the plugin import no TensorFlow, the training side (`StepSizeCallback`,
`StepSizeMonitor`) does.
"""

__all__ = ["StepSizeCallback", "StepSizeMonitor", "MonitorError", "FindingWarning", "RunData", "load", "load_runs"]
__version__ = "0.1.0"

_HOMES = {
    "StepSizeCallback": "callback",
    "StepSizeMonitor": "monitor",
    "MonitorError": "monitor_base",
    "FindingWarning": "live_findings",
    "RunData": "reader",
    "load": "reader",
    "load_runs": "reader",
}


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module 'tb_stepsize' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"tb_stepsize.{_HOMES[name]}"), name)


def __dir__():
    return sorted(list(globals()) + __all__)

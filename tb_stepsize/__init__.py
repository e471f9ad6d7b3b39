"""tb_stepsize: see the step your optimizer applies to every layer.

Everything is imported on first use, so that TensorBoard importing the
plugin's loader (`tb_stepsize.plugin_loader`) runs nothing else; `load` and
the plugin import no framework, and the training side (`StepSizeCallback`,
`StepSizeMonitor`) imports only the running Keras backend's framework:
`StepSizeMonitor` is that backend's monitor class (`backends`).
"""

__all__ = ["StepSizeCallback", "StepSizeMonitor", "MonitorError", "FindingWarning", "RunData", "load", "load_runs"]
__version__ = "0.1.0"

_HOMES = {
    "StepSizeCallback": "callback",
    "MonitorError": "monitor_base",
    "FindingWarning": "live_findings",
    "RunData": "reader",
    "load": "reader",
    "load_runs": "reader",
}


def __getattr__(name):
    if name == "StepSizeMonitor":
        from tb_stepsize import backends

        return backends.monitor_class()
    if name not in _HOMES:
        raise AttributeError(f"module 'tb_stepsize' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"tb_stepsize.{_HOMES[name]}"), name)


def __dir__():
    return sorted(list(globals()) + __all__)

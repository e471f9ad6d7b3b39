"""Which monitor records on the running Keras backend.

Each backend's monitor lives in its own module, imported only when that
backend runs, so that `import tb_stepsize; tb_stepsize.StepSizeCallback`
needs neither TensorFlow on JAX or torch nor JAX or torch on TensorFlow.
On any other backend the backend-neutral `BackendMonitor` refuses at attach
time with one clear message (`keras_internals.attach_problem`), and
training goes on unmonitored.
"""

import importlib

import keras

MONITORS = {
    "tensorflow": ("monitor", "StepSizeMonitor"),
    "jax": ("keras_jax", "JaxMonitor"),
    "torch": ("keras_torch", "TorchMonitor"),
}


def monitor_class():
    """The monitor class for `keras.backend.backend()` (Keras reads the backend once per process)."""
    home, name = MONITORS.get(keras.backend.backend(), ("backend_monitor", "BackendMonitor"))
    return getattr(importlib.import_module(f"tb_stepsize.{home}"), name)

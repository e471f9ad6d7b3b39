"""The only place that touches private names of TensorFlow and of Keras'
TensorFlow backend.

Read in TensorFlow 2.19.1 and 2.21.0 and Keras 3.12.0 and 3.15.1 (the same
code in each).  The monitor's graph code needs two things TensorFlow does not
export: a conditional that stays one op however many tensors its branch
captures, and a way to make a plain (not mirrored) variable inside a
strategy's scope.  Keras' private names that any backend has are in
`keras_internals`.
"""

import contextlib

import tensorflow as tf

try:
    # tensorflow/python/ops/cond_v2.py (TF 2.19-2.21): the N-way conditional
    # behind `tf.switch_case`, whose public wrapper always lowers it.
    from tensorflow.python.ops.cond_v2 import indexed_case

    # tensorflow/python/distribute/numpy_dataset.py (TF 2.19-2.21): what TF's
    # own numpy datasets pass as `colocate_with` for a variable on one device.
    from tensorflow.python.distribute.numpy_dataset import SingleDevice

    _IMPORT_ERROR = None
except ImportError as e:  # moved in a later TensorFlow: `attach_problem` says so
    _IMPORT_ERROR = e


def attach_problem():
    """Why the monitor cannot run on this TensorFlow, or None (checked before it creates anything)."""
    if _IMPORT_ERROR is not None:
        return f"TensorFlow {tf.__version__}: {_IMPORT_ERROR} (tb_stepsize is tested with TensorFlow 2.19 to 2.21)"
    return None


def strategy_of(optimizer):
    """The strategy `optimizer` was created under: the TensorFlow backend's
    optimizer keeps it as `_distribution_strategy` (keras/src/backend/
    tensorflow/optimizer.py `TFOptimizer.__init__`)."""
    return getattr(optimizer, "_distribution_strategy", None) or tf.distribute.get_strategy()


def run_if(pred, fn):
    """Run `fn` (stateful, no result) in the graph only where `pred` is true.

    `tf.cond` is lowered to a Switch op per tensor the branch captures
    (thousands when `fn` reads every variable and slot), each run at every
    step; an unlowered `indexed_case` stays one function-call op whose
    skipped call only passes its inputs on (~0.4 µs per captured tensor on
    CPU against ~1.2 µs).
    """

    if tf.executing_eagerly():  # an eager `optimizer.apply` (a custom loop without tf.function)
        if bool(pred):
            fn()
        return

    def run():
        fn()
        return tf.constant(0)

    indexed_case(tf.cast(pred, tf.int32), [lambda: tf.constant(0), run], lower_using_switch_merge=False)


def plain_variables_on(device):
    """A context in which new variables are plain ones on `device` (a no-op for None).

    Inside a strategy's scope a `SingleDevice` passed as `colocate_with` is how
    TensorFlow itself makes a non-mirrored variable (its numpy datasets do).
    """
    stack = contextlib.ExitStack()
    if device is not None:
        name = device.to_string()
        stack.enter_context(tf.device(name))
        if tf.distribute.has_strategy():
            stack.enter_context(
                tf.variable_creator_scope(lambda create, **kw: create(colocate_with=SingleDevice(name), **kw))
            )
    return stack

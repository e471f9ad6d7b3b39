"""`reduction`'s compiled kernels are shared by every callback of the process.

A second `fit` with a new callback on a model of the same shapes (a re-run
notebook cell, the next run of a sweep) must reuse the traced -- and so the
XLA-compiled -- kernels, and still record its own run exactly.
"""

import keras
import numpy as np

import tb_stepsize
from tb_stepsize import optimizer_rules, reduction

X = np.random.default_rng(0).standard_normal((64, 320)).astype("float32")
Y = np.random.default_rng(1).standard_normal((64, 4)).astype("float32")


def _model():
    # 320 x 320 = 102,400 elements: a large variable (chunked), the rest small.
    return keras.Sequential([keras.Input((320,)), keras.layers.Dense(320, name="wide"), keras.layers.Dense(4, name="out")], name="net")


def _fit(log_dir):
    keras.utils.set_random_seed(5)
    model = _model()
    model.compile(optimizer=keras.optimizers.AdamW(1e-3), loss="mse")
    model.fit(X, Y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[tb_stepsize.StepSizeCallback(str(log_dir))])
    return tb_stepsize.load(str(log_dir))


def _traces(kernel):
    return kernel.experimental_get_tracing_count()


def test_a_new_callback_on_the_same_shapes_reuses_the_compiled_kernels(tmp_path):
    first = _fit(tmp_path / "first")
    assert 320 * 320 > reduction.SMALL_MAX  # `wide` goes through the chunk kernel
    rule = optimizer_rules.rule_for(keras.optimizers.AdamW())
    chunk = reduction._chunk_kernel(rule, reduction.ELEMENT_METRICS)
    small = reduction._small_kernel(rule, reduction.ELEMENT_METRICS, reduction.SCALAR_METRICS)
    before = _traces(chunk), _traces(small)
    assert min(before) >= 1  # the first fit traced both kernels

    second = _fit(tmp_path / "second")
    assert (_traces(chunk), _traces(small)) == before  # nothing traced again, so nothing compiled again
    assert second.layers == first.layers and list(second.steps) == list(first.steps) == [1, 2, 3, 4]
    for metric in first.metrics:  # the same seed: the same run, recorded by the shared kernels
        np.testing.assert_array_equal(second.values[metric], first.values[metric], err_msg=metric)

"""`reduction`'s compiled kernels are shared by every callback of the process.

A second `fit` with a new callback on a model of the same shapes (a re-run
notebook cell, the next run of a sweep) must reuse the traced -- and so the
XLA-compiled -- kernels, and still record its own run exactly.
"""

import keras
import pytest
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


@pytest.mark.parametrize("n", [884_736, 8192 * 8192, 589_824, 16_384_000, 262_145, 786_433, 100_000, 7])
def test_chunk_length_splits_evenly_where_it_can(n):
    limit = reduction.CHUNK
    length = reduction.chunk_length(n, limit)
    assert length <= limit and (n <= limit) == (length == n)
    if n % length:  # a tail only when no divisor in [limit / 2, limit] exists
        assert length == limit
        assert all(n % parts for parts in range(-(-n // limit), 2 * -(-n // limit) + 1))
    elif n > limit:
        assert length >= limit // 2


def test_the_cnn_dense_kernel_is_one_chunk_shape():
    # 3,456 x 256 (the ~1M CNN of bench_overhead): 4 chunks of 221,184, no tail to compile separately.
    assert reduction.chunk_length(3456 * 256, reduction.CHUNK) == 221_184

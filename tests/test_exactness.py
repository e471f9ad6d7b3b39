"""Every recorded number against an independent numpy recomputation.

A custom training loop calls `optimizer.apply`, as users of the monitor API
do; the test snapshots weights, gradients and slots around each update and
recomputes every statistic with `reference` (through `exactness_helpers`,
which `backend_cases` shares on the JAX and torch backends).
"""

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

import exactness_helpers  # noqa: E402
import tb_stepsize  # noqa: E402

OPTIMIZERS = exactness_helpers.OPTIMIZERS
CASES = [(o, "float32") for o in OPTIMIZERS] + [(o, "mixed_float16") for o in OPTIMIZERS if o != "adam_schedule"] + [
    ("adam", "bfloat16"),
    ("sgd_momentum", "bfloat16"),
    ("adamw", "float32-chunked"),
    ("nadam", "float32-chunked"),
    ("adamw", "float32-tail"),
]


def _train(tmp_path, optimizer_name, dtype):
    """A `tf.function` custom loop calling `optimizer.apply` (`exactness_helpers.custom_loop_step`)."""
    return exactness_helpers.train_custom(tmp_path, optimizer_name, dtype)


@pytest.mark.parametrize("optimizer_name,dtype", CASES, ids=[f"{o}-{d}" for o, d in CASES])
def test_every_statistic_matches_numpy(tmp_path, monkeypatch, optimizer_name, dtype):
    if dtype.startswith("float32-"):
        # Every variable takes the large-variable path, in chunks of at most 100
        # elements: `chunked` in equal ones (512 = 8 x 64, 128 = 2 x 64, 32 in
        # one), `tail` in 100 and a shorter tail (512 = 5 x 100 + 12, 128 = 100 + 28).
        from tb_stepsize import reduction

        monkeypatch.setattr(reduction, "SMALL_MAX", 16)
        monkeypatch.setattr(reduction, "CHUNK", 100)
        if dtype == "float32-tail":
            monkeypatch.setattr(reduction, "chunk_length", lambda n, limit: min(n, limit))
        dtype = "float32"
    model, inner, records, config = _train(tmp_path, optimizer_name, dtype)
    run = tb_stepsize.load(str(tmp_path))
    exactness_helpers.check_run(run, model.trainable_variables, inner, records, config, optimizer_name, dtype)


def test_bfloat16_loses_small_updates_and_says_so(tmp_path):
    """In bfloat16, Adam's ~1e-2-relative-or-smaller steps round away for large weights."""
    model, inner, records, config = _train(tmp_path, "adam", "bfloat16")
    run = tb_stepsize.load(str(tmp_path))
    lost = run.matrix("lost_fraction", "value")
    assert np.nanmax(lost) > 0, "bfloat16 weights should lose some updates to rounding"
    zero = run.matrix("step", "zero_fraction")
    np.testing.assert_array_less(lost - 1e-12, zero + 1e-12)  # lost updates are zero steps

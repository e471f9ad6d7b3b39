"""`stats_kernel`, the framework-neutral statistics, on every adapter against numpy.

The same edge cases as the TensorFlow kernel's tests (`stats_checks.CASES`),
one segment and segmented, on numpy, torch (eager) and JAX (jitted); and the
claim the backends rest on: histograms, extremes and quantiles are
bit-identical across adapters (and to TensorFlow's `device_stats`), so a
run looks the same whichever framework trained it.  Mean and rms may differ
in the last bits (float64 sums on the host and in torch, blockwise float32
in JAX and in TensorFlow's segmented path).
"""

import numpy as np
import pytest

from stats_checks import CASES, NAMES, RNG, check
from tb_stepsize import metadata, ops_numpy, stats_kernel


def _numpy():
    return ops_numpy.OPS, lambda x: np.asarray(x), lambda a: np.asarray(a), False


def _torch():
    torch = pytest.importorskip("torch")
    from tb_stepsize import ops_torch

    return ops_torch.OPS, torch.as_tensor, lambda a: a.cpu().numpy(), False


def _jax():
    jax = pytest.importorskip("jax")
    from tb_stepsize import ops_jax

    return ops_jax.OPS, jax.numpy.asarray, np.asarray, True


ADAPTERS = {"numpy": _numpy, "torch": _torch, "jax": _jax}


def run(adapter, x, sizes=None):
    """`(stats, hist)` as numpy from `adapter` (JAX under `jax.jit`, as inside a train step)."""
    ops, array, back, jitted = ADAPTERS[adapter]()
    segments = 1 if sizes is None else len(sizes)
    ids = None if sizes is None else np.repeat(np.arange(segments), sizes).astype(np.int32)

    def fn(x, ids):
        return stats_kernel.elementwise_stats(ops, x, ids, segments)

    if jitted:
        import jax

        fn = jax.jit(fn)
    stats, hist = fn(array(np.asarray(x, np.float32)), None if ids is None else array(ids))
    return back(stats), back(hist)


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_edge_cases_one_segment_and_between_neighbours(adapter, case):
    x = CASES[case]
    flushes = adapter == "jax"  # XLA's CPU kernels treat subnormal inputs as zero
    stats, hist = run(adapter, x)
    check(x, stats[0], hist[0], 1, f"{adapter} {case}", flushes_subnormals=flushes)
    neighbours = RNG.standard_normal(13).astype(np.float32)
    stats, hist = run(adapter, np.concatenate([neighbours, x, neighbours * 1e6]), [13, len(x), 13])
    check(x, stats[1], hist[1], len(x), f"{adapter} {case} segmented", flushes_subnormals=flushes)
    check(neighbours, stats[0], hist[0], 13, f"{adapter} {case} neighbour")
    check(neighbours * 1e6, stats[2], hist[2], 13, f"{adapter} {case} neighbour")


def _heavy_tailed(n, seed):
    rng = np.random.default_rng(seed)
    x = (rng.lognormal(-8, 3, n) * rng.choice([-1, 1], n)).astype(np.float32)
    x[: n // 100] = 0
    x[7], x[8] = np.inf, np.nan
    return x


EXACT = [NAMES.index(n) for n in NAMES if n not in ("mean", "rms")]


@pytest.mark.parametrize("adapter", ["torch", "jax"])
def test_adapters_agree_bit_for_bit_on_everything_but_sums(adapter):
    x = _heavy_tailed(70_000, 1)
    sizes = [1, 7, 999, 68_993]
    for segmenting in (None, sizes):
        want_stats, want_hist = run("numpy", x, segmenting)
        stats, hist = run(adapter, x, segmenting)
        np.testing.assert_array_equal(hist, want_hist)
        np.testing.assert_array_equal(stats[:, EXACT], want_stats[:, EXACT])
        np.testing.assert_allclose(stats, want_stats, rtol=1e-4)


def test_same_numbers_as_the_tensorflow_kernel():
    tf = pytest.importorskip("tensorflow")
    from tb_stepsize import device_stats

    x = _heavy_tailed(70_000, 2)
    sizes = [1, 7, 999, 68_993]
    ids = np.repeat(np.arange(4), sizes).astype(np.int32)
    for want, got in (
        (device_stats.elementwise_stats(tf.constant(x)), run("numpy", x)),
        (device_stats.elementwise_stats(tf.constant(x), tf.constant(ids), 4), run("numpy", x, sizes)),
    ):
        np.testing.assert_array_equal(got[1], want[1].numpy())
        np.testing.assert_array_equal(got[0][:, EXACT], want[0].numpy()[:, EXACT])


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_chunks_merge_to_the_whole(adapter):
    """Partials of chunks merged, targets from the merge, fine counts summed: the
    same extremes, quantiles and histogram as one pass (how big variables and
    shards are reduced)."""
    ops, array, back, _ = ADAPTERS[adapter]()
    x = _heavy_tailed(10_000, 3)
    pieces = [array(x[i : i + 3000]) for i in range(0, x.size, 3000)]
    partials = stats_kernel.Partials.empty(ops, 1)
    for piece in pieces:
        partials = partials.merge(stats_kernel.Partials.of(ops, piece), ops)
    targets = stats_kernel.QuantileTargets(ops, partials)
    fine = sum(stats_kernel.fine_counts(ops, piece, targets) for piece in pieces)
    merged = back(stats_kernel.finish(ops, partials, targets, fine))
    whole_stats, whole_hist = run("numpy", x)
    np.testing.assert_array_equal(back(partials.hist), whole_hist)
    np.testing.assert_array_equal(merged[:, EXACT], whole_stats[:, EXACT])
    np.testing.assert_allclose(merged, whole_stats, rtol=1e-5)


def test_nonfinite_bins_inf_then_nan_whatever_the_payload():
    x = np.array([np.inf, -np.inf, np.nan], np.float32)
    x = np.concatenate([x, np.array([0x7F800001, 0x7FBFFFFF], np.uint32).view(np.float32)])  # NaNs, small payloads
    _, hist = run("numpy", x)
    assert hist[0, metadata.HIST_FINITE_BINS + 1] == 2 and hist[0, metadata.HIST_FINITE_BINS + 2] == 3

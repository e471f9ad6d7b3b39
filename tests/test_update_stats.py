"""`update_stats`: the metrics of one update, on every adapter, against numpy.

A made-up update (old and new weights with some elements unchanged, an
optimizer formula's parts, decoupled weight decay) is reduced in one go,
segmented (small variables together) and chunk by chunk; each metric is
compared with its definition computed here in float64 numpy.
"""

import numpy as np
import pytest

from stats_checks import check
from test_stats_kernel import ADAPTERS
from tb_stepsize import update_stats

RNG = np.random.default_rng(5)
F32 = np.float32


def made_up_update(n, seed):
    rng = np.random.default_rng(seed)
    old = rng.standard_normal(n).astype(F32)
    parts = {
        "effective_lr": (10.0 ** rng.uniform(-5, -2, n)).astype(F32),
        "update": (rng.standard_normal(n) * 1e-3).astype(F32),
        "normalized_grad": rng.standard_normal(n).astype(F32),
    }
    decay = F32(1e-4)
    new = (old - (parts["update"] + old * decay)).astype(F32)
    new[: n // 10] = old[: n // 10]  # rounded away
    parts["update"][:5] = 0  # and a few with nothing intended
    return old, new, parts, decay


def expected(old, new, parts, decay):
    o, w = old.astype(np.float64), new.astype(np.float64)
    intended = parts["update"] + old * decay
    delta = old - new
    return {
        "step": np.abs(delta),
        "effective_lr": parts["effective_lr"],
        "intended_step": np.abs(intended),
        "update_ratio": np.sqrt(np.sum((o - w) ** 2) / np.sum(o**2)),
        "lost_fraction": np.mean((intended != 0) & (delta == 0)),
        "second_moment_rms": np.sqrt(np.mean(parts["normalized_grad"].astype(np.float64) ** 2)),
    }


def check_row(got, row, want, terms, what):
    stats, hists, scalars = got
    for m in update_stats.ELEMENT_METRICS:
        check(want[m], stats[m][row], hists[m][row], terms, f"{what} {m}", flushes_subnormals=False)
    for m in update_stats.SCALAR_METRICS:
        np.testing.assert_allclose(scalars[m][row], want[m], rtol=1e-5, err_msg=f"{what} {m}")


def to_numpy(back, result):
    return tuple({m: back(v) for m, v in part.items()} for part in result)


@pytest.mark.parametrize("adapter", list(ADAPTERS))
def test_one_variable_segmented_and_chunked(adapter):
    ops, array, back, _ = ADAPTERS[adapter]()
    old, new, parts, decay = made_up_update(5000, 1)
    want = expected(old, new, parts, decay)
    arrays = {k: array(v) for k, v in parts.items()}
    got = to_numpy(back, update_stats.reduce_update(ops, array(old), array(new), arrays, decay))
    check_row(got, 0, want, 1, f"{adapter} whole")

    def piece(start, size):
        cut = slice(start, start + size)
        return array(old[cut]), array(new[cut]), {k: array(v[cut]) for k, v in parts.items()}, decay

    got = to_numpy(back, update_stats.reduce_chunked(ops, old.size, piece, 1024))
    check_row(got, 0, want, 5, f"{adapter} chunked")

    sizes = [3, 4000, 997]
    small = [made_up_update(n, 10 + i) for i, n in enumerate(sizes)]
    joined = [np.concatenate([s[k] for s in small]) for k in range(2)]
    joined_parts = {k: array(np.concatenate([s[2][k] for s in small])) for k in parts}
    ids = array(np.repeat(np.arange(3), sizes).astype(np.int32))
    got = to_numpy(
        back,
        update_stats.reduce_update(
            ops, array(joined[0]), array(joined[1]), joined_parts, decay, ids, 3, array(np.asarray(sizes, F32))
        ),
    )
    for row, variable in enumerate(small):
        check_row(got, row, expected(*variable), sizes[row], f"{adapter} segment {row}")


def test_without_a_formula_only_step_and_update_ratio():
    ops, array, back, _ = ADAPTERS["numpy"]()
    old, new, _, _ = made_up_update(100, 2)
    stats, hists, scalars = update_stats.reduce_update(ops, old, new)
    assert set(stats) == set(hists) == {"step"} and set(scalars) == {"update_ratio"}
    assert update_stats.available(False) == ("step", "update_ratio")


def test_update_ratio_of_all_zero_weights_is_nan_and_wanted_drops_the_rest():
    ops = ADAPTERS["numpy"]()[0]
    zeros = np.zeros(10, F32)
    stats, _, scalars = update_stats.reduce_update(ops, zeros, zeros - F32(1), wanted=("step", "update_ratio"))
    assert np.isnan(scalars["update_ratio"][0]) and set(stats) == {"step"}

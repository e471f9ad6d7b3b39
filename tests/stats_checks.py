"""Checks of one row of elementwise statistics against numpy, shared by the tests of
every implementation (`test_device_stats` for TensorFlow, `test_stats_kernel` for the
framework-neutral kernel on numpy, torch and JAX).  The tolerances are explained in
`test_device_stats`' docstring."""

import numpy as np

from tb_stepsize import metadata

U = 2.0**-24  # float32 unit roundoff
NAMES = metadata.ELEMENT_STATS[:-2]
QUANTILES = dict(metadata.QUANTILES)
SUBNORMAL_SUB_BIN = 2.0**-132


def check(values, stats, hist, sum_terms, what, flushes_subnormals=True):
    """Assert one row of statistics against numpy (see `test_device_stats` for the tolerances);
    `flushes_subnormals`: the arithmetic treats subnormal inputs as zero (TensorFlow's and XLA's CPU kernels)."""
    values = np.abs(np.asarray(values, np.float32).astype(np.float64))
    finite = np.sort(values[np.isfinite(values)])
    got = dict(zip(NAMES, stats.astype(np.float64)))
    assert hist[metadata.HIST_FINITE_BINS + 1 :].sum() == values.size - finite.size, what
    assert hist[0] == np.count_nonzero(values == 0), what
    assert hist.sum() == values.size, what
    n = finite.size
    if n == 0:
        assert np.isnan(stats).all(), what
        return
    assert got["min"] == finite[0] and got["max"] == finite[-1], what
    rtol = (sum_terms + 4) * U
    flushed = np.where(finite < 2.0**-126, 0.0, finite) if flushes_subnormals else finite
    mean, rms = flushed.mean(), np.sqrt(np.mean(flushed**2))
    np.testing.assert_allclose(got["mean"], mean, rtol=rtol, atol=0, err_msg=f"{what} mean")
    if 1.1e-19 <= finite[finite > 0].min(initial=1.0) and finite[-1] <= 1.8e19:
        np.testing.assert_allclose(got["rms"], rms, rtol=rtol, atol=0, err_msg=f"{what} rms")
    for name, q in QUANTILES.items():
        lo, hi = finite[int(np.floor(q * (n - 1)))], finite[int(np.ceil(q * (n - 1)))]
        slack = SUBNORMAL_SUB_BIN if lo < 2.0**-126 else 0.0
        width = hi - lo
        low = 0.0 if slack else lo - 0.01 * max(width, lo)  # a subnormal mid-point may be flushed to 0
        assert low <= got[name] <= hi + 0.01 * max(width, hi) + slack, (
            f"{what} {name}: {got[name]} not in [{lo}, {hi}]"
        )
        if not slack:
            np.testing.assert_allclose(got[name], np.quantile(finite, q), rtol=0.008, err_msg=f"{what} {name}")


RNG = np.random.default_rng(0)
CASES = {
    "all_zeros": np.zeros(100, np.float32),
    "one_element": np.array([-3.25], np.float32),
    "one_zero": np.array([0.0], np.float32),
    "subnormals": np.float32(2.0**-149) * RNG.integers(1, 1 << 23, 500).astype(np.float32),
    "smallest_subnormal": np.full(7, 2.0**-149, np.float32),
    "nan_inf_mix": np.array([np.nan, 1.0, -np.inf, 0.0, 2.0, np.inf, -4.0, np.nan], np.float32),
    "all_nonfinite": np.array([np.nan, np.inf, -np.inf], np.float32),
    "1e-30_to_1e30": (10.0 ** RNG.uniform(-30, 30, 2000) * RNG.choice([-1, 1], 2000)).astype(np.float32),
    "float32_extremes": np.array([np.finfo(np.float32).max, np.finfo(np.float32).tiny, 1.0, -1.0], np.float32),
    "normal": RNG.standard_normal(3000).astype(np.float32),
    "ties": np.repeat(np.float32([1e-3, 2e-3, 5e-3]), [10, 1, 30]),
}



"""Independent numpy recomputation of what tb_stepsize records.

Written from the optimizers' published formulas (Keras 3 variants), not from
the package's code, so a test comparing the two checks both.
"""

import numpy as np

QUANTILES = {"p01": 0.01, "p05": 0.05, "p25": 0.25, "p50": 0.5, "p75": 0.75, "p95": 0.95, "p99": 0.99}
F32 = np.float32


def adam_parts(opt, t, lr, m, v, g):
    """effective_lr, update, normalized gradient for Adam/AdamW/AMSGrad."""
    b1p = F32(opt["beta_1"]) ** F32(t)
    b2p = F32(opt["beta_2"]) ** F32(t)
    alpha = F32(lr) * np.sqrt(F32(1) - b2p) / (F32(1) - b1p)
    denom = np.sqrt(v) + F32(opt["epsilon"])
    vhat = v / (F32(1) - b2p)
    return alpha / denom, (m * alpha) / denom, _ratio(g, vhat)


def nadam_parts(opt, t, lr, m, v, g, u_product):
    b1, b2 = F32(opt["beta_1"]), F32(opt["beta_2"])
    u_t = b1 * (F32(1) - F32(0.5) * F32(0.96) ** F32(t))
    u_t1 = b1 * (F32(1) - F32(0.5) * F32(0.96) ** F32(t + 1))
    m_hat = (u_t1 * m) / (F32(1) - F32(u_product) * u_t1) + ((F32(1) - u_t) * g) / (F32(1) - F32(u_product))
    vhat = v / (F32(1) - b2 ** F32(t))
    denom = np.sqrt(vhat) + F32(opt["epsilon"])
    return F32(lr) / denom, (m_hat * F32(lr)) / denom, _ratio(g, vhat)


def adamax_parts(opt, t, lr, m, u, g):
    denom = (F32(1) - F32(opt["beta_1"]) ** F32(t)) * (u + F32(opt["epsilon"]))
    return F32(lr) / denom, (F32(lr) * m) / denom, _ratio(g, u * u)


def _ratio(g, denom_sq):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denom_sq > 0, g / np.sqrt(denom_sq), F32(0)).astype(F32)


def rms(x):
    x = np.asarray(x, np.float64)
    return float(np.sqrt(np.mean(x * x)))


def histogram_bin(x):
    """Half-octave bin of each |x| (0 = exact zero), by logarithms."""
    x = np.abs(np.asarray(x, np.float64))
    with np.errstate(divide="ignore"):
        b = np.floor(2 * np.log2(x)) + 255
    return np.where(x == 0, 0, b).astype(np.int64)


def check_stats(values, row, names, what, slack=None):
    """Assert a recorded stats row matches numpy on `values` (magnitudes).

    `slack` (optional, per element, >= 0): each recorded element may differ
    from its reference value by that much (XLA's float32 arithmetic: see
    `xla_slack`); the extremes and order statistics then lie within the
    bounds of `values -/+ slack`.
    """
    values = np.asarray(values, np.float64).ravel()
    finite_mask = np.isfinite(values)
    finite = np.sort(values[finite_mask])
    got = dict(zip(names, row))
    n = finite.size
    assert got["nonfinite"] == values.size - n, what
    assert got["zero_fraction"] == np.count_nonzero(values == 0) / values.size, what
    if n == 0:
        return
    if slack is None:
        np.testing.assert_allclose(got["min"], finite[0], rtol=1e-6, err_msg=what)
        np.testing.assert_allclose(got["max"], finite[-1], rtol=1e-6, err_msg=what)
        np.testing.assert_allclose(got["mean"], finite.mean(), rtol=2e-5, err_msg=what)
        np.testing.assert_allclose(got["rms"], np.sqrt(np.mean(finite**2)), rtol=2e-5, err_msg=what)
        low, high = finite, finite
        atol = 0.0
    else:
        s = np.broadcast_to(np.asarray(slack, np.float64).ravel(), values.shape)[finite_mask]
        v = values[finite_mask]
        low, high = np.sort(np.maximum(v - s, 0)), np.sort(v + s)
        atol = float(s.max())
        for name, lo, hi in (("min", low[0], high[0]), ("max", low[-1], high[-1])):
            assert lo * (1 - 1e-6) <= got[name] <= hi * (1 + 1e-6), f"{what} {name}: {got[name]} not in [{lo}, {hi}]"
        np.testing.assert_allclose(got["mean"], finite.mean(), rtol=2e-5, atol=float(s.mean()), err_msg=what)
        np.testing.assert_allclose(got["rms"], np.sqrt(np.mean(finite**2)), rtol=2e-5, atol=float(np.sqrt(np.mean(s**2))) * 2, err_msg=what)
    for name, q in QUANTILES.items():
        lo = low[int(np.floor(q * (n - 1)))]
        hi = high[int(np.ceil(q * (n - 1)))]
        assert lo * 0.99 <= got[name] <= hi * 1.01, f"{what} {name}: {got[name]} not in [{lo}, {hi}]"
        np.testing.assert_allclose(got[name], np.quantile(finite, q), rtol=0.008, atol=atol, err_msg=f"{what} {name}")


def xla_slack(*terms):
    """Per-element bound on how far XLA's float32 evaluation (JAX on CPU) of a
    formula may be from numpy's: 8 ulp of the sum of the magnitudes of its
    terms.  XLA contracts a multiply and an add into one FMA and divides by a
    scalar as a multiply by its reciprocal, each a rounding or two away from
    numpy's order of operations; at a cancellation (a step and its weight
    decay of opposite sign) that is many ulp of the result, but not of the terms.
    """
    return sum(np.abs(np.asarray(t, np.float64)) for t in terms) * 2.0**-20


def check_histogram(values, bins, what):
    """Assert `[k, 3]` rows count |values| in half-octave bins."""
    values = np.abs(np.asarray(values, np.float64).ravel())
    values = values[np.isfinite(values)]
    bins = np.asarray(bins)
    assert bins[0, 0] == 0 and bins[0, 1] == 0 and bins[0, 2] == np.count_nonzero(values == 0), what
    np.testing.assert_allclose(bins[1:, 1] / bins[1:, 0], np.sqrt(2), rtol=1e-12, err_msg=what)
    expected = np.bincount(histogram_bin(values), minlength=600)
    got = np.zeros(600)
    first = int(round(2 * np.log2(bins[1, 0]))) + 255 if len(bins) > 1 else 1
    got[first : first + len(bins) - 1] = bins[1:, 2]
    got[0] = bins[0, 2]
    # Values within float32 rounding of a bin edge may fall on either side.
    log2 = 2 * np.log2(values[values > 0])
    near_edge = np.count_nonzero(np.abs(log2 - np.round(log2)) < 1e-6)
    assert np.abs(got - expected).sum() <= 2 * near_edge, what
    assert got.sum() == values.size, what

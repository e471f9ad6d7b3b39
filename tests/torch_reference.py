"""Independent numpy recomputation of torch.optim's Adam family, from PyTorch's documentation.

Written from the algorithm boxes of torch.optim.Adam / AdamW / NAdam /
Adamax / RAdam (pytorch.org/docs), in float64, not from the package's code:
a test comparing the two checks both.  Each function takes the optimizer's
hyper-parameters (`hp`, a param group), t (the step count after the
update), the state after the update as numpy arrays and the raw gradient,
and returns `(effective_lr, update, normalized_grad, decay)` where the
weight moves by −(update + decay·w_old).
"""

import numpy as np

F64 = np.float64


def _grad(hp, g, old, decoupled):
    g = -g if hp.get("maximize") else g
    if hp["weight_decay"] and not decoupled:
        g = g + hp["weight_decay"] * old
    return g


def _norm(g, v_hat):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(v_hat > 0, g / np.sqrt(v_hat), 0.0)


def adam(hp, t, lr, s, g, old):
    decoupled = hp.get("decoupled_weight_decay", False)
    g = _grad(hp, g, old, decoupled)
    b1, b2 = (F64(b) for b in hp["betas"])
    v = s["max_exp_avg_sq"] if hp["amsgrad"] else s["exp_avg_sq"]
    v_hat = v / (1 - b2**t)
    eff = lr / (1 - b1**t) / (np.sqrt(v_hat) + hp["eps"])
    return eff, s["exp_avg"] * eff, _norm(g, v_hat), (lr * hp["weight_decay"] if decoupled else 0.0)


def nadam(hp, t, lr, s, g, old):
    decoupled = hp["decoupled_weight_decay"]
    g = _grad(hp, g, old, decoupled)
    b1, b2 = (F64(b) for b in hp["betas"])
    mu = lambda k: b1 * (1 - 0.5 * 0.96 ** (k * hp["momentum_decay"]))  # noqa: E731
    prod = F64(s["mu_product"])  # mu_1 ... mu_t
    v_hat = s["exp_avg_sq"] / (1 - b2**t)
    denom = np.sqrt(v_hat) + hp["eps"]
    m_hat = mu(t + 1) * s["exp_avg"] / (1 - prod * mu(t + 1)) + (1 - mu(t)) * g / (1 - prod)
    return lr / denom, lr * m_hat / denom, _norm(g, v_hat), (lr * hp["weight_decay"] if decoupled else 0.0)


def adamax(hp, t, lr, s, g, old):
    g = _grad(hp, g, old, False)
    b1 = F64(hp["betas"][0])
    u = s["exp_inf"]
    eff = lr / ((1 - b1**t) * u)
    return eff, s["exp_avg"] * eff, g / u, 0.0


def radam(hp, t, lr, s, g, old):
    decoupled = hp["decoupled_weight_decay"]
    g = _grad(hp, g, old, decoupled)
    b1, b2 = (F64(b) for b in hp["betas"])
    rho_inf = 2 / (1 - b2) - 1
    rho = rho_inf - 2 * t * b2**t / (1 - b2**t)
    v = s["exp_avg_sq"]
    if rho > 5:
        r = np.sqrt((rho - 4) * (rho - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho))
        eff = lr * r * np.sqrt(1 - b2**t) / ((1 - b1**t) * (np.sqrt(v) + hp["eps"]))
    else:
        eff = np.full_like(v, lr / (1 - b1**t))
    return eff, s["exp_avg"] * eff, _norm(g, v / (1 - b2**t)), (lr * hp["weight_decay"] if decoupled else 0.0)


FORMULAS = {"Adam": adam, "AdamW": adam, "NAdam": nadam, "Adamax": adamax, "RAdam": radam}


def expected(kind, hp, t, lr, state, grad, old, new):
    """Every metric of one parameter's update: elementwise magnitudes or per-layer values."""
    old64 = old.astype(F64)
    step = np.abs((old.astype(np.float32) - new.astype(np.float32)).astype(F64))
    rms = lambda x: float(np.sqrt(np.mean(np.square(x, dtype=F64))))  # noqa: E731
    out = {"step": step, "update_ratio": rms(step) / rms(old64) if rms(old64) > 0 else np.nan}
    if kind not in FORMULAS:
        return out
    s = {k: (np.asarray(v, F64) if not np.isscalar(v) else F64(v)) for k, v in state.items()}
    eff, update, norm, decay = FORMULAS[kind](hp, F64(t), F64(lr), s, grad.astype(F64), old64)
    intended = np.abs(update + decay * old64)
    out.update(
        effective_lr=np.abs(eff),
        intended_step=intended,
        lost_fraction=np.count_nonzero((intended != 0) & (step == 0)) / intended.size,
        second_moment_rms=rms(norm),
    )
    return out

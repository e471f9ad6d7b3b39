"""What a `torch.optim` Adam-family optimizer intended at an update, from its state.

The monitor reads, after `optimizer.step()`, the optimizer's state (already
updated for step t) and the gradient, and recomputes in float32 the three
terms `update_stats.update_terms` needs: `effective_lr` (the per-element
learning rate), `update` (what the optimizer subtracts from the weight,
before rounding into the weight's dtype) and `normalized_grad`
(g_t / sqrt(v̂_t), for `second_moment_rms`), plus the decoupled weight-decay
factor `decay` (the weight loses decay·w_{t-1} as well).

The formulas follow PyTorch's own (torch/optim/*.py, single-tensor code;
the foreach, fused and capturable implementations compute the same
numbers).  t is `state["step"]` after the update, lr and the betas are the
parameter group's at the step (so LR schedulers and per-group settings are
honoured), bc1 = 1 − β₁ᵗ, bc2 = 1 − β₂ᵗ, and g is the gradient the
optimizer used: −grad with `maximize`, plus weight_decay·w_{t−1} when the
weight decay is L2 (not decoupled):

* **Adam, AdamW** (`decoupled_weight_decay`: AdamW; decay = lr·wd):
  denom = √v_t / √bc2 + ε  (ε added *after* bias-correcting √v, unlike
  Keras); `effective_lr` = (lr / bc1) / denom; update = m_t·`effective_lr`.
  With `amsgrad`, v_t is `max_exp_avg_sq` (the running maximum).
* **NAdam**: μ_t = β₁(1 − ½·0.96^(t·ψ)), μ_{t+1} likewise (ψ =
  momentum_decay), Π_t = `mu_product` (∏ μ_i up to t);
  denom = √(v_t / bc2) + ε; `effective_lr` = lr / denom;
  update = [lr(1−μ_t)/(1−Π_t)·g + lr·μ_{t+1}/(1−Π_t·μ_{t+1})·m_t] / denom.
* **Adamax**: u_t = max(β₂·u_{t−1}, |g| + ε) (`exp_inf`; ε is inside);
  `effective_lr` = lr / (bc1·u_t); update = m_t·`effective_lr`;
  normalized_grad = g / u_t.
* **RAdam**: ρ_∞ = 2/(1−β₂) − 1, ρ_t = ρ_∞ − 2t·β₂ᵗ/bc2.  When ρ_t > 5
  (rectification on): r_t = √((ρ_t−4)(ρ_t−2)ρ_∞ / ((ρ_∞−4)(ρ_∞−2)ρ_t)),
  `effective_lr` = lr·r_t·√bc2 / (bc1·(√v_t + ε)).  When ρ_t ≤ 5 (the
  first steps; t ≤ 5 for β₂ = 0.999) RAdam takes an un-adapted momentum
  step, and `effective_lr` = lr / bc1, the same for every element.
  update = m_t·`effective_lr`.

normalized_grad = g / √(v_t / bc2) for Adam, AdamW, NAdam and RAdam (0
where v_t = 0).  Only these exact classes get a rule: a subclass may change
the update, and the formulas would then be wrong (it records `step` and
`update_ratio` only).
"""

import torch

_NAMES = ("Adam", "AdamW", "NAdam", "Adamax", "RAdam")


def _value(x, capturable):
    """A step or a rate as the optimizer used it: a host float unless it is a
    device tensor (capturable, fused, a tensor lr), kept there (no sync)."""
    if torch.is_tensor(x) and (capturable or x.device.type != "cpu"):
        return x.to(torch.float32)
    return float(x)


def _safe_ratio(g, v_hat):
    return torch.where(v_hat > 0, g / torch.sqrt(v_hat), torch.zeros_like(g))


def _adam(group, state, t, lr, get):
    b1, b2 = group["betas"]
    bc1, bc2 = 1 - b1**t, 1 - b2**t
    v = get("max_exp_avg_sq" if group["amsgrad"] else "exp_avg_sq")
    denom = torch.sqrt(v) / bc2**0.5 + group["eps"]
    eff = (lr / bc1) / denom
    return eff, get("exp_avg") * eff, _safe_ratio(get("grad"), v / bc2)


def _nadam(group, state, t, lr, get):
    b1, b2 = group["betas"]
    psi = group["momentum_decay"]
    bc2 = 1 - b2**t
    mu = b1 * (1.0 - 0.5 * 0.96 ** (t * psi))
    mu_next = b1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))
    prod = _value(state["mu_product"], group["capturable"])
    v_hat = get("exp_avg_sq") / bc2
    denom = torch.sqrt(v_hat) + group["eps"]
    g = get("grad")
    update = (g * (lr * (1.0 - mu) / (1.0 - prod)) + get("exp_avg") * (lr * mu_next / (1.0 - prod * mu_next))) / denom
    return lr / denom, update, _safe_ratio(g, v_hat)


def _adamax(group, state, t, lr, get):
    b1, _ = group["betas"]
    u = get("exp_inf")
    eff = lr / ((1 - b1**t) * u)
    return eff, get("exp_avg") * eff, get("grad") / u


def _radam(group, state, t, lr, get):
    b1, b2 = group["betas"]
    bc1, bc2 = 1 - b1**t, 1 - b2**t
    rho_inf = 2 / (1 - b2) - 1
    rho_t = rho_inf - 2 * t * b2**t / bc2
    v, m = get("exp_avg_sq"), get("exp_avg")
    plain = torch.zeros_like(m) + lr / bc1  # rectification off: an un-adapted momentum step
    if torch.is_tensor(rho_t):  # capturable: both branches on the device, no host read of rho_t
        rect = (abs(rho_t - 4) * abs(rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * abs(rho_t))) ** 0.5
        eff = torch.where(rho_t > 5.0, lr * rect * bc2**0.5 / (bc1 * (torch.sqrt(v) + group["eps"])), plain)
    elif rho_t > 5.0:
        rect = ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5
        eff = lr * rect * bc2**0.5 / (bc1 * (torch.sqrt(v) + group["eps"]))
    else:
        eff = plain
    return eff, m * eff, _safe_ratio(get("grad"), v / bc2)


_RULES = {"Adam": _adam, "AdamW": _adam, "NAdam": _nadam, "Adamax": _adamax, "RAdam": _radam}


def rule_for(optimizer):
    """The formula of `optimizer`'s exact class (a `torch.optim` Adam-family class), or None."""
    cls = type(optimizer)
    if cls.__module__.startswith("torch.optim") and cls.__name__ in _RULES:
        return Rule(_RULES[cls.__name__], sums_terms=cls.__name__ == "NAdam")
    return None


def is_adam_family(optimizer):
    """True for an instance of (a subclass of) a `torch.optim` class with a rule."""
    return any(isinstance(optimizer, getattr(torch.optim, name)) for name in _NAMES)


class Rule:
    """The parts of one parameter's update from its group, state and gradient.

    `parts(group, state, get)` where `get(name)` returns a float32 flat slice
    of `"grad"`, `"old"` (the weight before the step) or a state tensor
    (`"exp_avg"`, ...), all of the same elements; returns
    `({"effective_lr", "update", "normalized_grad"}, decay)` with decay the
    decoupled weight-decay factor (None without one).  The parts are in the
    dtype `get` returns (see `needs_float64`).
    """

    def __init__(self, formula, sums_terms=False):
        self._formula = formula
        self._sums_terms = sums_terms

    def needs_float64(self, group):
        """True when the update is a sum of terms that can nearly cancel -- NAdam's gradient
        and momentum terms, or any update with decoupled weight decay folded in -- so that
        float32 parts would leave the small intended steps off by more than float32 rounding."""
        decays = bool(group.get("weight_decay")) and bool(group.get("decoupled_weight_decay"))
        return self._sums_terms or decays

    def parts(self, group, state, get):
        capturable = bool(group.get("capturable", False))
        t = _value(state["step"], capturable)
        lr = group["lr"]  # a tensor lr stays one: PyTorch then computes lr / bc1 in its dtype too
        lr = lr.detach() if torch.is_tensor(lr) else float(lr)
        wd = group.get("weight_decay", 0) or 0
        decoupled = bool(group.get("decoupled_weight_decay", False))

        def grad_used(name):
            if name != "grad":
                return get(name)
            g = get("grad")
            if group.get("maximize", False):
                g = -g
            if wd and not decoupled:
                g = g + wd * get("old")
            return g

        eff, update, normalized = self._formula(group, state, t, lr, grad_used)
        decay = lr * wd if wd and decoupled else None
        return {"effective_lr": eff, "update": update, "normalized_grad": normalized}, decay

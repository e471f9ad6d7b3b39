"""torch_rules: each formula against the update PyTorch applied and against the numpy reference.

The strongest check of a formula is the optimizer itself: in float64 the
`update` (plus decoupled decay) the rule recomputes from the state must be
the change `optimizer.step()` made, to float64 rounding.  The numpy
reference (`torch_reference`, written from PyTorch's documentation) must
agree with the rule on every part.
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch_reference  # noqa: E402
from tb_stepsize import torch_rules  # noqa: E402

CASES = {
    "adam": lambda p: torch.optim.Adam(p, 1e-2),
    "adam_l2_maximize": lambda p: torch.optim.Adam(p, 1e-2, weight_decay=0.1, maximize=True),
    "amsgrad": lambda p: torch.optim.Adam(p, 1e-2, amsgrad=True),
    "adamw": lambda p: torch.optim.AdamW(p, 1e-2, weight_decay=0.1),
    "adamw_foreach": lambda p: torch.optim.AdamW(p, 1e-2, weight_decay=0.1, foreach=True),
    "adam_fused": lambda p: torch.optim.Adam(p, 1e-2, fused=True),
    "adam_tensor_lr": lambda p: torch.optim.Adam(p, torch.tensor(1e-2)),
    "nadam": lambda p: torch.optim.NAdam(p, 1e-2),
    "nadamw": lambda p: torch.optim.NAdam(p, 1e-2, weight_decay=0.1, decoupled_weight_decay=True),
    "adamax": lambda p: torch.optim.Adamax(p, 1e-2, weight_decay=0.1),
    "radam": lambda p: torch.optim.RAdam(p, 1e-2),
    "radamw": lambda p: torch.optim.RAdam(p, 1e-2, weight_decay=0.1, decoupled_weight_decay=True),
}
STEPS = 8  # RAdam's rectification turns on at t = 6 (beta2 = 0.999)


def _parts(opt, p, old, capturable=False):
    group = opt.param_groups[0]
    state = dict(opt.state[p])
    if capturable:  # what capturable=True keeps: the step as a tensor (CPU cannot run it)
        group = {**group, "capturable": True}
        state["step"] = state["step"].clone()
    tensors = {"old": old, "grad": p.grad, **{k: v for k, v in state.items() if torch.is_tensor(v) and v.dim()}}
    parts, decay = torch_rules.rule_for(opt).parts(group, state, lambda name: tensors[name].reshape(-1).to(torch.float64))
    return {k: v.double() for k, v in parts.items()}, (float(decay) if decay is not None else 0.0)


@pytest.mark.parametrize("name", CASES)
def test_rule_recomputes_the_update_torch_applied(name):
    torch.manual_seed(0)
    p = torch.nn.Parameter(torch.randn(200, dtype=torch.float64))
    opt = CASES[name]([p])
    for t in range(1, STEPS + 1):
        p.grad = torch.randn(200, dtype=torch.float64)
        old = p.detach().clone()
        opt.step()
        parts, decay = _parts(opt, p, old)
        applied = (old - p.detach()).numpy()
        np.testing.assert_allclose((parts["update"] + decay * old).numpy(), applied, rtol=1e-9, atol=1e-15, err_msg=f"{name} t={t}")
        # The numpy reference agrees on every part.
        group = {k: (float(v) if torch.is_tensor(v) else v) for k, v in opt.param_groups[0].items() if k != "params"}
        state = {k: (v.numpy() if torch.is_tensor(v) and v.dim() else float(v)) for k, v in opt.state[p].items()}
        eff, update, norm, ref_decay = torch_reference.FORMULAS[type(opt).__name__](
            group, float(state["step"]), group["lr"], state, p.grad.numpy(), old.numpy()
        )
        rtol = 1e-7 if name == "adam_tensor_lr" else 1e-12  # PyTorch divides a float32 lr tensor in float32
        np.testing.assert_allclose(parts["effective_lr"].numpy(), eff, rtol=rtol, err_msg=name)
        np.testing.assert_allclose(parts["update"].numpy(), update, rtol=rtol, err_msg=name)
        np.testing.assert_allclose(parts["normalized_grad"].numpy(), norm, rtol=1e-12, err_msg=name)
        assert decay == pytest.approx(ref_decay, rel=1e-12)
        # The capturable path (step as a device tensor, no host read) gives the same parts, up to
        # the float32 bias corrections PyTorch's capturable implementation computes too.
        # RAdam's rho_t subtracts two numbers near 2/(1-beta2) (bc2 carries 1e-5 in float32): its
        # rectification term is then off by up to 0.6% over the first steps, in PyTorch's capturable too.
        captured, _ = _parts(opt, p, old, capturable=True)
        for key in parts:
            rtol = 1e-2 if "radam" in name else 1e-4
            np.testing.assert_allclose(captured[key].numpy(), parts[key].numpy(), rtol=rtol, err_msg=f"{name} capturable t={t} {key}")


def test_only_the_exact_torch_classes_have_rules():
    p = [torch.nn.Parameter(torch.zeros(3))]

    class MyAdam(torch.optim.Adam):
        pass

    assert torch_rules.rule_for(torch.optim.AdamW(p)) is not None
    assert torch_rules.rule_for(torch.optim.SGD(p, 0.1)) is None
    assert torch_rules.rule_for(MyAdam(p)) is None and torch_rules.is_adam_family(MyAdam(p))

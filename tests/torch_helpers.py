"""Training loops for the torch tests: they record what the optimizer did, step by step.

Each record holds, for every parameter, the weights before and after the
update, the gradient the step saw (unscaled, for GradScaler), the
optimizer's state after the update and the group's hyper-parameters at the
step -- copied by the test itself, without the monitor's hooks -- so that
`torch_reference.expected` can recompute every metric.
"""

import numpy as np
import torch

import reference
import torch_reference


def mlp(dtype=torch.float32, seed=0, width=32):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(16, width), torch.nn.Tanh(), torch.nn.Linear(width, 4)).to(dtype)


def batches(steps, seed=0, n=64):
    rng = np.random.default_rng(seed)
    return [
        (torch.tensor(rng.standard_normal((n, 16)), dtype=torch.float32), torch.tensor(rng.standard_normal((n, 4)), dtype=torch.float32))
        for _ in range(steps)
    ]


def _numpy(x):
    return x.detach().to(torch.float32).cpu().numpy().copy() if torch.is_tensor(x) else x


def _state(opt, p):
    return {k: (float(v) if k in ("step", "mu_product") else _numpy(v)) for k, v in opt.state[p].items()}


def _hp(group):
    return {k: (float(v) if torch.is_tensor(v) and v.numel() == 1 else v) for k, v in group.items() if k != "params"}


def before_step(params, opt):
    """What a record needs from before `opt.step()`: weights and each parameter's group settings."""
    groups = {n: _hp(g) for g in opt.param_groups for p in g["params"] for n, q in params.items() if q is p}
    return {n: _numpy(p) for n, p in params.items()}, groups


def after_step(params, opt, t, before, groups, loss=None):
    """One record of update `t`, from `before_step`'s output and the state after the step."""
    return dict(
        t=t, before=before, groups=groups, loss=loss,
        grads={n: (None if p.grad is None else _numpy(p.grad)) for n, p in params.items()},
        after={n: _numpy(p) for n, p in params.items()},
        state={n: _state(opt, p) for n, p in params.items() if p in opt.state},
    )


def train(model, opt, steps=3, monitor=None, scheduler=None, scaler=None, skip_at=(), frozen_at=(), data_seed=0, forward=None):
    """`steps` updates of MSE on random data; returns one record per `opt.step()` that updated.

    `skip_at`: steps whose loss is made infinite (GradScaler then skips the
    update); `frozen_at`: {step: parameter names} whose gradients are
    removed before the update.
    """
    params = dict(model.named_parameters())
    records, t = [], 0
    forward = forward or model
    for i, (x, y) in enumerate(batches(steps, data_seed)):
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=scaler is not None):
            loss = torch.mean((forward(x.to(next(model.parameters()).dtype)).float() - y) ** 2)
        if i in skip_at:
            loss = loss * float("inf")
        (scaler.scale(loss) if scaler else loss).backward()
        for name in frozen_at.get(i, ()) if isinstance(frozen_at, dict) else ():
            params[name].grad = None
        before, groups = before_step(params, opt)
        if scaler:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        record = after_step(params, opt, t + 1, before, groups, float(loss.detach()))
        if scheduler is not None:
            scheduler.step()
        if monitor is not None:
            monitor.after_step(loss=loss)
        opt.zero_grad()
        if scaler and i in skip_at:
            continue  # inf gradients: GradScaler skipped the update
        t += 1
        records.append(record)
    return records


def check_run(run, records, kind, every_n=1, names=None, rtol_scalar=2e-5):
    """Every logged statistic and histogram of `run` against `torch_reference`."""
    names = names or run.layers
    logged = [r for r in records if (r["t"] - 1) % every_n == 0]
    assert list(run.steps) == [r["t"] for r in logged]
    for col, r in enumerate(logged):
        for i, name in enumerate(names):
            what = f"{kind} t={r['t']} {name}"
            if r["grads"][name] is None:
                assert np.isnan(run.values["step"][i, col]).all(), what
                continue
            hp = r["groups"][name]
            state = r["state"].get(name, {})
            e = torch_reference.expected(kind, hp, state.get("step", r["t"]), hp["lr"], state, r["grads"][name], r["before"][name], r["after"][name])
            for metric, value in e.items():
                if metric not in run.metrics:
                    continue
                row = run.values[metric][i, col]
                if run.stats[metric] == ["value"]:
                    np.testing.assert_allclose(row[0], value, rtol=rtol_scalar, equal_nan=True, err_msg=f"{what} {metric}")
                else:
                    reference.check_stats(value, row, run.stats[metric], f"{what} {metric}")
            steps, hists = run.histograms("step", name)
            reference.check_histogram(e["step"], hists[list(steps).index(r["t"])], what)
    return logged

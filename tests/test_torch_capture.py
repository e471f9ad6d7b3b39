"""torch_capture: the hooks change nothing the optimizer does, and cost nothing on unlogged steps."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tb_stepsize  # noqa: E402
import tb_stepsize.torch as tbs  # noqa: E402
import torch_helpers as th  # noqa: E402
from tb_stepsize import torch_capture, torch_reduce  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::tb_stepsize.live_findings.FindingWarning")
O = torch.optim
VARIANTS = {
    "adam": lambda p: O.Adam(p, 1e-2),
    "adamw_foreach": lambda p: O.AdamW(p, 1e-2, foreach=True),
    "adamw_fused": lambda p: O.AdamW(p, 1e-2, fused=True),
    "amsgrad_maximize": lambda p: O.Adam(p, 1e-2, amsgrad=True, maximize=True),
    "nadam": lambda p: O.NAdam(p, 1e-2, foreach=True),
    "radam": lambda p: O.RAdam(p, 1e-2),
    "adamax": lambda p: O.Adamax(p, 1e-2),
    "sgd_nesterov": lambda p: O.SGD(p, 1e-2, momentum=0.9, nesterov=True, foreach=True),
    "adagrad": lambda p: O.Adagrad(p, 1e-2),
}


@pytest.fixture
def deterministic():
    before = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(before)


def _weights_and_state(tmp_path, make_opt, monitored, steps=6, closure=False, on_error="raise"):
    model = th.mlp()
    opt = make_opt(model.parameters())
    monitor = tbs.StepSizeMonitor(str(tmp_path), opt, model=model, on_error=on_error) if monitored else None
    if closure:
        for x, y in th.batches(steps):
            def loss_fn():
                opt.zero_grad()
                loss = torch.mean((model(x) - y) ** 2)
                loss.backward()
                return loss
            opt.step(loss_fn)
    else:
        th.train(model, opt, steps, monitor=monitor)
    if monitor:
        monitor.close()
    # By parameter: the first step creates the state of parameters stepped alone last.
    state = [v.clone() for p in model.parameters() for _, v in sorted(opt.state[p].items()) if torch.is_tensor(v)]
    return [p.detach().clone() for p in model.parameters()], state, monitor


def _identical(a, b):
    return len(a) == len(b) and all(x.dtype == y.dtype and torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("big", [False, True], ids=["small", "one_at_a_time"])
@pytest.mark.parametrize("name", VARIANTS)
def test_weights_and_state_bit_identical_with_and_without_the_monitor(tmp_path, monkeypatch, deterministic, name, big):
    if big:  # every parameter but the last bias is stepped alone after the others
        monkeypatch.setattr(torch_capture, "SMALL_MAX", 16)
        monkeypatch.setattr(torch_reduce, "SMALL_MAX", 16)
    plain = _weights_and_state(tmp_path / "plain", VARIANTS[name], False)
    watched = _weights_and_state(tmp_path / "watched", VARIANTS[name], True)
    assert _identical(plain[0], watched[0]) and _identical(plain[1], watched[1])
    assert watched[2].logged_steps == 6


@pytest.mark.parametrize("name", ["adam", "lbfgs"])
def test_closures_run_once_or_as_the_optimizer_wants(tmp_path, monkeypatch, deterministic, name):
    """Adam's closure is evaluated by the pre-hook (gradients are needed before the step) and
    the step gets its loss; LBFGS evaluates its closure many times itself, untouched."""
    monkeypatch.setattr(torch_capture, "SMALL_MAX", 16)
    make = VARIANTS["adam"] if name == "adam" else (lambda p: O.LBFGS(p, lr=0.5, max_iter=4))
    plain = _weights_and_state(tmp_path / "plain", make, False, closure=True)
    watched = _weights_and_state(tmp_path / "watched", make, True, closure=True)
    assert _identical(plain[0], watched[0]) and _identical(plain[1], watched[1])
    run = tb_stepsize.load(str(tmp_path / "watched"))
    assert list(run.steps) == list(range(1, 7)) and np.isfinite(run.matrix("step", "p50")).all()


class _CountOps(torch.overrides.TorchFunctionMode):
    """Counts every torch function and tensor method called from Python."""

    def __init__(self):
        super().__init__()
        self.calls = 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        self.calls += 1
        return func(*args, **(kwargs or {}))


def test_unlogged_steps_run_no_torch_op_and_no_host_read(tmp_path):
    """every_n_steps=10: steps 2..10 cost the hooks no torch op at all (so no sync, no
    .item()/.cpu()), the same count as the plain optimizer; the one logged step is pulled
    once, at close."""
    counts = {}
    for monitored in (False, True):
        model = th.mlp()
        opt = O.AdamW(model.parameters(), 1e-2)
        monitor = tbs.StepSizeMonitor(str(tmp_path / str(monitored)), opt, model=model, every_n_steps=10, flush_secs=1e9) if monitored else None
        per_step = []
        for i, (x, y) in enumerate(th.batches(10)):
            torch.mean((model(x) - y) ** 2).backward()
            with _CountOps() as ops:
                opt.step()
                if monitor:
                    monitor.after_step()
            opt.zero_grad()
            per_step.append(ops.calls)
        counts[monitored] = per_step
        if monitor:
            assert monitor.host_reads == 0
            monitor.close()
            assert monitor.host_reads == 1 and monitor.logged_steps == 1
    assert counts[True][1:] == counts[False][1:]
    assert counts[True][0] > counts[False][0]  # the logged step's reduction


def test_a_step_that_raises_gives_the_gradients_back(tmp_path, monkeypatch):
    monkeypatch.setattr(torch_capture, "SMALL_MAX", 16)
    model = th.mlp()
    opt = O.Adam(model.parameters(), 1e-2)
    monitor = tbs.StepSizeMonitor(str(tmp_path), opt, model=model)
    torch.mean(model(torch.ones(2, 16)) ** 2).backward()
    grads = [p.grad.clone() for p in model.parameters()]

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    opt.register_step_pre_hook(broken)  # runs after the monitor's pre-hook set big gradients aside
    with pytest.raises(RuntimeError):
        opt.step()
    monitor.close()
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads))


@pytest.mark.parametrize("big", [False, True], ids=["small", "one_at_a_time"])
def test_a_failing_reduction_warns_once_and_training_goes_on_unchanged(tmp_path, monkeypatch, deterministic, big):
    if big:
        monkeypatch.setattr(torch_capture, "SMALL_MAX", 16)
        monkeypatch.setattr(torch_reduce, "SMALL_MAX", 16)
    plain = _weights_and_state(tmp_path / "plain", VARIANTS["adam"], False)
    calls = []

    def broken(self, logged, pairs):
        calls.append(logged.t)
        if logged.t == 3:
            raise RuntimeError("device lost")

    monkeypatch.setattr(torch_reduce.Reducer, "add", broken)
    with pytest.warns(UserWarning, match="reducing a logged update failed: RuntimeError: device lost") as caught:
        watched = _weights_and_state(tmp_path / "watched", VARIANTS["adam"], True, on_error="warn")
    assert len([w for w in caught if "tb_stepsize" in str(w.message)]) == 1
    assert _identical(plain[0], watched[0]) and _identical(plain[1], watched[1])  # every parameter still stepped
    assert max(calls) == 3 and not watched[2].enabled

"""tb_stepsize.torch.StepSizeMonitor: naming, selection, bad input, closing, no TensorFlow."""

import os
import subprocess
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import tb_stepsize  # noqa: E402
import tb_stepsize.torch as tbs  # noqa: E402
import torch_helpers as th  # noqa: E402
from tb_stepsize.live_findings import FindingWarning  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::tb_stepsize.live_findings.FindingWarning")
O = torch.optim


def _own_warnings(caught):
    return [str(w.message) for w in caught if "tb_stepsize" in str(w.message) and w.category is not FindingWarning]


def test_names_without_a_model_and_with_include_exclude_metrics(tmp_path):
    model = th.mlp()
    opt = O.Adam([{"params": model[0].parameters()}, {"params": model[2].parameters(), "lr": 1e-3}], 1e-2)
    with tbs.StepSizeMonitor(str(tmp_path / "a"), opt, on_error="raise"):
        th.train(model, opt, 2)
    assert tb_stepsize.load(str(tmp_path / "a")).layers == ["group0/param0", "group0/param1", "group1/param0", "group1/param1"]
    with tbs.StepSizeMonitor(
        str(tmp_path / "b"), opt, model=model, include=r"weight", exclude=r"^2\.", metrics=["update_ratio"], on_error="raise"
    ):
        th.train(model, opt, 2)
    run = tb_stepsize.load(str(tmp_path / "b"))
    assert run.layers == ["0.weight"] and set(run.metrics) == {"step", "update_ratio"}


def test_ddp_style_wrappers_keep_the_module_names(tmp_path):
    model = th.mlp()
    compiled = torch.compile(model)
    opt = O.SGD(model.parameters(), 0.1)
    assert [n for n, _, _ in tbs.named_parameters(opt, compiled)] == ["0.weight", "0.bias", "2.weight", "2.bias"]


def test_third_party_optimizer_records_step_and_ratio_with_one_warning(tmp_path):
    class Lion(torch.optim.Optimizer):  # a third-party class: its state is not readable
        def __init__(self, params, lr=1e-3):
            super().__init__(params, {"lr": lr})

        @torch.no_grad()
        def step(self, closure=None):
            for group in self.param_groups:
                for p in group["params"]:
                    if p.grad is not None:
                        p.add_(torch.sign(p.grad), alpha=-group["lr"])

    model = th.mlp()
    opt = Lion(model.parameters(), 1e-3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with tbs.StepSizeMonitor(str(tmp_path), opt, model=model) as monitor:
            records = th.train(model, opt, 3)
    messages = _own_warnings(caught)
    assert len(messages) == 1 and "Lion" in messages[0] and "`step` and `update_ratio` only" in messages[0]
    run = tb_stepsize.load(str(tmp_path))
    assert set(run.metrics) == {"step", "update_ratio"} and monitor.logged_steps == 3
    th.check_run(run, records, "Lion")


def test_torch_optimizers_without_rule_and_subclasses(tmp_path):
    class MyAdam(torch.optim.Adam):
        pass

    model = th.mlp()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tbs.StepSizeMonitor(str(tmp_path / "sgd"), O.SGD(model.parameters(), 0.1)).close()
        tbs.StepSizeMonitor(str(tmp_path / "mine"), MyAdam(model.parameters())).close()
    messages = _own_warnings(caught)
    assert len(messages) == 1 and "MyAdam" in messages[0]


def test_bad_arguments_and_unwritable_dir(tmp_path):
    model = th.mlp()
    opt = O.Adam(model.parameters())
    with pytest.raises(ValueError):
        tbs.StepSizeMonitor(str(tmp_path), opt, metrics="step")
    with pytest.raises(tbs.MonitorError, match="no parameters"):
        tbs.StepSizeMonitor(str(tmp_path), opt, model=model, include="nothing", on_error="raise")
    blocked = tmp_path / "file"
    blocked.write_text("x")
    with pytest.raises(tbs.MonitorError, match="not writable"):
        tbs.StepSizeMonitor(str(blocked / "run"), opt, on_error="raise")
    with pytest.warns(UserWarning, match="not writable"):
        monitor = tbs.StepSizeMonitor(str(blocked / "run"), opt)
    assert not monitor.enabled
    th.train(model, opt, 1)  # trains unmonitored
    with pytest.raises(tbs.MonitorError, match="torch.optim.Optimizer"):
        tbs.StepSizeMonitor(str(tmp_path), object(), on_error="raise")


def test_close_twice_and_an_exception_in_the_loop_keep_everything(tmp_path):
    model = th.mlp()
    opt = O.Adam(model.parameters(), 1e-2)
    with pytest.raises(KeyboardInterrupt):
        with tbs.StepSizeMonitor(str(tmp_path), opt, model=model, flush_secs=1e9) as monitor:
            th.train(model, opt, 4, monitor=monitor)
            raise KeyboardInterrupt
    monitor.close()
    monitor.close()
    assert list(tb_stepsize.load(str(tmp_path)).steps) == [1, 2, 3, 4]
    th.train(model, opt, 1)  # the hooks are gone
    assert list(tb_stepsize.load(str(tmp_path)).steps) == [1, 2, 3, 4]


def test_pulls_when_max_pending_logged_updates_wait(tmp_path):
    model = th.mlp()
    opt = O.Adam(model.parameters(), 1e-2)
    with tbs.StepSizeMonitor(str(tmp_path), opt, model=model, max_pending=4, flush_secs=1e9) as monitor:
        th.train(model, opt, 10, monitor=monitor)
        assert monitor.host_reads == 2 and monitor.logged_steps == 8
    assert monitor.host_reads == 3 and list(tb_stepsize.load(str(tmp_path)).steps) == list(range(1, 11))


def test_resumed_optimizer_continues_its_step_count(tmp_path):
    model = th.mlp()
    opt = O.AdamW(model.parameters(), 1e-2)
    th.train(model, opt, 3)
    with tbs.StepSizeMonitor(str(tmp_path), opt, model=model, every_n_steps=2) as monitor:
        records = th.train(model, opt, 3)
    assert monitor.step == 6 and list(tb_stepsize.load(str(tmp_path)).steps) == [5]
    assert len(records) == 3


def test_no_tensorflow_import(tmp_path):
    """The torch side imports, trains and writes with TensorFlow blocked."""
    code = (
        "import sys; sys.modules['tensorflow'] = None; sys.modules['keras'] = None\n"
        "import torch, tb_stepsize.torch as tbs, tb_stepsize.lightning\n"
        "m = torch.nn.Linear(3, 2); opt = torch.optim.AdamW(m.parameters())\n"
        f"with tbs.StepSizeMonitor({str(tmp_path)!r}, opt, model=m, on_error='raise'):\n"
        "    m(torch.ones(4, 3)).sum().backward(); opt.step()\n"
        "import tb_stepsize; print(tb_stepsize.load(sys.argv[1]).steps.tolist())\n"
    )
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "[1]"


def test_findings_reported_during_training(tmp_path):
    """A learning rate far too high: the update_ratio rule fires while training, `stop_on` stops."""
    model = th.mlp()
    opt = O.SGD(model.parameters(), 5.0)
    found = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FindingWarning)
        with tbs.StepSizeMonitor(str(tmp_path), opt, model=model, flush_secs=0, on_finding=found.append, stop_on=("ratio_high",)) as monitor:
            th.train(model, opt, 6, monitor=monitor)
            assert monitor.stop_requested and any(f.kind == "ratio_high" for f in found)
    assert monitor.findings == found and np.isfinite(tb_stepsize.load(str(tmp_path)).matrix("step", "max")).any()
    assert os.path.isdir(tmp_path)


def test_torch_demo_writes_a_run(tmp_path):
    demo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo", "torch_example.py")
    proc = subprocess.run([sys.executable, demo, "--logdir", str(tmp_path), "--steps", "20"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tb_stepsize.load(str(tmp_path))
    assert list(run.steps) == [1, 6, 11, 16] and len(run.layers) == 6 and "second_moment_rms" in run.metrics

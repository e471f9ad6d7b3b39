"""Every number the torch monitor records against an independent numpy recomputation.

A plain PyTorch loop (`torch_helpers.train`) copies weights, gradients and
the optimizer's state around each update itself; `torch_reference`
recomputes every metric from PyTorch's documented formulas and
`reference.check_stats` / `check_histogram` compare each statistic and
histogram (quantiles within 1% of their order-statistic interval, min /
max / mean / rms tight).
"""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import plugin_helpers  # noqa: E402
import tb_stepsize  # noqa: E402
import tb_stepsize.torch as tbs  # noqa: E402
import torch_helpers as th  # noqa: E402
from tb_stepsize import metadata, torch_capture, torch_reduce  # noqa: E402

O = torch.optim
OPTIMIZERS = {
    "adam": lambda p: O.Adam(p, 1e-2),
    "adam_l2": lambda p: O.Adam(p, 1e-2, weight_decay=0.1),
    "adamw": lambda p: O.AdamW(p, 1e-2, weight_decay=0.1),
    "amsgrad": lambda p: O.AdamW(p, 1e-2, amsgrad=True),
    "adam_foreach": lambda p: O.Adam(p, 1e-2, foreach=True),
    "adamw_fused": lambda p: O.AdamW(p, 1e-2, fused=True),
    "adam_maximize": lambda p: O.Adam(p, 1e-2, maximize=True),
    "nadam": lambda p: O.NAdam(p, 1e-2),
    "nadamw_foreach": lambda p: O.NAdam(p, 1e-2, weight_decay=0.1, decoupled_weight_decay=True, foreach=True),
    "adamax": lambda p: O.Adamax(p, 1e-2),
    "radam": lambda p: O.RAdam(p, 1e-2),
    "radamw_foreach": lambda p: O.RAdam(p, 1e-2, weight_decay=0.1, decoupled_weight_decay=True, foreach=True),
    "sgd_momentum": lambda p: O.SGD(p, 1e-2, momentum=0.9),
    "rmsprop": lambda p: O.RMSprop(p, 1e-3),
}
pytestmark = pytest.mark.filterwarnings("ignore::tb_stepsize.live_findings.FindingWarning")
STEPS = 7  # RAdam: rectification off for t <= 5, on after


def _run(tmp_path, make_opt, steps=STEPS, model=None, every_n=1, **train_kwargs):
    model = model or th.mlp()
    opt = make_opt(model.parameters())
    scheduler = train_kwargs.pop("scheduler", None)
    monitor = tbs.StepSizeMonitor(str(tmp_path), opt, model=model, every_n_steps=every_n, on_error="raise")
    records = th.train(model, opt, steps, monitor=monitor, scheduler=scheduler(opt) if scheduler else None, **train_kwargs)
    monitor.close()
    return tb_stepsize.load(str(tmp_path)), records, opt, monitor


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_every_statistic_matches_numpy(tmp_path, name):
    run, records, opt, _ = _run(tmp_path, OPTIMIZERS[name])
    assert run.layers == ["0.weight", "0.bias", "2.weight", "2.bias"]
    adam_family = type(opt).__name__ in ("Adam", "AdamW", "NAdam", "Adamax", "RAdam")
    assert set(run.metrics) == (set(metadata.METRICS) if adam_family else {"step", "update_ratio"})
    th.check_run(run, records, type(opt).__name__)


@pytest.mark.parametrize("name", ["adamw", "nadam", "radam", "sgd_momentum"])
def test_big_parameters_one_at_a_time_and_in_chunks(tmp_path, monkeypatch, name):
    """Every parameter above SMALL_MAX: stepped alone after the others, reduced 100 elements at
    a time with a tail (512 = 5 x 100 + 12, 128 = 100 + 28, 32 a tail only; 4 is small)."""
    monkeypatch.setattr(torch_capture, "SMALL_MAX", 16)
    monkeypatch.setattr(torch_reduce, "SMALL_MAX", 16)
    monkeypatch.setattr(torch_reduce, "CHUNK", 100)
    run, records, opt, monitor = _run(tmp_path, OPTIMIZERS[name])
    th.check_run(run, records, type(opt).__name__)
    # Extra memory: the small snapshot (4 floats) plus the largest parameter (512 floats).
    assert monitor.peak_snapshot_bytes == 4 * (4 + 512)


def test_param_groups_and_a_scheduler(tmp_path):
    model = th.mlp()

    def make(_):
        return O.AdamW(
            [{"params": model[0].parameters(), "lr": 1e-2, "weight_decay": 0.1}, {"params": model[2].parameters(), "lr": 3e-3, "weight_decay": 0.0}],
        )

    run, records, _, _ = _run(tmp_path, make, model=model, scheduler=lambda o: O.lr_scheduler.ExponentialLR(o, gamma=0.5))
    th.check_run(run, records, "AdamW")
    lrs = plugin_helpers.read_scalars(str(tmp_path), ".", [metadata.LEARNING_RATE_TAG])[metadata.LEARNING_RATE_TAG]
    assert lrs == [(t, pytest.approx(1e-2 * 0.5 ** (t - 1), rel=1e-6)) for t in range(1, STEPS + 1)]


def test_every_n_steps_and_the_loss(tmp_path):
    run, records, _, _ = _run(tmp_path, OPTIMIZERS["adam"], every_n=3)
    th.check_run(run, records, "Adam", every_n=3)
    losses = plugin_helpers.read_scalars(str(tmp_path), ".", [metadata.LOSS_TAG])[metadata.LOSS_TAG]
    assert losses == [(r["t"], pytest.approx(r["loss"], rel=1e-6)) for r in records if r["t"] in (1, 4, 7)]


@pytest.mark.parametrize("name", ["adamw", "adamw_fused"])
def test_autocast_and_gradscaler_skipped_step_is_not_logged(tmp_path, name):
    """Non-fused: GradScaler does not call a skipped step.  Fused: it calls it with
    `found_inf`, the kernel skips the update and rolls the step count back; the monitor
    reads both with the results and leaves the step out."""
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    run, records, _, _ = _run(tmp_path, OPTIMIZERS[name], scaler=scaler, skip_at=(2,))
    assert len(records) == STEPS - 1 and list(run.steps) == list(range(1, STEPS))
    th.check_run(run, records, "AdamW")


def test_bfloat16_parameters_lose_updates_and_say_so(tmp_path):
    run, records, _, _ = _run(tmp_path, lambda p: O.Adam(p, 1e-4), model=th.mlp(torch.bfloat16))
    th.check_run(run, records, "Adam", rtol_scalar=1e-3)
    lost = run.matrix("lost_fraction", "value")
    assert np.nanmax(lost) > 0.1, "bfloat16 weights should swallow small Adam steps"
    np.testing.assert_array_less(lost - 1e-12, run.matrix("step", "zero_fraction") + 1e-12)


def test_parameter_without_gradient_is_not_updated(tmp_path):
    run, records, _, _ = _run(tmp_path, OPTIMIZERS["adam"], frozen_at={1: ["2.weight"], 2: ["2.weight", "0.bias"]})
    th.check_run(run, records, "Adam")
    present = run.mask("step", "p50")
    assert not present[2, 1] and not present[2, 2] and not present[1, 2] and present[0].all()


def test_compiled_model(tmp_path):
    model = th.mlp()
    compiled = torch.compile(model)
    opt = O.AdamW(model.parameters(), 1e-2)
    monitor = tbs.StepSizeMonitor(str(tmp_path), opt, model=compiled, on_error="raise")
    records = th.train(model, opt, 3, monitor=monitor, forward=compiled)
    monitor.close()
    run = tb_stepsize.load(str(tmp_path))
    assert run.layers == ["0.weight", "0.bias", "2.weight", "2.bias"]
    th.check_run(run, records, "AdamW")

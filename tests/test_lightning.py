"""tb_stepsize.lightning.StepSizeCallback in a real `Trainer.fit` with a TensorBoardLogger.

The run lands in the logger's version directory beside Lightning's own
scalars; `load()` of that directory equals the numpy reference, and a real
`tensorboard` process over the logger's root lists the Step Sizes tab for it.
"""

import time

import numpy as np
import pytest
import requests

torch = pytest.importorskip("torch")
pl = pytest.importorskip("pytorch_lightning")

import tb_stepsize  # noqa: E402
import torch_helpers as th  # noqa: E402
from tb_stepsize.lightning import StepSizeCallback  # noqa: E402
from test_plugin_tensorboard import Server  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::tb_stepsize.live_findings.FindingWarning", "ignore::UserWarning")
STEPS = 6


class LitMLP(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = th.mlp()

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.mean((self.net(x) - y) ** 2)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), 1e-2, weight_decay=0.1)


class Recorder(pl.Callback):
    """What the optimizer did at each step, copied without the monitor (see torch_helpers)."""

    def __init__(self):
        self.records, self._before = [], None

    def on_before_optimizer_step(self, trainer, module, optimizer):
        self._before = th.before_step(dict(module.named_parameters()), optimizer)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        opt = trainer.optimizers[0]
        self.records.append(th.after_step(dict(module.named_parameters()), opt, len(self.records) + 1, *self._before, float(outputs["loss"])))


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    root = tmp_path_factory.mktemp("lightning")
    data = torch.utils.data.TensorDataset(*(torch.cat(t) for t in zip(*th.batches(STEPS, n=16))))
    logger = pl.loggers.TensorBoardLogger(str(root), name="lightning_logs")
    recorder = Recorder()
    callback = StepSizeCallback(every_n_steps=1)
    trainer = pl.Trainer(
        max_steps=STEPS, logger=logger, callbacks=[callback, recorder], accelerator="cpu", devices=1,
        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, log_every_n_steps=1,
    )
    trainer.fit(LitMLP(), torch.utils.data.DataLoader(data, batch_size=16))
    return root, logger.log_dir, recorder.records, callback


def test_run_in_the_loggers_directory_equals_numpy(fitted):
    root, log_dir, records, callback = fitted
    assert log_dir.endswith("lightning_logs/version_0") and not callback.monitor.enabled
    run = tb_stepsize.load(log_dir)
    assert run.layers == ["net.0.weight", "net.0.bias", "net.2.weight", "net.2.bias"]
    assert len(records) == STEPS
    th.check_run(run, records, "AdamW")


def test_tensorboard_lists_the_step_sizes_tab_beside_lightnings_scalars(fitted, tmp_path):
    root, *_ = fitted
    server = Server("python", str(root / "lightning_logs"), str(tmp_path))
    try:
        deadline, tags, scalars = time.monotonic() + 90, {}, {}
        while time.monotonic() < deadline and server.proc.poll() is None:
            try:
                listing = requests.get(server.url("/data/plugins_listing"), timeout=5).json()
                if listing.get("stepsize", {}).get("enabled"):
                    tags = requests.get(server.url("/data/plugin/stepsize/tags"), timeout=30).json()
                    scalars = requests.get(server.url("/data/plugin/scalars/tags"), timeout=30).json()
                    if tags.get("version_0", {}).get("num_steps") == STEPS and "train_loss" in scalars.get("version_0", {}):
                        break
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.3)
        assert listing["stepsize"]["tab_name"] == "Step Sizes"
        assert tags["version_0"]["num_steps"] == STEPS
        assert {"train_loss", "stepsize/loss", "stepsize/learning_rate"} <= set(scalars["version_0"])
    finally:
        server.stop()


def test_the_loss_lightning_returned_is_written(fitted):
    import plugin_helpers

    _, log_dir, records, _ = fitted
    from tb_stepsize import metadata

    losses = plugin_helpers.read_scalars(log_dir, ".", [metadata.LOSS_TAG])[metadata.LOSS_TAG]
    np.testing.assert_allclose([v for _, v in losses], [r["loss"] for r in records], rtol=1e-6)


def test_lightning_demo_writes_into_the_loggers_run(tmp_path):
    import os
    import subprocess
    import sys

    demo = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo", "lightning_example.py")
    proc = subprocess.run([sys.executable, demo, "--root", str(tmp_path), "--steps", "10"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    run = tb_stepsize.load(str(tmp_path / "lightning_logs" / "version_0"))
    assert list(run.steps) == [1, 6] and run.layers[0] == "net.position"

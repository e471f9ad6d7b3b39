"""`StepSizeCallback` for (PyTorch) Lightning: the torch monitor, wired into `Trainer.fit`.

    trainer = Trainer(max_steps=1000, callbacks=[tb_stepsize.lightning.StepSizeCallback()])

writes into the trainer's logger directory (`TensorBoardLogger.log_dir`,
e.g. `lightning_logs/version_0`), so `tensorboard --logdir lightning_logs`
shows the Step Sizes tab beside Lightning's own scalars, in the same run.
"""

import warnings

try:
    import pytorch_lightning as pl
except ImportError:  # the unified `lightning` package
    import lightning.pytorch as pl

from tb_stepsize.torch import StepSizeMonitor


def _log_dir(trainer):
    """The run directory of the trainer's first logger that has one (TensorBoardLogger's version dir)."""
    for logger in trainer.loggers:
        if getattr(logger, "log_dir", None):
            return logger.log_dir
    return trainer.log_dir or trainer.default_root_dir


class StepSizeCallback(pl.Callback):
    """Records every `every_n_steps`-th update of the trainer's (first) optimizer.

    `log_dir` defaults to the logger's run directory; other keyword
    arguments are `tb_stepsize.torch.StepSizeMonitor`'s.  The loss of each
    logged step (the `loss` the training step returned) is written beside
    it.  Under DDP rank 0 records; under FSDP2 every rank reduces its shard.
    """

    def __init__(self, every_n_steps=1, log_dir=None, **monitor_kwargs):
        super().__init__()
        self.every_n_steps = every_n_steps
        self.log_dir = log_dir
        self._monitor_kwargs = monitor_kwargs
        self.monitor = None

    def on_train_start(self, trainer, pl_module):
        self._close()
        if len(trainer.optimizers) > 1:
            warnings.warn("tb_stepsize: the trainer has several optimizers; recording the first.", stacklevel=2)
        self.monitor = StepSizeMonitor(
            self.log_dir or _log_dir(trainer),
            trainer.optimizers[0],
            model=pl_module,
            every_n_steps=self.every_n_steps,
            **self._monitor_kwargs,
        )

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.monitor is None:
            return
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        self.monitor.after_step(loss=loss)
        if self.monitor.stop_requested:
            trainer.should_stop = True

    def on_train_end(self, trainer, pl_module):
        self._close()

    def on_exception(self, trainer, pl_module, exception):
        self._close()

    def _close(self):
        if self.monitor is not None:
            self.monitor.close()

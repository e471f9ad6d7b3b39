"""Step sizes of a (PyTorch) Lightning fit, in the TensorBoard logger's own run.

    python demo/lightning_example.py --root logs/lightning --steps 200
    tensorboard --logdir logs/lightning/lightning_logs

`StepSizeCallback()` writes into the trainer's TensorBoardLogger directory
(`lightning_logs/version_N`), so the Step Sizes tab shows the same run as
Lightning's own scalars (`train_loss` here).  A small transformer learns to
reverse generated token sequences.
"""

import argparse
import os
import sys

import torch

try:
    import pytorch_lightning as pl
except ImportError:
    import lightning.pytorch as pl

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
from torch_models import Transformer  # noqa: E402

from tb_stepsize.lightning import StepSizeCallback  # noqa: E402

VOCAB, LENGTH = 16, 12


class Reverser(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = Transformer(vocab=VOCAB, length=LENGTH)

    def training_step(self, batch, batch_idx):
        loss = self.net.loss(*batch)
        self.log("train_loss", loss)
        return loss

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--root", default="logs/lightning")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    x, y = data.reversal(4096, length=LENGTH, vocab=VOCAB)
    dataset = torch.utils.data.TensorDataset(torch.tensor(x, dtype=torch.long), torch.tensor(y, dtype=torch.long))
    logger = pl.loggers.TensorBoardLogger(args.root, name="lightning_logs")
    trainer = pl.Trainer(
        max_steps=args.steps, logger=logger, callbacks=[StepSizeCallback(every_n_steps=5)], accelerator="cpu",
        devices=1, enable_checkpointing=False, enable_progress_bar=False, log_every_n_steps=5,
    )
    trainer.fit(Reverser(), torch.utils.data.DataLoader(dataset, batch_size=64, shuffle=True))
    print(f"wrote {logger.log_dir}")


if __name__ == "__main__":
    main()

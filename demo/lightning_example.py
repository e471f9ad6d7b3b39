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

from tb_stepsize.lightning import StepSizeCallback  # noqa: E402

VOCAB, LENGTH = 16, 12


class Reverser(pl.LightningModule):
    def __init__(self, d=64):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, d)
        self.position = torch.nn.Parameter(torch.randn(LENGTH, d) * 0.02)
        layer = torch.nn.TransformerEncoderLayer(d, 4, 128, dropout=0.0, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(d, VOCAB)

    def training_step(self, batch, batch_idx):
        x, y = batch
        logits = self.head(self.encoder(self.embed(x) + self.position))
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, VOCAB), y.reshape(-1))
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

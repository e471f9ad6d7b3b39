"""The PyTorch models of the demos and the torch benchmark (generated data only)."""

import torch


def cnn1m():
    """Three 3x3 convolutions (32/64/96) on 32x32x3 and a 256-unit dense layer: 0.96M parameters."""
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(32, 64, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2),
        torch.nn.Conv2d(64, 96, 3), torch.nn.ReLU(), torch.nn.Flatten(),
        torch.nn.Linear(96 * 6 * 6, 256), torch.nn.ReLU(), torch.nn.Linear(256, 10),
    )


class Transformer(torch.nn.Module):
    """A small encoder-only transformer over token sequences: logits per position."""

    def __init__(self, vocab=32, length=16, d=64):
        super().__init__()
        self.vocab = vocab
        self.embed = torch.nn.Embedding(vocab, d)
        self.position = torch.nn.Parameter(torch.randn(length, d) * 0.02)
        layer = torch.nn.TransformerEncoderLayer(d, 4, 128, dropout=0.0, batch_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(d, vocab)

    def forward(self, x):
        return self.head(self.encoder(self.embed(x) + self.position))

    def loss(self, x, y):
        return torch.nn.functional.cross_entropy(self(x).reshape(-1, self.vocab), y.reshape(-1))

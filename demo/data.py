"""Synthetic data the demo generates itself (nothing is downloaded)."""

import numpy as np


def shapes(n, size=24, seed=0):
    """Noisy images of four classes: horizontal bar, vertical bar, square, disc."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = rng.normal(0, 0.3, (n, size, size, 1)).astype("float32")
    labels = rng.integers(0, 4, n)
    for i, label in enumerate(labels):
        cy, cx = rng.integers(6, size - 6, 2)
        r = rng.integers(3, 6)
        if label == 0:
            mask = (abs(yy - cy) <= 1) & (abs(xx - cx) <= r + 2)
        elif label == 1:
            mask = (abs(xx - cx) <= 1) & (abs(yy - cy) <= r + 2)
        elif label == 2:
            mask = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
        else:
            mask = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        images[i, mask, 0] += 1.0
    return images, labels.astype("int32")


def reversal(n, length=12, vocab=16, seed=0):
    """Token sequences and their reversal: a task a small transformer learns."""
    rng = np.random.default_rng(seed)
    x = rng.integers(1, vocab, (n, length)).astype("int32")
    return x, x[:, ::-1].copy()

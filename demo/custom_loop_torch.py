"""Step sizes from a custom PyTorch training loop (no `model.fit`), on Keras' torch backend.

    KERAS_BACKEND=torch python demo/custom_loop_torch.py --logdir logs/custom_loop_torch --steps 200

The monitor hooks the optimizer, so every eager `optimizer.apply(grads,
variables)` is recorded: a logged update is reduced on the tensors' device
and stays there until `after_steps()` takes it (every `flush_secs`); the
steps in between add no device work and no host sync.
"""

import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import train  # noqa: E402

import tb_stepsize  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--logdir", default="logs/custom_loop_torch")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    x, y = data.shapes(2048)
    model = train.cnn()  # the demo CNN
    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    variables = model.trainable_variables
    optimizer.build(variables)

    with tb_stepsize.StepSizeMonitor(args.logdir, optimizer, every_n_steps=10) as monitor:
        rng = np.random.default_rng(0)
        for step in range(args.steps):
            batch = rng.integers(0, len(x), 64)
            loss = loss_fn(keras.ops.convert_to_tensor(y[batch]), model(x[batch], training=True))
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                optimizer.apply([v.value.grad for v in variables], variables)
            monitor.after_steps(loss=loss.detach())  # a tensor: read when its step is written
    print(f"loss {float(loss):.3f}; logged {monitor.logged_steps} steps to {args.logdir}")


if __name__ == "__main__":
    main()

"""Step sizes from a custom JAX training loop (no `model.fit`), on Keras' JAX backend.

    KERAS_BACKEND=jax python demo/custom_loop_jax.py --logdir logs/custom_loop_jax --steps 200

The monitor hooks the optimizer, so `optimizer.stateless_apply(...)` inside
your own `jax.jit`-compiled step is recorded: a logged update is reduced
inside the compiled step and its small summaries reach the host through a
`jax.debug.callback`; `after_steps()` writes what arrived (it never waits
for the device).  Create the monitor before the step is first traced.
"""

import argparse
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import train  # noqa: E402

import tb_stepsize  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--logdir", default="logs/custom_loop_jax")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    x, y = data.shapes(2048)
    model = train.cnn()  # the demo CNN
    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer.build(model.trainable_variables)

    def loss_and_updates(trainable, non_trainable, images, labels):
        logits, non_trainable = model.stateless_call(trainable, non_trainable, images, training=True)
        return loss_fn(labels, logits), non_trainable

    grad_fn = jax.value_and_grad(loss_and_updates, has_aux=True)

    @jax.jit
    def train_step(state, images, labels):
        trainable, non_trainable, optimizer_variables = state
        (loss, non_trainable), grads = grad_fn(trainable, non_trainable, images, labels)
        trainable, optimizer_variables = optimizer.stateless_apply(optimizer_variables, grads, trainable)
        return loss, (trainable, non_trainable, optimizer_variables)

    with tb_stepsize.StepSizeMonitor(args.logdir, optimizer, every_n_steps=10) as monitor:
        state = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in optimizer.variables],
        )
        rng = np.random.default_rng(0)
        for step in range(args.steps):
            batch = rng.integers(0, len(x), 64)
            loss, state = train_step(state, x[batch], y[batch])
            monitor.after_steps(loss=loss)  # an array: read when its step is written, no sync of its own
        for variable, value in zip(model.trainable_variables, state[0]):
            variable.assign(value)
        for variable, value in zip(optimizer.variables, state[2]):
            variable.assign(value)
    print(f"loss {float(loss):.3f}; logged {monitor.logged_steps} steps to {args.logdir}")


if __name__ == "__main__":
    main()

"""Step sizes from a custom training loop (no `model.fit`).

    python demo/custom_loop.py --logdir logs/custom_loop --steps 200

`StepSizeMonitor` hooks the optimizer, so every `optimizer.apply(...)` --
inside a `tf.function` or eager -- is recorded; `after_steps()` tells it
that a step ran, and writes what was logged (it reads from the device only
when a logged step may have happened).
"""

import argparse
import os
import sys

import keras
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402

import tb_stepsize  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--logdir", default="logs/custom_loop")
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args(argv)

    keras.utils.set_random_seed(0)
    x, y = data.shapes(2048)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(2048).batch(64).repeat()
    model = keras.Sequential(
        [
            keras.Input((24, 24, 1)),
            keras.layers.Conv2D(16, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(4),
        ]
    )
    optimizer = keras.optimizers.Adam(1e-3)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer.build(model.trainable_variables)

    @tf.function
    def train_step(images, labels):
        with tf.GradientTape() as tape:
            loss = loss_fn(labels, model(images, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply(grads, model.trainable_variables)
        return loss

    with tb_stepsize.StepSizeMonitor(args.logdir, optimizer, every_n_steps=10) as monitor:
        for step, (images, labels) in enumerate(dataset.take(args.steps)):
            loss = train_step(images, labels)
            monitor.after_steps(loss=loss)  # a tensor: read when its step is written, no sync of its own
    print(f"loss {float(loss):.3f}; logged {monitor.logged_steps} steps to {args.logdir}")


if __name__ == "__main__":
    main()

"""The demo: train small real models and record their step sizes.

    python demo/train.py --logdir logs            # about 3 minutes on 2 CPU cores
    python demo/train.py --backend jax            # or torch: the same runs on Keras' JAX / torch backend
    tensorboard --logdir logs                     # then open the "Step Sizes" tab

Runs (each a TensorBoard run under --logdir):
  cnn_adam          a CNN on generated shapes, Adam with linear warm-up + cosine decay
  cnn_sgd           the same CNN with SGD + momentum (no per-parameter learning rate)
  transformer_adamw a 2-block transformer reversing token sequences, AdamW with warm-up
  mlp_bfloat16      an MLP whose weights are stored in bfloat16: watch `lost_fraction`
"""

import argparse
import os
import sys

BACKENDS = ("tensorflow", "jax", "torch")
if __name__ == "__main__":  # Keras reads KERAS_BACKEND once, at its import: --backend is read before it
    _pre = argparse.ArgumentParser(add_help=False)
    _pre.add_argument("--backend", choices=BACKENDS)
    if _pre.parse_known_args()[0].backend:
        os.environ["KERAS_BACKEND"] = _pre.parse_known_args()[0].backend

import keras  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402

import tb_stepsize  # noqa: E402


def schedule(peak, total, warmup):
    return keras.optimizers.schedules.CosineDecay(
        0.0, total - warmup, alpha=0.05, warmup_target=peak, warmup_steps=warmup
    )


def cnn():
    return keras.Sequential(
        [
            keras.Input((24, 24, 1)),
            keras.layers.Conv2D(16, 3, activation="relu", name="conv1"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, activation="relu", name="conv2"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu", name="conv3"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(64, activation="relu", name="dense"),
            keras.layers.Dense(4, name="logits"),
        ],
        name="cnn",
    )


def transformer(vocab=16, length=12, dim=48, heads=4, blocks=2):
    tokens = keras.Input((length,), dtype="int32")
    x = keras.layers.Embedding(vocab, dim, name="embed")(tokens)
    position_ids = keras.ops.arange(length)[None]
    if keras.backend.backend() == "torch":
        # On torch a lookup of a constant is computed once, outside the model's graph (its
        # second backward fails): ids derived from the input keep it in the graph.  Elsewhere
        # the constant stays (the demo's recorded runs and findings are from it).
        position_ids = keras.ops.zeros_like(tokens) + keras.ops.arange(length, dtype="int32")[None]
    positions = keras.layers.Embedding(length, dim, name="pos_embed")(position_ids)
    x = x + positions
    for b in range(blocks):
        h = keras.layers.LayerNormalization(name=f"block{b}_ln1")(x)
        h = keras.layers.MultiHeadAttention(heads, dim // heads, name=f"block{b}_attn")(h, h)
        x = x + h
        h = keras.layers.LayerNormalization(name=f"block{b}_ln2")(x)
        h = keras.layers.Dense(4 * dim, activation="gelu", name=f"block{b}_ffn1")(h)
        x = x + keras.layers.Dense(dim, name=f"block{b}_ffn2")(h)
    x = keras.layers.LayerNormalization(name="final_ln")(x)
    return keras.Model(tokens, keras.layers.Dense(vocab, name="unembed")(x), name="transformer")


def mlp_bfloat16():
    return keras.Sequential(
        [
            keras.Input((24 * 24,)),
            keras.layers.Dense(128, activation="relu", dtype="bfloat16", name="hidden"),
            keras.layers.Dense(4, dtype="bfloat16", name="logits"),
        ],
        name="mlp_bf16",
    )


def run(name, model, optimizer, x, y, args, epochs, batch_size=64):
    log_dir = os.path.join(args.logdir, name)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    callbacks = [tb_stepsize.StepSizeCallback(log_dir, every_n_steps=args.every_n_steps)]
    if keras.backend.backend() == "tensorflow":  # Keras' TensorBoard callback writes through TensorFlow
        callbacks.append(keras.callbacks.TensorBoard(log_dir, update_freq="epoch", histogram_freq=0))
    history = model.fit(x, y, batch_size=batch_size, epochs=epochs, verbose=0, callbacks=callbacks)
    print(f"{name:18s} loss {history.history['loss'][0]:.3f} -> {history.history['loss'][-1]:.3f}  ({log_dir})")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--logdir", default="logs")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--samples", type=int, default=4096)
    parser.add_argument("--every_n_steps", type=int, default=1)
    parser.add_argument("--backend", choices=BACKENDS, help="Keras backend (default: KERAS_BACKEND or tensorflow)")
    args = parser.parse_args(argv)
    keras.utils.set_random_seed(0)

    images, labels = data.shapes(args.samples)
    steps = args.epochs * (args.samples // 64)
    run("cnn_adam", cnn(), keras.optimizers.Adam(schedule(3e-3, steps, steps // 10)), images, labels, args, args.epochs)
    keras.utils.set_random_seed(0)
    run("cnn_sgd", cnn(), keras.optimizers.SGD(schedule(0.05, steps, steps // 10), momentum=0.9), images, labels, args, args.epochs)

    tokens, reversed_tokens = data.reversal(args.samples)
    keras.utils.set_random_seed(0)
    run(
        "transformer_adamw",
        transformer(),
        keras.optimizers.AdamW(schedule(2e-3, steps, steps // 10), weight_decay=0.01),
        tokens,
        reversed_tokens,
        args,
        args.epochs,
    )
    keras.utils.set_random_seed(0)
    run(
        "mlp_bfloat16",
        mlp_bfloat16(),
        keras.optimizers.Adam(1e-3),
        images.reshape(len(images), -1),
        labels,
        args,
        max(1, args.epochs // 2),
    )


if __name__ == "__main__":
    main()

"""Step sizes under mixed precision: float16 compute with loss scaling.

    python demo/mixed_precision.py --logdir logs/mixed_float16

With the `mixed_float16` policy Keras wraps the optimizer in a
`LossScaleOptimizer`; tb_stepsize unwraps it and records the updates the
inner optimizer applies.  Steps skipped because the scaled gradients
overflowed (the loss scale then halves) are not updates, so they are not
logged: the run's steps jump over them.  Variables stay float32 here, so
`lost_fraction` stays ~0; `demo/train.py`'s `mlp_bfloat16` shows the other
case, weights stored in bfloat16, where rounding swallows the updates.
"""

import argparse
import os
import sys

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import train as demo  # noqa: E402

import tb_stepsize  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--logdir", default="logs/mixed_float16")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)

    keras.mixed_precision.set_global_policy("mixed_float16")
    keras.utils.set_random_seed(0)
    x, y = data.shapes(1024)
    model = demo.cnn()
    # A huge initial loss scale: the first updates overflow and are skipped.
    optimizer = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-3), initial_scale=2.0**24)
    model.compile(optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = tb_stepsize.StepSizeCallback(args.logdir)
    model.fit(x, y, batch_size=64, epochs=args.epochs, verbose=0, callbacks=[callback])  # 16 steps per epoch
    callback.close()
    run = tb_stepsize.load(args.logdir)
    calls = args.epochs * 16
    print(
        f"{calls} train steps, {len(run.steps)} updates logged (the others overflowed and were skipped); "
        f"median lost_fraction {np.nanmedian(run.matrix('lost_fraction', 'value')):.3g}"
    )


if __name__ == "__main__":
    main()

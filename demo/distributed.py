"""Step sizes of a model trained with MirroredStrategy (data-parallel `fit`).

    python demo/distributed.py --logdir logs/distributed

The CPU is split into two logical devices so that this runs anywhere; with
GPUs, `tf.distribute.MirroredStrategy()` takes them all.  After each
all-reduce the replicas hold the same weights, so tb_stepsize records one
copy (replica 0's): the run is what one device would record with the same
global batch.
"""

import argparse
import os
import sys

import keras
import tensorflow as tf

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import data  # noqa: E402
import train as demo  # noqa: E402

import tb_stepsize  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--logdir", default="logs/distributed")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args(argv)

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])

    keras.utils.set_random_seed(0)
    x, y = data.shapes(1024)
    with strategy.scope():
        model = demo.cnn()
        model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    callback = tb_stepsize.StepSizeCallback(args.logdir, every_n_steps=4)
    model.fit(x, y, batch_size=64, epochs=args.epochs, verbose=0, callbacks=[callback])  # 16 steps per epoch
    callback.close()
    print(f"{strategy.num_replicas_in_sync} replicas; logged {callback.monitor.logged_steps} steps to {args.logdir}")


if __name__ == "__main__":
    main()

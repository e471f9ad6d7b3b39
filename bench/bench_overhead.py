"""Training-time overhead of StepSizeCallback, measured side by side.

    python bench/bench_overhead.py [--repeats 5] [--epochs 3] [--quick]

Each configuration trains the demo CNN from the same start; configurations
are interleaved and repeated, and the table reports per-step time (min and
median over repeats) and its ratio to plain `fit` measured in the same run.
A second table measures peak memory (max RSS of a fresh process) with and
without the callback on a model whose largest variable is 64 MiB.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "demo"))


def configs(tmp):
    import keras

    import tb_stepsize

    def ours(n):
        return lambda: [tb_stepsize.StepSizeCallback(tempfile.mkdtemp(dir=tmp), every_n_steps=n)]

    return {
        "fit": lambda: [],
        "every_n=1": ours(1),
        "every_n=10": ours(10),
        "every_n=100": ours(100),
        # Keras' weight histograms once per epoch = every `--steps` steps.
        "keras TB histograms": lambda: [keras.callbacks.TensorBoard(tempfile.mkdtemp(dir=tmp), histogram_freq=1)],
    }


class EpochTimer:
    """Wall time of each epoch (the first one, which traces, is dropped)."""

    def __new__(cls):
        import keras

        class Timer(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                self.times = []

            def on_epoch_begin(self, epoch, logs=None):
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch, logs=None):
                self.times.append(time.perf_counter() - self.start)

        return Timer()


def time_training(args):
    import keras

    import data
    import train as demo

    x, y = data.shapes(args.batch * args.steps)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for repeat in range(args.repeats):
            for name, make_callbacks in configs(tmp).items():
                keras.utils.set_random_seed(0)
                model = demo.cnn()
                model.compile(optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
                timer = EpochTimer()
                # The timer runs last, so other callbacks' epoch-end work is timed too.
                model.fit(x, y, batch_size=args.batch, epochs=1 + args.epochs, verbose=0, callbacks=make_callbacks() + [timer])
                results.setdefault(name, []).append(sum(timer.times[1:]) / (args.epochs * args.steps))
    base = min(results["fit"])
    base_med = statistics.median(results["fit"])
    print(
        f"\nDemo CNN ({args.batch}x24x24x1 batches), {args.epochs} timed epochs of {args.steps} steps "
        f"after one warm-up epoch, {args.repeats} interleaved repeats"
    )
    print(f"{'configuration':22s} {'ms/step min':>12s} {'median':>8s} {'ratio min':>10s} {'ratio med':>10s}")
    for name, times in results.items():
        print(
            f"{name:22s} {1e3 * min(times):12.2f} {1e3 * statistics.median(times):8.2f} "
            f"{min(times) / base:10.3f} {statistics.median(times) / base_med:10.3f}"
        )


MEMORY_SCRIPT = """
import resource, sys, tempfile, numpy as np, keras, tb_stepsize
keras.utils.set_random_seed(0)
model = keras.Sequential([keras.Input((4096,)), keras.layers.Dense(4096, name="big"), keras.layers.Dense(8, name="head")])
model.compile(optimizer=keras.optimizers.Adam(1e-4), loss="mse")
x = np.random.rand(64, 4096).astype("float32"); y = np.random.rand(64, 8).astype("float32")
callbacks = [tb_stepsize.StepSizeCallback(tempfile.mkdtemp())] if sys.argv[1] == "on" else []
model.fit(x, y, batch_size=16, epochs=2, verbose=0, callbacks=callbacks)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""


def measure_memory(args):
    largest = 4096 * 4096 * 4
    peaks = {"off": [], "on": []}
    for _ in range(args.memory_repeats):
        for mode in peaks:
            out = subprocess.run([sys.executable, "-c", MEMORY_SCRIPT, mode], capture_output=True, text=True, check=True)
            peaks[mode].append(int(out.stdout.split()[-1]))
    extra = min(peaks["on"]) - min(peaks["off"])
    print(f"\nPeak RSS, Dense 4096x4096 (largest variable {largest / 2**20:.0f} MiB), min of {args.memory_repeats} fresh processes each")
    print(f"without callback {min(peaks['off']) / 2**20:.0f} MiB, with every_n=1 {min(peaks['on']) / 2**20:.0f} MiB")
    print(f"extra {extra / 2**20:.0f} MiB = {extra / largest:.2f} x the largest variable")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="steps per epoch")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--memory_repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="seconds-long smoke run (no meaningful numbers)")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.epochs, args.steps, args.memory_repeats = 1, 1, 3, 0
    time_training(args)
    if args.memory_repeats:
        measure_memory(args)


if __name__ == "__main__":
    main()

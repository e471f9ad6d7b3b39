"""Training-side cost of tb_stepsize, measured side by side in one run.

    python bench/bench_overhead.py                  # full table (about 25 minutes on 2 cores)
    python bench/bench_overhead.py --models cnn     # one model
    python bench/bench_overhead.py --quick          # seconds-long smoke run, numbers meaningless
    python bench/bench_overhead.py --backends jax,torch --models cnn   # Keras' other backends

Each (backend, model) pair runs in its own process with `KERAS_BACKEND` set
(Keras reads it once); every ratio is to plain `fit` on the same backend,
measured in that process.  For each model (the demo CNN, the demo transformer, a CNN of about a
million parameters, a ~100M-parameter MLP), every configuration trains
from the same start; configurations are interleaved and repeated, the
first epoch (tracing) is dropped, each fit counts its fastest epoch (step
times on a shared machine jump between two speeds for whole epochs), and
each ratio pairs a configuration with the plain `fit` of the same repeat.
Ratio cells are `cpu/wall`: the median over the repeats of the paired
ratios of the process's CPU time (`time.process_time()`, all threads: the
steadier measure of the work added) and of wall time.  Columns:

* `every_n=1/10/100`: time per step with StepSizeCallback ÷ plain fit;
* `n=1 step,ratio`: every step, only `metrics=("step", "update_ratio")`;
* `keras_hist`: keras.callbacks.TensorBoard(histogram_freq=1) with epochs of
  `--steps` steps (weight histograms at that frequency) ÷ plain fit
  (TensorFlow only: that callback writes through TensorFlow);
* `first fit +s`: the set-up cost of the callback in wall seconds, measured
  in fresh processes: how much longer the first epoch of a fit with it
  (every step logged) takes than a plain fit's first epoch in the same
  process, less what its logged steps cost in a later epoch -- tracing and
  compiling the monitored train step -- as `cold/warm`: cold for the
  process's first callback, warm for a second model of the same shapes with
  a new callback, which finds the reduction kernels the first one compiled
  (a re-run notebook cell, the next run of a sweep); medians over
  `--memory_repeats` processes;
* `logged/floor`: extra time of one logged step ÷ one compiled pass that
  reads every trainable weight and optimizer slot once (the memory-traffic
  floor of any exact monitor; TensorFlow only, nan elsewhere);
* `bytes/step/layer`: event-file bytes per logged step per variable;
* `reads/100`: device-buffer pulls (each one host/device sync) per 100
  steps at every_n=1 -- unlogged steps never pull, logged ones are pulled
  in batches (JAX: effects barriers, at epoch ends; torch: copies of the
  waiting summaries to the host);
* `mem/largest`: extra peak RSS with the callback ÷ the largest variable
  (fresh processes, min over repeats; it includes a fixed ~0.2 GB of
  compiled reduction code, so it means something only for big variables).
"""

import argparse
import gc
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO = os.path.join(HERE, "..", "demo")
sys.path.insert(0, DEMO)


def build(name, quick):
    """(model, x, y, batch) for a model name; data is generated, never downloaded."""
    import keras
    import numpy as np

    import data
    import train as demo

    if name == "cnn":
        x, y = data.shapes(64 * 40)
        return demo.cnn(), x, y, 64
    if name == "transformer":
        x, y = data.reversal(64 * 40)
        return demo.transformer(), x, y, 64
    if name == "cnn1m":  # three 3x3 convolutions (32/64/96) on 32x32x3, a 256-unit dense layer: 0.96M parameters
        model = keras.Sequential(
            [
                keras.Input((32, 32, 3)),
                keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1"),
                keras.layers.MaxPooling2D(),
                keras.layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2"),
                keras.layers.MaxPooling2D(),
                keras.layers.Conv2D(96, 3, activation="relu", name="conv3"),
                keras.layers.Flatten(),
                keras.layers.Dense(256, activation="relu", name="dense"),
                keras.layers.Dense(10, name="logits"),
            ],
            name="cnn1m",
        )
        rng = np.random.default_rng(0)
        return model, rng.standard_normal((64 * 40, 32, 32, 3)).astype("float32"), rng.integers(0, 10, 64 * 40), 64
    if name == "mlp100m":
        width = 512 if quick else 8192
        model = keras.Sequential(
            [
                keras.Input((width,)),
                keras.layers.Dense(width, activation="relu", name="wide1"),
                keras.layers.Dense(width // 2, activation="relu", name="wide2"),
                keras.layers.Dense(10, name="out"),
            ],
            name="mlp100m",
        )
        rng = np.random.default_rng(0)
        return model, rng.standard_normal((16 * 40, width)).astype("float32"), rng.integers(0, 10, 16 * 40), 16
    raise ValueError(name)


def compile_model(model):
    import keras

    model.compile(optimizer=keras.optimizers.Adam(1e-4), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))


def timer_callback():
    import keras

    class Timer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.times, self.cpu_times = [], []

        def on_epoch_begin(self, epoch, logs=None):
            self.start, self.cpu_start = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.times.append(time.perf_counter() - self.start)
            self.cpu_times.append(time.process_time() - self.cpu_start)

    return Timer()


def memory_floor(model):
    """Seconds of one compiled pass reading every trainable weight and optimizer slot once."""
    import tensorflow as tf

    tensors = list(model.trainable_variables) + [v for v in model.optimizer.variables if len(v.shape) > 0]

    @tf.function
    def read_all():
        return tf.add_n([tf.reduce_sum(tf.cast(v, tf.float32)) for v in tensors])

    read_all()
    times = []
    for _ in range(20):
        start = time.perf_counter()
        read_all().numpy()
        times.append(time.perf_counter() - start)
    return min(times)


def time_model(name, args):
    import keras
    import numpy as np

    import tb_stepsize

    configs = ["fit", "every_n=1", "every_n=10", "every_n=100", "n=1 step,ratio", "keras_hist"]
    if keras.backend.backend() != "tensorflow":
        configs.remove("keras_hist")
    if name == "mlp100m" and not args.quick:
        # Keras' histogram summary one-hot encodes every weight into 30 float64
        # buckets: [67M, 30] doubles = 16 GB for the widest layer (OOM here).
        configs.remove("keras_hist")
    per_step = {c: [] for c in configs}  # wall seconds per step, one entry per repeat
    cpu_per_step = {c: [] for c in configs}  # process CPU seconds per step
    failed = {}
    extra = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for config in configs:
                keras.utils.set_random_seed(0)
                model, x, y, batch = build(name, args.quick)
                compile_model(model)
                log_dir = tempfile.mkdtemp(dir=tmp)
                callbacks = []
                if config.startswith("every_n"):
                    callbacks.append(tb_stepsize.StepSizeCallback(log_dir, every_n_steps=int(config.split("=")[1])))
                elif config == "n=1 step,ratio":
                    callbacks.append(tb_stepsize.StepSizeCallback(log_dir, metrics=("step", "update_ratio")))
                elif config == "keras_hist":
                    callbacks.append(keras.callbacks.TensorBoard(log_dir, histogram_freq=1))
                timer = timer_callback()
                n = args.steps * batch
                try:
                    model.fit(x[:n], y[:n], batch_size=batch, epochs=1 + args.epochs, verbose=0, callbacks=callbacks + [timer])
                except Exception as e:  # e.g. Keras' histograms run out of memory on the 100M model
                    failed[config] = type(e).__name__
                    continue
                finally:
                    for callback in callbacks:
                        if hasattr(callback, "close"):
                            callback.close()
                # The fastest timed epoch: step times on a shared machine jump
                # between two speeds for whole epochs, whatever runs.
                per_step[config].append(min(timer.times[1:]) / args.steps)
                cpu_per_step[config].append(min(timer.cpu_times[1:]) / args.steps)
                if config == "every_n=1":
                    files = glob.glob(os.path.join(log_dir, "events.out.tfevents.*"))
                    logged = callbacks[0].monitor.logged_steps
                    extra["bytes"] = sum(os.path.getsize(f) for f in files) / logged / len(model.trainable_variables)
                    extra["floor"] = memory_floor(model) if keras.backend.backend() == "tensorflow" else float("nan")
                    extra["layers"] = len(model.trainable_variables)
                    extra["params"] = sum(int(np.prod(v.shape)) for v in model.trainable_variables)
                    extra["reads"] = callbacks[0].monitor.host_reads * 100 / ((1 + args.epochs) * args.steps)
                del model, callbacks
                keras.backend.clear_session()
                gc.collect()
    def paired(times, config):
        return statistics.median(a / b for a, b in zip(times[config], times["fit"]))

    def cpu_wall(config):
        return f"{paired(cpu_per_step, config):.2f}/{paired(per_step, config):.2f}"

    ratio = {c: failed[c] if c in failed else cpu_wall(c) for c in configs}
    ratio.setdefault("keras_hist", "OOM" if keras.backend.backend() == "tensorflow" else "n/a")
    logged_extra = statistics.median(a - b for a, b in zip(per_step["every_n=1"], per_step["fit"]))
    return {
        "backend": keras.backend.backend(),
        "model": name,
        "params": extra["params"],
        "layers": extra["layers"],
        "ms/step": 1e3 * min(per_step["fit"]),
        **{c: ratio[c] for c in ("every_n=1", "every_n=10", "every_n=100", "n=1 step,ratio", "keras_hist")},
        "logged/floor": logged_extra / extra["floor"],
        "bytes/step/layer": extra["bytes"],
        "reads/100": extra["reads"],
        "logged_extra": logged_extra,
    }


CHILD_PREAMBLE = """
import gc, sys, tempfile
sys.path.insert(0, {bench!r})
import bench_overhead as b
import keras, tb_stepsize
"""


def in_fresh_process(body, name, args, *argv, **fields):
    """The words `body` (a script after `CHILD_PREAMBLE`, formatted with the model
    `name`, `args.quick` and `fields`) prints, run in a new Python process with `argv`."""
    script = (CHILD_PREAMBLE + body).format(bench=HERE, name=name, quick=args.quick, **fields)
    out = subprocess.run([sys.executable, "-c", script, *argv], capture_output=True, text=True, check=True)
    return out.stdout.split()


FIRST_FIT_SCRIPT = """
for monitored in (False, False, True, False, True):  # the first plain fit warms up Keras itself
    keras.utils.set_random_seed(0)
    model, x, y, batch = b.build({name!r}, {quick!r})
    b.compile_model(model)
    timer = b.timer_callback()
    callbacks = [tb_stepsize.StepSizeCallback(tempfile.mkdtemp())] if monitored else []
    model.fit(x[: {steps} * batch], y[: {steps} * batch], batch_size=batch, epochs=1, verbose=0, callbacks=callbacks + [timer])
    for callback in callbacks:
        callback.close()
    print(timer.times[0])
    del model, callbacks
    keras.backend.clear_session()
    gc.collect()  # not inside the next fit's first epoch
"""


def first_epochs(name, args):
    """First-epoch wall seconds `(plain, monitored, plain again, monitored again)` of
    each fresh process (see `first fit +s`)."""
    runs = []
    for _ in range(args.memory_repeats):
        words = in_fresh_process(FIRST_FIT_SCRIPT, name, args, steps=args.steps)
        runs.append(tuple(map(float, words[-4:])))
    return runs


def first_fit_cost(runs, steps, logged_extra):
    """`cold/warm` set-up seconds from `first_epochs`, less `steps` logged steps' own extra cost."""
    cold = [on - plain - steps * logged_extra for plain, on, _, _ in runs]
    warm = [on - plain - steps * logged_extra for _, _, plain, on in runs]
    return f"{statistics.median(cold):.1f}/{statistics.median(warm):.1f}"


MEMORY_SCRIPT = """
keras.utils.set_random_seed(0)
model, x, y, batch = b.build({name!r}, {quick!r})
b.compile_model(model)
callbacks = [tb_stepsize.StepSizeCallback(tempfile.mkdtemp())] if sys.argv[1] == "on" else []
model.fit(x[: 4 * batch], y[: 4 * batch], batch_size=batch, epochs=2, verbose=0, callbacks=callbacks)
largest = max(int(keras.ops.convert_to_numpy(v).nbytes) for v in model.trainable_variables)
# VmHWM, not ru_maxrss: Linux keeps ru_maxrss across fork and exec, so a child of
# this (large) bench process would report the parent's peak, whatever it used.
peak = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM:"))
print(peak, largest)
"""


def memory_ratio(name, args):
    peaks = {"off": [], "on": []}
    for _ in range(args.memory_repeats):
        for mode in peaks:
            peak, largest = map(int, in_fresh_process(MEMORY_SCRIPT, name, args, mode)[-2:])
            peaks[mode].append(peak)
    return (min(peaks["on"]) - min(peaks["off"])) / largest, min(peaks["off"])


COLUMNS = [  # name, width, format
    ("model", 12, "s"),
    ("backend", 10, "s"),
    ("params", 11, ",d"),
    ("layers", 6, "d"),
    ("ms/step", 8, ".1f"),
    ("every_n=1", 11, "s"),
    ("every_n=10", 11, "s"),
    ("every_n=100", 11, "s"),
    ("n=1 step,ratio", 14, "s"),
    ("keras_hist", 11, "s"),
    ("logged/floor", 12, ".1f"),
    ("bytes/step/layer", 16, ".0f"),
    ("reads/100", 9, ".1f"),
    ("first fit +s", 12, "s"),
    ("mem/largest", 11, ".2f"),
]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cnn,transformer,cnn1m,mlp100m")
    parser.add_argument("--backends", default="tensorflow", help="Keras backends, comma-separated (tensorflow,jax,torch)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs after one warm-up epoch")
    parser.add_argument("--steps", type=int, default=10, help="steps per epoch (= keras_hist frequency)")
    parser.add_argument("--memory_repeats", type=int, help="fresh processes for mem/largest and first fit +s (2; --quick: 0)")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, one repeat")
    parser.add_argument("--row_only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.epochs, args.steps = 1, 1, 3
    if args.memory_repeats is None:
        args.memory_repeats = 0 if args.quick else 2
    names = args.models.split(",")
    if not args.row_only:
        print(
            f"\nRatios to plain fit (fastest of {args.epochs} timed epochs of {args.steps} steps), "
            f"cpu/wall: medians of {args.repeats} interleaved repeats, each paired with its plain fit"
        )
        print(" ".join(f"{name:>{width}s}" for name, width, _ in COLUMNS), flush=True)
    backends = args.backends.split(",")
    if len(names) > 1 or backends != [os.environ.get("KERAS_BACKEND", "tensorflow")]:
        # One process per backend and model: the backend is read once per process,
        # and one model's memory never weighs on the next.
        for backend in backends:
            for name in names:
                argv = ["--models", name, "--backends", backend, "--row_only", "--repeats", str(args.repeats)]
                argv += ["--epochs", str(args.epochs), "--steps", str(args.steps), "--memory_repeats", str(args.memory_repeats)]
                env = dict(os.environ, KERAS_BACKEND=backend)
                subprocess.run([sys.executable, os.path.abspath(__file__), *argv] + ["--quick"] * args.quick, check=True, env=env)
        return
    (name,) = names
    # The fresh processes first, while this one is small: Keras keeps every model a
    # process built (about its weights and slots each, with or without the callback),
    # and on the 100M MLP this process and a child together outgrew the machine.
    memory = memory_ratio(name, args)[0] if args.memory_repeats else float("nan")
    epochs = first_epochs(name, args)
    row = time_model(name, args)
    row["mem/largest"] = memory
    row["first fit +s"] = first_fit_cost(epochs, args.steps, row["logged_extra"]) if epochs else "n/a"
    cells = (f"{row[c]:>{width}s}" if isinstance(row[c], str) else f"{row[c]:>{width}{spec}}" for c, width, spec in COLUMNS)
    print(" ".join(cells), flush=True)


if __name__ == "__main__":
    main()

"""Cost of tb_stepsize per watched variable, on models with many small variables.

    python bench/bench_many_variables.py                  # 250, 1000, 2000 variables (about 25 minutes on 2 cores)
    python bench/bench_many_variables.py --vars 20 --quick  # seconds-long smoke run, numbers meaningless

A custom training loop (Keras' functional API itself takes many minutes to
build a 2,000-branch model) trains N variables of 16 elements each with Adam;
the loss touches every variable, so every step updates all of them.  For each
N the same process builds three copies -- plain, `StepSizeMonitor`
every_n_steps=100 and every_n_steps=1 -- traces each (the first call), then
times blocks of steps in an order that rotates per repeat.  Prints the
tracing time, the plain step time and, per configuration, time per step ÷
plain (fastest block ÷ fastest block / median of the ratios within a repeat)
and the extra time per variable per step.
"""

import argparse
import os
import statistics
import tempfile
import time

CONFIGS = ("plain", "every_n=100", "every_n=1")


def build(n, size, config, log_dir, steps):
    """A compiled train step over `n` variables of `size` elements, and its monitor (or None)."""
    import keras
    import numpy as np
    import tensorflow as tf

    import tb_stepsize

    rng = np.random.default_rng(0)
    variables = [keras.Variable(rng.normal(size=size).astype("float32"), name=f"w{i}") for i in range(n)]
    optimizer = keras.optimizers.Adam(1e-3)
    optimizer.build(variables)
    monitor = None
    if config != "plain":
        every = int(config.split("=")[1])
        monitor = tb_stepsize.StepSizeMonitor(
            log_dir, optimizer, every_n_steps=every, steps_per_call=steps, on_error="raise"
        )
    x = tf.constant(rng.normal(size=size).astype("float32"))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.add_n([tf.reduce_sum(tf.square(v.value * x - 1.0)) for v in variables])
        optimizer.apply(tape.gradient(loss, [v.value for v in variables]), variables)
        return loss

    return step, monitor


def timed_block(step, monitor, steps):
    start = time.perf_counter()
    for _ in range(steps):
        loss = step()
    if monitor is not None:
        monitor.after_steps(steps)
    loss.numpy()
    return (time.perf_counter() - start) / steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--vars", default="250,1000,2000", help="comma-separated numbers of variables")
    parser.add_argument("--size", type=int, default=16, help="elements per variable")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--steps", type=int, default=30, help="steps per timed block")
    parser.add_argument("--quick", action="store_true", help="smoke run: one short repeat")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.steps = 1, 3
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    print(f"\nN variables of {args.size} elements, Adam, custom loop; {args.repeats} interleaved repeats of "
          f"{args.steps} steps; ratio = time per step ÷ plain (min ÷ min / median of ratios); "
          "µs/var = extra time per variable per step (min)")
    header = f"{'variables':>9s} {'trace s plain/n=1':>18s} {'plain ms':>9s} "
    print(header + " ".join(f"{c + ' ratio':>18s} {'µs/var':>7s}" for c in CONFIGS[1:]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for n in (int(v) for v in args.vars.split(",")):
            built, traced = {}, {}
            for config in CONFIGS:
                step, monitor = build(n, args.size, config, tempfile.mkdtemp(dir=tmp), args.steps)
                start = time.perf_counter()
                step().numpy()
                traced[config] = time.perf_counter() - start
                built[config] = step, monitor
            seconds = {c: [] for c in CONFIGS}
            for repeat in range(args.repeats):
                for config in CONFIGS[repeat % 3 :] + CONFIGS[: repeat % 3]:
                    seconds[config].append(timed_block(*built[config], args.steps))
            for _, monitor in built.values():
                if monitor is not None:
                    monitor.close()
            plain = seconds["plain"]
            cells = []
            for config in CONFIGS[1:]:
                ratios = [a / b for a, b in zip(seconds[config], plain)]
                per_var = 1e6 * (min(seconds[config]) - min(plain)) / n
                cells.append(f"{min(seconds[config]) / min(plain):8.2f} / {statistics.median(ratios):5.2f} {per_var:7.1f}")
            trace = f"{traced['plain']:.1f} / {traced['every_n=1']:.1f}"
            print(f"{n:9d} {trace:>18s} {1e3 * min(plain):9.2f} " + " ".join(cells), flush=True)


if __name__ == "__main__":
    main()

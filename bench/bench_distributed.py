"""Training-side cost of tb_stepsize under MirroredStrategy, side by side with one device.

    python bench/bench_distributed.py                 # demo CNN, 6 repeats (about 10 minutes on 2 cores)
    python bench/bench_distributed.py --quick         # seconds-long smoke run, numbers meaningless

The CPU is split into 2 logical devices.  Each repeat trains plain `fit`,
StepSizeCallback(every_n_steps=1) and (every_n_steps=100), once under
MirroredStrategy over both devices and once on one of them, from the same
start, in an order that rotates.  A fit's time per step is that of its
fastest epoch after the first (tracing): on two logical CPUs sharing two
cores, whole epochs run either fast or about 1.7x slower, whatever is being
measured.  With the default sizes every_n_steps=100 logs no step after the
first epoch, so it measures the hooks compiled into the train step.  Prints
the plain step time and, per configuration, its time per step ÷ plain `fit`
of the same strategy twice: fastest repeat ÷ fastest repeat, and the median
over repeats of the ratio within a repeat.
"""

import argparse
import contextlib
import gc
import statistics
import tempfile

from bench_overhead import build, compile_model, timer_callback


CONFIGS = ("fit", "every_n=1", "every_n=100")


def time_per_step(name, strategy, config, args, log_dir):
    """Seconds per step of one fit's fastest epoch after the tracing one."""
    import keras

    import tb_stepsize

    keras.utils.set_random_seed(0)
    with strategy.scope() if strategy is not None else contextlib.nullcontext():
        model, x, y, batch = build(name, args.quick)
        compile_model(model)
    callbacks = [timer_callback()]
    if config != "fit":
        callbacks.append(tb_stepsize.StepSizeCallback(log_dir, every_n_steps=int(config.split("=")[1])))
    n = args.steps * batch
    model.fit(x[:n], y[:n], batch_size=batch, epochs=1 + args.epochs, verbose=0, callbacks=callbacks)
    if config != "fit":
        callbacks[1].close()
    fastest = min(callbacks[0].times[1:])
    del model, callbacks
    keras.backend.clear_session()
    gc.collect()
    return fastest / args.steps


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cnn")
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=4, help="timed epochs after one warm-up epoch")
    parser.add_argument("--steps", type=int, default=20, help="steps per epoch")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny sizes, one repeat")
    args = parser.parse_args()
    if args.quick:
        args.repeats, args.epochs, args.steps = 1, 1, 3

    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    strategies = {"mirrored x2": tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), "one device": None}

    print(f"\nTime per step ÷ plain fit (min ÷ min / median of ratios) over {args.repeats} interleaved repeats; "
          f"fastest of {args.epochs} epochs of {args.steps} steps")
    print(f"{'model':>12s} {'strategy':>12s} {'plain ms':>9s} " + " ".join(f"{c:>15s}" for c in CONFIGS[1:]), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            seconds = {(s, c): [] for s in strategies for c in CONFIGS}
            for repeat in range(args.repeats):
                for s, strategy in strategies.items():
                    for c in CONFIGS[repeat % 3 :] + CONFIGS[: repeat % 3]:  # no fixed order
                        log_dir = tempfile.mkdtemp(dir=tmp)
                        seconds[s, c].append(time_per_step(name, strategy, c, args, log_dir))
            for s in strategies:
                plain = seconds[s, "fit"]
                cells = []
                for c in CONFIGS[1:]:
                    ratios = [a / b for a, b in zip(seconds[s, c], plain)]
                    cells.append(f"{min(seconds[s, c]) / min(plain):6.2f} / {statistics.median(ratios):5.2f}")
                print(f"{name:>12s} {s:>12s} {1e3 * min(plain):9.1f} " + " ".join(f"{c:>15s}" for c in cells), flush=True)


if __name__ == "__main__":
    main()

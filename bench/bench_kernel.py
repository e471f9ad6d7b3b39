"""Per-op profile of the statistics kernel: nanoseconds per element, per framework.

    python bench/bench_kernel.py                   # TF (XLA), JAX (jit), torch (eager); ~2 minutes
    python bench/bench_kernel.py --quick           # seconds-long smoke run, numbers meaningless

Where a logged update's time goes, op by op, on one chunk of a big variable
(`reduction.CHUNK` = 262,144 float32 elements), compiled the way each
backend runs it.  Rows (each a separate compiled function; time ÷ elements, less the `call` row's):

* `call`: a function that touches one element -- the fixed cost of one call
  (dispatch, launch, the result back), printed as is and subtracted from the rest;
* `read`: one sum over the chunk (the memory-traffic floor);
* `extremes+sums`: exact min/max (bit patterns) and the float64/blockwise sums of x and x²;
* `fine bins`: the one-pass bin index of every element (elementwise integer ops);
* `bincount`: counting those indices (a scatter-add into 32,643 bins);
* `OnePass.of`: all of the above for one metric, fused;
* `Adam parts`: effective_lr, update and normalized gradient from m, v, g;
* `update, 3 metrics`: `update_terms` + `OnePass.of` of step, effective_lr and
  intended_step + the per-layer sums: what one chunk of a logged Adam update costs.

Each row is timed interleaved with the others over `--repeats` rounds and the
median of the rounds is printed, as process CPU time and wall time (ns per element).
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, ".."))

from tb_stepsize import stats_kernel, update_stats  # noqa: E402


def adam_parts(ops, m, v, g):
    """Adam's parts as `optimizer_rules` computes them (alpha, eps fixed)."""
    alpha, eps, correction = 1e-3, 1e-7, 0.5
    denom = ops.sqrt(v) + eps
    safe = ops.where(v > 0, v, 1.0)
    return {
        "effective_lr": alpha / denom,
        "update": (m * alpha) / denom,
        "normalized_grad": ops.where(v > 0, g / ops.sqrt(safe / correction), 0.0),
    }


def kernels(ops):
    """name -> function of (x, m, v, g) built from the neutral code on `ops`."""

    def extremes_sums(x, m, v, g):
        bits = ops.abs_bits(x)
        finite = bits < stats_kernel.INF_BITS
        xf = ops.float_of_bits(ops.where(finite, bits, 0))
        return ops.min(bits), ops.max(bits), ops.accurate_sum(xf), ops.accurate_sum(xf * xf)

    def update(x, m, v, g):
        parts = adam_parts(ops, m, v, g)
        metrics, terms = update_stats.update_terms(ops, x, x - parts["update"], parts, 1e-5)
        summaries = [stats_kernel.OnePass.of(ops, y).as_tuple() for y in metrics.values()]
        return summaries, [ops.accurate_sum(t) for t in terms.values()]

    return {
        "call": lambda x, m, v, g: x[:1] + 1,
        "read": lambda x, m, v, g: ops.accurate_sum(x),
        "extremes+sums": extremes_sums,
        "fine bins": lambda x, m, v, g: ops.sum(stats_kernel.fine_bins(ops, ops.abs_bits(x)), 0),
        "bincount": lambda x, m, v, g: ops.bincount(stats_kernel.fine_bins(ops, ops.abs_bits(x)), stats_kernel.FINE_BINS),
        "OnePass.of": lambda x, m, v, g: stats_kernel.OnePass.of(ops, x).as_tuple(),
        "Adam parts": lambda x, m, v, g: adam_parts(ops, m, v, g),
        "update, 3 metrics": update,
    }


def backend_tf():
    import tensorflow as tf

    from tb_stepsize.ops_tf import OPS

    def compile_(fn):
        compiled = tf.function(fn, jit_compile=True)
        return lambda *a: tf.nest.map_structure(lambda t: t.numpy(), compiled(*a))

    return "tensorflow (XLA)", OPS, tf.constant, compile_


def backend_jax():
    import jax

    from tb_stepsize.ops_jax import OPS

    def compile_(fn):
        compiled = jax.jit(fn)
        return lambda *a: jax.block_until_ready(compiled(*a))

    return "jax (jit)", OPS, jax.numpy.asarray, compile_


def backend_torch():
    import torch

    from tb_stepsize.ops_torch import OPS

    return "torch (eager)", OPS, torch.as_tensor, lambda fn: fn


BACKENDS = {"tensorflow": backend_tf, "jax": backend_jax, "torch": backend_torch}


def profile(name, n, repeats, calls):
    label, ops, array, compile_ = BACKENDS[name]()
    rng = np.random.default_rng(0)
    x, m, g = (array(rng.standard_normal(n).astype(np.float32)) for _ in range(3))
    v = array((rng.standard_normal(n) ** 2).astype(np.float32))
    fns = {k: compile_(f) for k, f in kernels(ops).items()}
    for fn in fns.values():
        fn(x, m, v, g)  # compile / warm up
    cpu, wall = {k: [] for k in fns}, {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            c, w = time.process_time(), time.perf_counter()
            for _ in range(calls):
                fn(x, m, v, g)
            cpu[k].append((time.process_time() - c) / calls / n * 1e9)
            wall[k].append((time.perf_counter() - w) / calls / n * 1e9)
    return label, {k: (statistics.median(cpu[k]), statistics.median(wall[k])) for k in fns}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="tensorflow,jax,torch")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    n = 4096 if args.quick else 1 << 18
    repeats, calls = (1, 1) if args.quick else (args.repeats, args.calls)
    results = {}
    for name in args.backends.split(","):
        try:
            label, rows = profile(name, n, repeats, calls)
        except ImportError as e:
            print(f"{name}: not installed ({e})")
            continue
        results[label] = rows
    labels = list(results)
    print(f"\nns per element (cpu/wall), one chunk of {n:,} float32 elements, median of {repeats} rounds\n")
    print("| op | " + " | ".join(labels) + " |")
    print("|---|" + "---|" * len(labels))
    for op in kernels(None):
        base = {l: (0.0, 0.0) if op == "call" else results[l]["call"] for l in labels}
        cells = [f"{results[l][op][0] - base[l][0]:.2f} / {results[l][op][1] - base[l][1]:.2f}" for l in labels]
        print(f"| {op} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()

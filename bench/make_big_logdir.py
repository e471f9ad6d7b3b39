"""Writes a big logdir for `bench_plugin.py`.

    python bench/make_big_logdir.py OUT [--layers 200] [--steps 10000]

Two runs side by side under OUT:

* `stepsize/`: one training run as `StepSizeCallback` would log it with an
  optimizer that has no update rule of its own (metrics `step` and
  `update_ratio`), `--layers` variables x `--steps` logged steps, written
  with `tb_stepsize.summary.StepWriter`; histograms of `step` per layer and
  step unless `--no-histograms`.
* `histograms/`: TensorBoard histogram-plugin data with the same number of
  (run, tag, step) samples: one tag per layer (`layer_000`, ...), one
  `[--tb-buckets, 3]` histogram per tag and step (30 buckets is TensorBoard's
  default).

Values are random but plausible; only sizes matter to the benchmark.
"""

import argparse
import os
import sys
import time

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import plugin_helpers as h  # noqa: E402  -- the test suite's synthetic payloads
from tb_stepsize.summary import StepWriter  # noqa: E402

METRICS = h.METRICS
VARIANTS = 64  # distinct random payloads cycled through (generation speed)


def layer_list(n):
    layers = []
    for i in range(n):
        kind = "kernel" if i % 2 == 0 else "bias"
        shape = [256, 256] if kind == "kernel" else [256]
        layers.append({"path": f"block_{i // 2:03d}/dense/{kind}", "shape": shape, "dtype": "float32"})
    return layers


def write_stepsize_run(run_dir, n_layers, n_steps, histograms, rng, progress):
    layers = layer_list(n_layers)
    writer = StepWriter(run_dir, layers, METRICS, "SGD", histograms=histograms)
    stats_pool = [
        {m: h.random_stats(rng, n_layers, m) for m in METRICS} for _ in range(VARIANTS)
    ]
    hist_pool = [{"step": h.random_hists(rng, n_layers)} for _ in range(VARIANTS)] if histograms else [{}]
    for step in range(n_steps):
        writer.write(
            step,
            stats_pool[step % VARIANTS],
            hist_pool[step % len(hist_pool)],
            wall_time=1.7e9 + step,
        )
        progress("stepsize", step, n_steps)
    writer.close()


def write_histogram_run(run_dir, n_layers, n_steps, buckets, rng, progress):
    writer = EventFileWriter(run_dir, max_queue_size=100, flush_secs=120)
    tags = [f"layer_{i:03d}" for i in range(n_layers)]
    hist_metadata = histogram_metadata.create_summary_metadata(display_name="", description="")
    hist_metadata.data_class = summary_pb2.DATA_CLASS_TENSOR
    pool = []
    for _ in range(VARIANTS):
        edges = np.sort(rng.normal(0, 1e-3, buckets + 1))
        counts = rng.integers(0, 2000, buckets).astype(np.float64)
        pool.append(tensor_util.make_tensor_proto(np.stack([edges[:-1], edges[1:], counts], axis=1)))
    for step in range(n_steps):
        values = []
        for i, tag in enumerate(tags):
            value = summary_pb2.Summary.Value(tag=tag)
            value.tensor.CopyFrom(pool[(step * 7 + i) % VARIANTS])
            if step == 0:
                value.metadata.CopyFrom(hist_metadata)
            values.append(value)
        writer.add_event(
            event_pb2.Event(wall_time=1.7e9 + step, step=step, summary=summary_pb2.Summary(value=values))
        )
        progress("histograms", step, n_steps)
    writer.close()


def _write(kind, out, layers, steps, histograms, tb_buckets, seed, verbose):
    rng = np.random.default_rng(seed)
    start = time.monotonic()

    def progress(name, step, total):
        if verbose and (step + 1) % max(1, total // 10) == 0:
            print(f"  {name}: {step + 1}/{total} steps ({time.monotonic() - start:.0f} s)", flush=True)

    if kind == "stepsize":
        write_stepsize_run(os.path.join(out, "stepsize"), layers, steps, histograms, rng, progress)
    else:
        write_histogram_run(os.path.join(out, "histograms"), layers, steps, tb_buckets, rng, progress)


def make(out, layers, steps, histograms=True, tb_buckets=30, seed=0, verbose=True, jobs=2):
    """Writes both runs (in parallel processes if `jobs` > 1)."""
    start = time.monotonic()
    args = [(kind, out, layers, steps, histograms, tb_buckets, seed + i, verbose) for i, kind in enumerate(("stepsize", "histograms"))]
    if jobs > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(2) as pool:
            for future in [pool.submit(_write, *a) for a in args]:
                future.result()
    else:
        for a in args:
            _write(*a)
    if verbose:
        print(f"wrote {out} in {time.monotonic() - start:.0f} s", flush=True)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out")
    parser.add_argument("--layers", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--no-histograms", action="store_true", help="no per-layer histograms in the stepsize run")
    parser.add_argument("--tb-buckets", type=int, default=30)
    parser.add_argument("--jobs", type=int, default=2, help="processes (one per run)")
    args = parser.parse_args(argv)
    if os.path.exists(args.out) and os.listdir(args.out):
        sys.exit(f"{args.out} exists and is not empty")
    make(args.out, args.layers, args.steps, not args.no_histograms, args.tb_buckets, jobs=args.jobs)


if __name__ == "__main__":
    main()

"""Training-side cost of tb_stepsize.torch.StepSizeMonitor, measured side by side in one run.

    python bench/bench_torch_overhead.py            # full table (about 3 minutes on 2 shared cores)
    python bench/bench_torch_overhead.py --smoke    # a few seconds, numbers meaningless (CI)

Models: `cnn1m`, three 3x3 convolutions (32/64/96) on 32x32x3 with a
256-unit dense layer (0.96M parameters, batch 64), and `transformer`, two
encoder layers (d=64, 4 heads) on sequences of 16 tokens (batch 64); both
with Adam, on generated data.  Every configuration -- the plain loop, and
the monitor logging every step, every 10th and every 100th -- trains the
same steps from the same start; configurations are interleaved within each
repeat, and each ratio pairs a configuration with the plain loop of the
same repeat.  A cell is `cpu/wall`: the median over repeats of the paired
ratios of process CPU time (`time.process_time()`) and of wall time, for
`--steps` timed steps after 5 warm-up steps, closing the monitor (its last
pull and write) included.  Further columns: `reads/100` host pulls per 100
steps at every_n=1; `copy/largest` the most parameter bytes the monitor
held copied at once (small-parameter snapshot + one big parameter) over
the largest parameter's bytes.  torch runs on one thread.
"""

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "demo"))
from torch_models import Transformer, cnn1m  # noqa: E402


def build(name, steps):
    """(model, batches, loss function); data generated, never downloaded."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    if name == "cnn1m":
        data = [(torch.randn(64, 3, 32, 32, generator=g), torch.randint(0, 10, (64,), generator=g)) for _ in range(8)]
        return cnn1m(), data, torch.nn.functional.cross_entropy
    tokens = [torch.randint(0, 32, (64, 16), generator=g) for _ in range(8)]
    data = [(x, x.flip(1)) for x in tokens]  # reverse the sequence
    model = Transformer()
    return model, data, lambda out, y: torch.nn.functional.cross_entropy(out.reshape(-1, model.vocab), y.reshape(-1))


def run(model, data, loss_fn, steps, every_n, tmp):
    """Process-CPU and wall seconds per step for `steps` steps after 5 warm-up steps."""
    import tb_stepsize.torch as tbs

    opt = torch.optim.Adam(model.parameters(), 1e-3)
    monitor = tbs.StepSizeMonitor(tempfile.mkdtemp(dir=tmp), opt, model=model, every_n_steps=every_n) if every_n else None

    def step(i):
        x, y = data[i % len(data)]
        loss = loss_fn(model(x), y)
        loss.backward()
        opt.step()
        opt.zero_grad()
        if monitor:
            monitor.after_step(loss=loss)

    for i in range(5):
        step(i)
    cpu, wall = time.process_time(), time.perf_counter()
    for i in range(5, 5 + steps):
        step(i)
    if monitor:
        monitor.close()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    return cpu / steps, wall / steps, monitor


def time_model(name, args):
    model, data, loss_fn = build(name, args.steps)
    start = copy.deepcopy(model.state_dict())
    configs = {"plain": 0, "every_n=1": 1, "every_n=10": 10, "every_n=100": 100}
    cpu = {c: [] for c in configs}
    wall = {c: [] for c in configs}
    extra = {}
    largest = max(p.numel() * p.element_size() for p in model.parameters())
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):
            for config, every_n in configs.items():
                model.load_state_dict(start)
                c, w, monitor = run(model, data, loss_fn, args.steps, every_n, tmp)
                cpu[config].append(c)
                wall[config].append(w)
                if every_n == 1:
                    extra["reads"] = monitor.host_reads * 100 / (5 + args.steps)
                    extra["copy"] = monitor.peak_snapshot_bytes / largest

    def cell(config):
        ratio = lambda t: statistics.median(a / b for a, b in zip(t[config], t["plain"]))  # noqa: E731
        return f"{ratio(cpu):.2f}/{ratio(wall):.2f}"

    return {
        "model": name,
        "params": sum(p.numel() for p in model.parameters()),
        "layers": len(list(model.parameters())),
        "ms/step": 1e3 * min(wall["plain"]),
        **{c: cell(c) for c in configs if c != "plain"},
        "reads/100": extra["reads"],
        "copy/largest": extra["copy"],
    }


COLUMNS = [("model", 12, "s"), ("params", 10, ",d"), ("layers", 6, "d"), ("ms/step", 8, ".1f"), ("every_n=1", 11, "s"),
           ("every_n=10", 11, "s"), ("every_n=100", 11, "s"), ("reads/100", 9, ".1f"), ("copy/largest", 12, ".2f")]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="cnn1m,transformer")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=100, help="timed steps per configuration and repeat")
    parser.add_argument("--smoke", action="store_true", help="a few seconds: 12 steps, one repeat")
    args = parser.parse_args()
    if args.smoke:
        args.repeats, args.steps = 1, 12
    torch.set_num_threads(1)
    import warnings

    warnings.filterwarnings("ignore")  # training-time findings of the benchmark models
    print("".join(f"{name:>{width}} " for name, width, _ in COLUMNS))
    for name in args.models.split(","):
        row = time_model(name, args)
        print("".join(f"{row[n]:>{w}{f}} " for n, w, f in COLUMNS), flush=True)


if __name__ == "__main__":
    main()

"""Long and wide run: STEPS logged steps x LAYERS layers in one run, served by a real TensorBoard.

    python bench/bench_longrun.py [--steps 100000] [--layers 500] [--out DIR]
        [--load-fast true|false] [--histogram-layers 2] [--max-rss-gb 10] [--keep]

1. Writes the run with `tb_stepsize.summary.StepWriter` as a monitor would
   (metrics `step` and `update_ratio`; histograms only for the first
   `--histogram-layers` layers), cycling through 64 random payloads, and
   prints the generation time and size.  An existing complete run in
   `--out` is reused.
2. Prints the memory the plugin needs for this run and the bound its caches
   imply (see `tb_stepsize/runstore.py`, "Caching and memory").
3. Starts `tensorboard` on 127.0.0.1 (`--load_fast` as given), polls `tags`
   until the whole run is loaded, then times `tags`, `findings` (first, with
   every column cold), `heatmap?max_steps=2000` of statistics the rules do
   not read (cold and warm), zoomed to 100 steps (`start_step`/`end_step`),
   `layer?max_steps=2000` (cold, warm, and another
   layer), `cell` (a tooltip's hover over one pooled column) and
   `histogram`, checks that answers are pooled to at most `max_steps`
   columns, and prints the peak RSS (VmHWM) of the tensorboard process and
   of its data server.  A watchdog kills TensorBoard if its RSS passes
   `--max-rss-gb` (the machine is shared) and reports it.

The test suite runs a smoke of this (2,000 steps x 50 layers) in
tests/test_robustness_concurrent.py.
"""

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from urllib.parse import urlencode

import numpy as np
import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))

import robustness_helpers as rh  # noqa: E402
from tb_stepsize import metadata  # noqa: E402
from tb_stepsize.summary import StepWriter  # noqa: E402

METRICS = ["step", "update_ratio"]
VARIANTS = 64
MAX_STEPS = 2000
BASE = rh.BASE


def generate(run_dir, n_steps, n_layers, hist_layers):
    rng = np.random.default_rng(0)
    pool = []
    for _ in range(VARIANTS):
        base = 10.0 ** rng.uniform(-7, -3, size=(n_layers, 1))
        quant = np.sort(rng.uniform(0.1, 3.0, size=(n_layers, 9)), axis=1) * base
        elem = np.concatenate([quant, quant[:, 4:5] * 1.05, quant[:, 4:5] * 1.3, np.full((n_layers, 1), 0.01), np.zeros((n_layers, 1))], axis=1)
        hists = {}
        if hist_layers:
            h = np.zeros((n_layers, metadata.HIST_BINS), np.int64)
            h[:hist_layers, 200:216] = rng.integers(1, 5000, size=(hist_layers, 16))
            hists = {"step": h}
        pool.append(({"step": elem.astype(np.float32), "update_ratio": rng.uniform(1e-6, 1e-2, (n_layers, 1)).astype(np.float32)}, hists))
    writer = StepWriter(run_dir, rh.layer_list(n_layers), METRICS, "SGD", histograms=bool(hist_layers))
    started = time.monotonic()
    for step in range(1, n_steps + 1):
        stats, hists = pool[step % VARIANTS]
        writer.write(step, stats, hists, wall_time=1.7e9 + step)
        if step % max(1, n_steps // 10) == 0:
            print(f"  written {step}/{n_steps} steps ({time.monotonic() - started:.0f} s)", flush=True)
    writer.close()
    with open(os.path.join(run_dir, "COMPLETE"), "w") as f:
        f.write(f"{n_steps} {n_layers} {hist_layers}\n")
    return time.monotonic() - started


def memory_bound(n_steps, n_layers):
    """(bytes the plugin keeps per (metric, stat) matrix of this run, transient bytes while reading one)."""
    cells = n_steps * n_layers
    matrix = cells * 5  # float32 values + a 1-byte mask
    transient = cells * 4 + n_steps * 200  # the provider's arrays of one tag (+ per-step objects)
    return matrix, transient


class Watchdog(threading.Thread):
    def __init__(self, tb, limit_kb):
        super().__init__(daemon=True)
        self.tb, self.limit_kb, self.fired, self.stop = tb, limit_kb, None, threading.Event()

    def run(self):
        while not self.stop.wait(0.5):
            for pid, (name, _hwm, rss) in self.tb.peak_rss_kb().items():
                if rss > self.limit_kb:
                    self.fired = f"{name} (pid {pid}) reached {rss / 2**20:.1f} GiB RSS"
                    self.tb.proc.kill()
                    return


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 0


def timed(session, tb, route, params):
    started = time.perf_counter()
    response = session.get(tb.url(f"{BASE}/{route}?" + urlencode(params)), timeout=3600)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{route} {params}: {response.status_code} {response.text[:300]}")
    return response, elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--layers", type=int, default=500)
    parser.add_argument("--histogram-layers", type=int, default=2)
    parser.add_argument("--out", help="log directory (default: a temporary one, removed unless --keep)")
    parser.add_argument("--load-fast", default="true", choices=["true", "false"])
    parser.add_argument("--max-rss-gb", type=float, default=10.0)
    parser.add_argument("--keep", action="store_true")
    parser.add_argument("--force", action="store_true", help="start TensorBoard even if memory looks short")
    args = parser.parse_args(argv)

    out = args.out or tempfile.mkdtemp(prefix="tb_stepsize_longrun_")
    run_dir = os.path.join(out, "long")
    marker = os.path.join(run_dir, "COMPLETE")
    spec = f"{args.steps} {args.layers} {args.histogram_layers}\n"
    if os.path.exists(marker) and open(marker).read() == spec:
        print(f"reusing {run_dir}")
    else:
        shutil.rmtree(run_dir, ignore_errors=True)
        os.makedirs(run_dir)
        print(f"writing {args.steps} steps x {args.layers} layers to {run_dir}", flush=True)
        seconds = generate(run_dir, args.steps, args.layers, args.histogram_layers)
        print(f"generation: {seconds:.1f} s ({seconds / args.steps * 1000:.2f} ms per logged step)")
    size = sum(os.path.getsize(p) for p in rh.event_files(run_dir))
    print(f"event files: {size / 2**20:.0f} MiB ({size / args.steps / 1024:.1f} KiB per step)")

    matrix, transient = memory_bound(args.steps, args.layers)
    budget = float(os.environ.get("TB_STEPSIZE_CACHE_MB", "1024")) * 2**20
    bound = 1.75 * budget + max(0, matrix - budget)
    print(
        f"plugin memory: one (metric, stat) matrix is {matrix / 2**30:.2f} GiB, the run index "
        f"{args.steps * args.layers / 2**30:.2f} GiB; caches bound ~1.75 x {budget / 2**30:.2f} GiB "
        f"(+ one matrix above the budget) = {bound / 2**30:.2f} GiB, + ~{transient / 2**30:.2f} GiB "
        "of provider arrays while one tag is read"
    )

    need = bound + transient + (2 * size if args.load_fast == "false" else 0)  # + the Python loader's copy
    available = mem_available()
    print(f"expected TensorBoard process size: ~{(need + 0.5 * 2**30) / 2**30:.1f} GiB; available now: {available / 2**30:.1f} GiB")
    if need > min(available, args.max_rss_gb * 2**30) and not args.force:
        sys.exit("not starting TensorBoard: not enough memory (the machine is shared); --force to try anyway")

    tb = rh.TensorBoard(out, os.path.join(out, "tensorboard.log"), f"--load_fast={args.load_fast}")
    watchdog = Watchdog(tb, args.max_rss_gb * 2**20)
    watchdog.start()
    session = requests.Session()
    results = {}
    try:
        started = time.perf_counter()
        last_read = None
        while True:
            if tb.proc.poll() is not None:
                raise RuntimeError(watchdog.fired or "tensorboard exited; see tensorboard.log")
            try:
                response, elapsed = timed(session, tb, "tags", {})
                entry = response.json().get("long")
                if entry:
                    last_read = elapsed
                    print(f"  tags after {time.perf_counter() - started:.0f} s: {entry['num_steps']} steps (answer took {elapsed:.1f} s)", flush=True)
                    if entry["num_steps"] == args.steps:
                        break
                    if entry["problems"]:
                        raise RuntimeError(f"the plugin cannot read the run: {entry['problems']}")
            except requests.RequestException:
                pass
            time.sleep(5)
        results["loaded (TensorBoard + first complete read)"] = time.perf_counter() - started
        results["tags, first complete read of the run"] = last_read
        results["tags, warm"] = timed(session, tb, "tags", {})[1]
        # First, while every column is cold: the rules read step's max, p50,
        # zero_fraction and nonfinite and update_ratio's value.
        response, results["findings, cold (5 columns)"] = timed(session, tb, "findings", {"run": "long"})
        assert "findings" in response.json()
        results["findings, warm"] = timed(session, tb, "findings", {"run": "long"})[1]
        # Statistics the rules did not read, so these heatmaps are cold.
        params = {"run": "long", "metric": "step", "stat": "p95", "max_steps": MAX_STEPS}
        response, results["heatmap max_steps=2000, cold"] = timed(session, tb, "heatmap", params)
        out_json = response.json()
        assert len(out_json["steps"]) <= MAX_STEPS and all(len(r) == len(out_json["steps"]) for r in out_json["values"])
        results["heatmap max_steps=2000, warm"] = timed(session, tb, "heatmap", params)[1]
        results["heatmap stat=p05, cold"] = timed(session, tb, "heatmap", dict(params, stat="p05"))[1]
        # Zoomed into 100 steps (the step axis's drag): only that range is pooled.
        middle = args.steps // 2 + 1
        zparams = dict(params, start_step=middle, end_step=middle + 99)
        response, results["heatmap zoomed to 100 steps (column cached)"] = timed(session, tb, "heatmap", zparams)
        assert len(response.json()["steps"]) == 100
        results["heatmap zoomed to 100 steps, warm"] = timed(session, tb, "heatmap", zparams)[1]
        results["heatmap zoomed, stat=p25 (column cold)"] = timed(session, tb, "heatmap", dict(zparams, stat="p25"))[1]
        layer = rh.layer_list(args.layers)[0]["path"]
        lparams = {"run": "long", "metric": "step", "layer": layer, "max_steps": MAX_STEPS}
        response, results["layer max_steps=2000, cold (6 of 13 stats cached)"] = timed(session, tb, "layer", lparams)
        assert len(response.json()["steps"]) <= MAX_STEPS
        results["layer max_steps=2000, warm"] = timed(session, tb, "layer", lparams)[1]
        other = dict(lparams, layer=rh.layer_list(args.layers)[-1]["path"])
        results["layer, another layer (pooled cache)"] = timed(session, tb, "layer", other)[1]
        width = -(-args.steps // MAX_STEPS)  # steps of one pooled column
        first = (args.steps // 2) // width * width + 1  # a column of the heatmap's grid (steps start at 1)
        cparams = {"run": "long", "metric": "step", "layer": layer, "first": first, "last": first + width - 1, "max_steps": MAX_STEPS}
        response, results["cell (hover, one pooled column)"] = timed(session, tb, "cell", cparams)
        assert len(response.json()["values"]) == len(response.json()["stats"])
        results["cell, another layer"] = timed(session, tb, "cell", dict(cparams, layer=other["layer"]))[1]
        if args.histogram_layers:
            hparams = {"run": "long", "metric": "step", "layer": layer, "step": args.steps // 2}
            results["histogram"] = timed(session, tb, "histogram", hparams)[1]

        print(f"\n{args.steps} steps x {args.layers} layers, load_fast={args.load_fast}; heatmap answer {len(out_json['steps'])} columns")
        for name, seconds in results.items():
            print(f"  {name:45s} {seconds * 1000:10.0f} ms")
        for pid, (name, hwm, rss) in tb.peak_rss_kb().items():
            print(f"  peak RSS {name} (pid {pid}): {hwm / 2**20:.2f} GiB (now {rss / 2**20:.2f} GiB)")
    finally:
        watchdog.stop.set()
        tb.stop()
        if watchdog.fired:
            print(f"WATCHDOG: {watchdog.fired}; TensorBoard killed (limit {args.max_rss_gb} GiB)")
        if not args.out and not args.keep:
            shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()

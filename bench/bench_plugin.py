"""Times the Step Sizes plugin beside TensorBoard's histogram routes, in one TensorBoard.

    python bench/bench_plugin.py [--logdir DIR] [--layers 200] [--steps 10000]
                                 [--repeats 5] [--max-steps 2000]

Starts ONE `tensorboard --load_fast=false` on a logdir from
`make_big_logdir.py` (generated first if DIR is missing or not given), with
`--samples_per_plugin=histograms=STEPS` so TensorBoard keeps and serves every
histogram, and waits until everything is loaded.  Then, interleaved and
repeated, it times:

* `ours cold`: `heatmap?max_steps=N` of one statistic, nothing cached (each
  repetition uses a fresh experiment id in the URL, which the local data
  provider ignores but the plugin's caches are keyed on): listing the tags,
  reading layers x steps stats rows through the data provider, pooling,
  JSON + gzip;
* `ours new stat`: another statistic of the now cached run;
* `ours cached`: the first request again (served from the response cache);
* `TB timeSeries`: TensorBoard's time-series histogram route for every tag
  of the `histograms` run, which serves all layers x steps (run, tag, step)
  histogram samples -- the same sample count as one heatmap;
* `TB histograms`: the histograms plugin's own `/histograms` route for every
  tag (it reads every sample but returns 51 per tag; listed for reference).

`wire MB` is the gzipped size on the wire.  The generator cycles through 64
random payloads, so our heatmap compresses far better than real data would
(about 9 MB of JSON for 200 x 2000 cells before gzip).

A tiny smoke run: `--layers 5 --steps 50`.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_big_logdir  # noqa: E402

STATS_CYCLE = ["max", "p95", "mean", "p05", "min", "rms", "p75", "p25", "p99", "p01"]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid):
    total = 0
    for p in [pid] + children(pid):
        try:
            with open(f"/proc/{p}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(c) for c in f.read().split()]
    except OSError:
        return []


class Bench:
    def __init__(self, port, layers, steps, max_steps):
        self.base = f"http://127.0.0.1:{port}"
        self.session = requests.Session()
        self.layers = layers
        self.steps = steps
        self.max_steps = max_steps
        self.tags = [f"layer_{i:03d}" for i in range(layers)]

    def heatmap(self, eid, stat):
        prefix = f"/experiment/{eid}" if eid else ""
        start = time.perf_counter()
        response = self.session.get(
            f"{self.base}{prefix}/data/plugin/stepsize/heatmap",
            params={"run": "stepsize", "metric": "step", "stat": stat, "max_steps": self.max_steps},
            timeout=600,
        )
        out = response.json()
        elapsed = time.perf_counter() - start
        assert response.status_code == 200, out
        assert len(out["layers"]) == self.layers, len(out["layers"])
        assert out["step_ends"][-1] == self.steps - 1 and len(out["steps"]) <= self.max_steps
        return elapsed, int(response.headers.get("Content-Length", 0))

    def _every_tag(self, eid, fetch, check):
        """(seconds, bytes on the wire) of `fetch(url prefix, tag)` for every tag."""
        prefix = f"{self.base}/experiment/{eid}" if eid else self.base
        start = time.perf_counter()
        wire = 0
        for tag in self.tags:
            response = fetch(prefix, tag)
            out = response.json()
            wire += int(response.headers.get("Content-Length", 0))
            assert response.status_code == 200 and check(out), (tag, str(out)[:200])
        return time.perf_counter() - start, wire

    def time_series(self, eid):
        return self._every_tag(
            eid,
            lambda prefix, tag: self.session.post(
                f"{prefix}/data/plugin/timeseries/timeSeries",
                data={"requests": json.dumps([{"plugin": "histograms", "tag": tag, "run": "histograms"}])},
                timeout=600,
            ),
            lambda out: len(out[0]["runToSeries"]["histograms"]) == self.steps,
        )

    def histograms_route(self, eid):
        return self._every_tag(
            eid,
            lambda prefix, tag: self.session.get(
                f"{prefix}/data/plugin/histograms/histograms", params={"run": "histograms", "tag": tag}, timeout=600
            ),
            lambda out: len(out) == min(51, self.steps),
        )

    def wait_loaded(self, proc, timeout):
        start = time.monotonic()
        last_tag = self.tags[-1]
        while time.monotonic() - start < timeout:
            if proc.poll() is not None:
                raise SystemExit("tensorboard exited")
            try:
                tags = self.session.get(f"{self.base}/data/plugin/stepsize/tags", timeout=600).json()
                if tags.get("stepsize", {}).get("num_steps") == self.steps:
                    response = self.session.post(
                        f"{self.base}/data/plugin/timeseries/timeSeries",
                        data={"requests": json.dumps([{"plugin": "histograms", "tag": last_tag, "run": "histograms"}])},
                        timeout=600,
                    ).json()
                    series = response[0].get("runToSeries", {}).get("histograms", [])
                    if len(series) == self.steps:
                        return time.monotonic() - start
            except (requests.RequestException, ValueError, KeyError, IndexError):
                pass
            time.sleep(2)
        raise SystemExit(f"not loaded after {timeout} s")


def summarize(name, times, wire, samples):
    return {
        "name": name,
        "min": min(times),
        "median": statistics.median(times),
        "wire_bytes": wire,
        "samples": samples,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--logdir", help="made with make_big_logdir.py; generated if missing")
    parser.add_argument("--layers", type=int, default=200)
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=2000)
    parser.add_argument("--load-timeout", type=float, default=3600)
    parser.add_argument("--no-histograms-route", action="store_true")
    parser.add_argument("--json", help="also write the results here")
    args = parser.parse_args(argv)

    temp = None
    logdir = args.logdir
    if logdir is None:
        temp = tempfile.mkdtemp(prefix="tb_stepsize_bench_")
        logdir = temp
    if not os.path.isdir(logdir) or not os.listdir(logdir):
        print(f"generating {args.layers} layers x {args.steps} steps in {logdir}", flush=True)
        make_big_logdir.make(logdir, args.layers, args.steps, verbose=args.steps >= 1000)

    port = free_port()
    tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    log = tempfile.NamedTemporaryFile("w+", prefix="tensorboard_bench_", suffix=".log", delete=False)
    command = [
        tensorboard,
        "--logdir", logdir,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--load_fast=false",
        "--reload_interval=0",  # load once: no reload competing with the requests
        f"--samples_per_plugin=histograms={args.steps}",
    ]
    print("$", " ".join(command), flush=True)
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    bench = Bench(port, args.layers, args.steps, args.max_steps)
    ok = False
    try:
        load_secs = bench.wait_loaded(proc, args.load_timeout)
        print(f"tensorboard loaded in {load_secs:.0f} s; RSS {rss_mb(proc.pid):.0f} MB", flush=True)
        samples = args.layers * args.steps
        results = {k: ([], 0) for k in ("cold", "new_stat", "cached", "timeseries", "histograms")}

        def record(key, measured):
            times, _ = results[key]
            times.append(measured[0])
            results[key] = (times, measured[1])

        # One warm-up of the HTTP path of both plugins (not of our caches).
        bench.session.get(f"{bench.base}/data/plugins_listing", timeout=60)
        for r in range(args.repeats):
            eid = f"bench-{os.getpid()}-{r}"
            record("cold", bench.heatmap(eid, "p50"))
            record("timeseries", bench.time_series(eid))
            record("new_stat", bench.heatmap(eid, STATS_CYCLE[r % len(STATS_CYCLE)]))
            if not args.no_histograms_route:
                record("histograms", bench.histograms_route(eid))
            record("cached", bench.heatmap(eid, "p50"))
            print(f"  repetition {r + 1}/{args.repeats} done", flush=True)
        rss = rss_mb(proc.pid)
        ok = True
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if not ok:
            print(f"tensorboard's log: {log.name}", file=sys.stderr)

    rows = [
        summarize(f"ours heatmap max_steps={args.max_steps}, cold", *results["cold"], samples),
        summarize("ours heatmap, other stat (run cached)", *results["new_stat"], samples),
        summarize("ours heatmap, repeated (cached)", *results["cached"], samples),
        summarize(f"TB timeSeries histograms, {args.layers} tags", *results["timeseries"], samples),
    ]
    if results["histograms"][0]:
        rows.append(
            summarize(
                f"TB /histograms route, {args.layers} tags (51 each)",
                *results["histograms"],
                args.layers * min(51, args.steps),
            )
        )
    print()
    print(f"{args.layers} layers x {args.steps} steps, {args.repeats} repetitions, one tensorboard --load_fast=false")
    print(f"{'':52s} {'min s':>9s} {'median s':>9s} {'samples':>9s} {'wire MB':>8s}")
    for row in rows:
        print(
            f"{row['name']:52s} {row['min']:9.3f} {row['median']:9.3f} "
            f"{row['samples']:9d} {row['wire_bytes'] / 2**20:8.2f}"
        )
    tb = statistics.median(results["timeseries"][0])
    print()
    print(f"TB timeSeries / ours cold   (medians): {tb / statistics.median(results['cold'][0]):8.1f}x")
    print(f"TB timeSeries / ours cached (medians): {tb / statistics.median(results['cached'][0]):8.1f}x")
    print(f"tensorboard RSS after the benchmark: {rss:.0f} MB")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"layers": args.layers, "steps": args.steps, "rows": rows, "load_secs": load_secs, "rss_mb": rss}, f, indent=1)
    os.unlink(log.name)
    if temp:
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()

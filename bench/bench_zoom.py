"""Zoomed and grouped `heatmap` requests on a big model, served by a real TensorBoard.

    python bench/bench_zoom.py [--out DIR] [--load-fast true|false]

Writes (or reuses, in `--out`) `tests/browser/designed_bigmodel.py`'s run --
600 variables in 12 modules x 100,000 logged steps, statistics p50 and max,
0.53 GB of events, written in a few seconds -- starts `tensorboard`, waits
until it has loaded the run, and times `heatmap` requests as the dashboard
makes them (`max_steps=2000`):

* the whole run, cold (the column is read through the data server) and warm;
* zoomed to 100 steps (`start_step`/`end_step`, what a drag asks for): of a
  statistic not read yet (cold), of one read (a new range: only its 100
  columns are sliced, not pooled), and the same again (the response cache);
* rows grouped by module (`group_depth=2`), whole and zoomed, and one
  group listed (`expand`).

Each time is one request (the machine is shared; run it once or twice).
`bench/bench_longrun.py` times the same zoom on its 100,000 x 500 run.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests"))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "browser"))

import designed_bigmodel as d  # noqa: E402
import robustness_helpers as rh  # noqa: E402
from bench_longrun import timed  # noqa: E402

MAX_STEPS = 2000


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "tb_stepsize_bigmodel"))
    parser.add_argument("--load-fast", default="true", choices=["true", "false"])
    args = parser.parse_args(argv)
    started = time.perf_counter()
    d.write_logdir(args.out)
    d.write_run(os.path.join(args.out, d.OTHER_RUN), d.OTHER_STEPS)
    print(f"run written or reused in {time.perf_counter() - started:.1f} s: {args.out}")
    tb = rh.TensorBoard(args.out, os.path.join(tempfile.mkdtemp(prefix="bench_zoom_"), "tensorboard.log"), f"--load_fast={args.load_fast}")
    session = requests.Session()
    try:
        started = time.perf_counter()
        d.wait_served(tb.url(""), warm=False)
        print(f"TensorBoard loaded the run in {time.perf_counter() - started:.1f} s")
        base = {"run": d.RUN, "metric": "step", "max_steps": MAX_STEPS}
        zoom = {"start_step": 50001, "end_step": 50100}
        grouped = {"group_depth": 2}
        cases = [
            ("whole run, p50, cold (reads the column)", dict(base, stat="p50")),
            ("whole run, p50, warm", dict(base, stat="p50")),
            ("zoomed to 100 steps, max, cold (reads the column)", dict(base, stat="max", **zoom)),
            ("zoomed to 100 steps, p50 (column read), new range", dict(base, stat="p50", **zoom)),
            ("zoomed to 100 steps, p50, warm", dict(base, stat="p50", **zoom)),
            ("another 100 steps, p50 (column read)", dict(base, stat="p50", start_step=70001, end_step=70100)),
            ("grouped by module, whole run, p50", dict(base, stat="p50", **grouped)),
            ("grouped by module, zoomed to 100 steps, p50", dict(base, stat="p50", **grouped, **zoom)),
            ("grouped, one group listed, zoomed, p50", dict(base, stat="p50", **grouped, **zoom, expand=json.dumps(["model/block07"]))),
        ]
        print(f"\n{d.STEPS} steps x {len(d.LAYERS)} variables, load_fast={args.load_fast}; one request each")
        for name, params in cases:
            response, seconds = timed(session, tb, "heatmap", params)
            answer = response.json()
            shape = f"{len(answer['layers'])} rows x {len(answer['steps'])} columns"
            print(f"  {name:52s} {seconds * 1000:8.0f} ms   {shape}")
    finally:
        tb.stop()


if __name__ == "__main__":
    main()

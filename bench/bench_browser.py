"""Browser benchmark of the Step Sizes dashboard (real Chromium).

    .venv/bin/python bench/bench_browser.py [--layers 20,200,1000] [--columns 2000]

Serves the installed package's static files with synthetic `info`, `tags`,
`heatmap`, `cell`, `layer`, `histogram_steps`, `findings` (a few, so
the heatmap draws its row markers and error ticks) and `scalars` (a loss at
every step, for the strip above the heatmap) responses (no TensorBoard:
this measures the page, not the backend), opens the dashboard once per size in Chromium and prints,
measured with performance.now() in the page:

* first heatmap: from the heatmap JSON having arrived (parsed) to the
  heatmap, labels, axis and legend drawn -- the median of `--repeat` loads;
* redraw: a full redraw of the same data (e.g. a colour map change);
* hover: mean time of one hover update (overlay marks + tooltip, including
  the layout it forces) over 300 random cells.

Each size is measured as it opens (one row per layer, model order) and with
the big-model view on (`grouped+sorted`): rows grouped by module at depth 2
with every group listed -- so 1,000 layers are 1,125 rows -- sorted by the
mean over the visible steps.  The synthetic `heatmap` groups with the
plugin's own `layer_groups` and `pooling.pool_groups`.
"""

import argparse
import http.server
import json
import math
import os
import statistics
import sys
import threading
import urllib.parse

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests", "browser"))

from browser_helpers import CHROMIUM, CHROMIUM_ARGS  # noqa: E402

from tb_stepsize import layer_groups, metadata, pooling  # noqa: E402

STATS = list(metadata.ELEMENT_STATS)
FACTORS = [0.01, 0.05, 0.2, 0.5, 1, 2, 5, 8, 20, 1.3, 2, 0.0, 0.0]  # of each statistic to 1e-4
PAGE = b"""<!DOCTYPE html>
<html><head><meta charset="utf-8"></head><body>
<script type="module">import("./index.js").then((m) => m.render());</script>
</body></html>
"""


def layer_names(n):
    return [f"model/block_{i // 8:03d}/dense_{i % 8}/{'kernel' if i % 2 == 0 else 'bias'}" for i in range(n)]


def make_heatmap(run, n_layers, n_cols, max_steps):
    rng = np.random.default_rng(n_layers)
    group = 1 if max_steps >= n_cols else math.ceil(n_cols / max_steps)
    cols = math.ceil(n_cols / group)
    base = 10 ** rng.uniform(-6, -3, size=(n_layers, 1))
    warm = np.minimum(1, (np.arange(cols) + 1) / (cols * 0.1))[None, :]
    values = base * warm * np.exp(rng.normal(0, 0.3, size=(n_layers, cols)))
    cells = values.astype(np.float32).astype(float).round(12).tolist()
    nonfinite = []
    for i in range(0, n_layers, 37):
        j = (i * 13) % cols
        cells[i][j] = None
        nonfinite.append([i, j, "nan"])
    for i in range(5, n_layers, 41):
        cells[i][(i * 7) % cols] = 0.0
    steps = list(range(0, n_cols, group))
    return {
        "run": run,
        "metric": "step",
        "stat": "p50",
        "layers": layer_names(n_layers),
        "steps": steps,
        "step_ends": [min(s + group - 1, n_cols - 1) for s in steps],
        "wall_times": [1000.0 + 0.5 * s for s in steps],
        "values": cells,
        "nonfinite": nonfinite,
        "pooling": "mean",
    }


def group_heatmap(answer, depth, expand):
    """`answer`'s rows grouped as the plugin's `heatmap` groups them."""
    rows = layer_groups.rows(answer["layers"], depth, expand)
    values = np.array([[np.nan if v is None else v for v in row] for row in answer["values"]], float)
    present = ~np.isnan(values)
    grouped, grouped_present = pooling.pool_groups(values, present, [r.members for r in rows], "mean")
    cells = [[float(v) if p else None for v, p in zip(row, prow)] for row, prow in zip(grouped, grouped_present)]
    return {
        **answer,
        "layers": [r.label for r in rows],
        "row_members": [len(r.members) if r.is_group else 0 for r in rows],
        "row_groups": [r.group for r in rows],
        "num_layers": len(answer["layers"]),
        "values": cells,
        "nonfinite": [],
    }


def make_layer(run, layer, n_cols, max_steps):
    group = 1 if max_steps >= n_cols else math.ceil(n_cols / max_steps)
    steps = list(range(0, n_cols, group))
    return {
        "run": run,
        "layer": layer,
        "metric": "step",
        "stats": STATS,
        "steps": steps,
        "step_ends": [min(s + group - 1, n_cols - 1) for s in steps],
        "values": [[1e-4 * f for f in FACTORS] for _ in steps],
        "nonfinite": [],
    }


def make_cell(run, layer, first, last):
    return {
        "run": run,
        "layer": layer,
        "metric": "step",
        "first": first,
        "last": last,
        "stats": STATS,
        "values": [1e-4 * f for f in FACTORS],
        "nonfinite": [],
    }


def make_findings(run, n_layers, n_cols):
    """One finding per 10 layers (every third an error), each over a tenth of the steps."""
    layers = layer_names(n_layers)
    found = []
    for k, i in enumerate(range(0, n_layers, 10)):
        first = (k * n_cols // 7) % n_cols
        severity = "error" if k % 3 == 0 else "warning"
        found.append(
            {"kind": "partly_frozen", "severity": severity, "layer": layers[i], "layers": [layers[i]], "metric": "step",
             "first_step": first, "last_step": min(n_cols - 1, first + n_cols // 10), "value": 0.8, "threshold": 0.5,
             "message": f"{layers[i]}: made up for the benchmark."}
        )
    found.sort(key=lambda f: (f["severity"] != "error", f["first_step"]))
    return {"run": run, "findings": found, "thresholds": {}, "views": {"partly_frozen": {"metric": "step", "stat": "p50"}}}


def serve(static_dir, sizes, n_cols):
    runs = {f"bench_{n}": n for n in sizes}
    cache = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send(self, body, ctype, code=200):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the page went away (a closed tab's lazy requests)

        def do_GET(self):
            url = urllib.parse.urlparse(self.path)
            q = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
            name = url.path.rsplit("/", 1)[-1]
            if name == "page.html":
                return self.send(PAGE, "text/html")
            if name.endswith((".js", ".css")):
                with open(os.path.join(static_dir, name), "rb") as f:
                    return self.send(f.read(), "text/javascript" if name.endswith(".js") else "text/css")
            if name == "tags":
                body = {
                    run: {
                        "layers": layer_names(n),
                        "layer_info": [{"path": p, "shape": [64, 64], "dtype": "float32"} for p in layer_names(n)],
                        "metrics": ["step"],
                        "stats": {"step": STATS},
                        "max_step": n_cols - 1,
                        "num_steps": n_cols,
                        "optimizer": "Adam",
                        "problems": [],
                    }
                    for run, n in runs.items()
                }
                return self.send(json.dumps(body).encode(), "application/json")
            if name == "heatmap":
                key = (q["run"], int(q.get("max_steps", n_cols)), q.get("group_depth"), q.get("expand"))
                if key not in cache:
                    answer = make_heatmap(q["run"], runs[q["run"]], n_cols, key[1])
                    if key[2]:
                        answer = group_heatmap(answer, int(key[2]), json.loads(key[3] or "[]"))
                    cache[key] = json.dumps(answer).encode()
                return self.send(cache[key], "application/json")
            if name == "info":
                return self.send(json.dumps(metadata.describe()).encode(), "application/json")
            if name == "cell":
                body = make_cell(q["run"], q["layer"], int(q["first"]), int(q["last"]))
                return self.send(json.dumps(body).encode(), "application/json")
            if name == "histogram_steps":
                body = {"run": q["run"], "layer": q["layer"], "metric": q["metric"], "steps": []}
                return self.send(json.dumps(body).encode(), "application/json")
            if name == "findings":
                return self.send(json.dumps(make_findings(q["run"], runs[q["run"]], n_cols)).encode(), "application/json")
            if name == "scalars":
                loss = [round(2.0 / (1 + 0.01 * s), 6) for s in range(n_cols)]
                body = {"run": q["run"], "tags": {"stepsize/loss": {"steps": list(range(n_cols)), "values": loss, "nonfinite": []}}}
                return self.send(json.dumps(body).encode(), "application/json")
            if name == "layer":
                body = make_layer(q["run"], q["layer"], n_cols, int(q.get("max_steps", n_cols)))
                return self.send(json.dumps(body).encode(), "application/json")
            return self.send(b'{"error": "not found"}', "application/json", 404)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--layers", default="20,200,1000")
    parser.add_argument("--columns", type=int, default=2000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--hovers", type=int, default=300)
    args = parser.parse_args()
    sizes = [int(x) for x in args.layers.split(",")]

    import tb_stepsize

    static_dir = os.path.join(os.path.dirname(tb_stepsize.__file__), "static")
    server = serve(static_dir, sizes, args.columns)
    base = f"http://127.0.0.1:{server.server_address[1]}/data/plugin/stepsize/page.html"

    from playwright.sync_api import sync_playwright

    # Wide enough that 2,000 columns get a pixel each (no pooling).
    viewport = {"width": args.columns + 700, "height": 1000}
    print(f"Chromium {CHROMIUM}; viewport {viewport['width']}x{viewport['height']}, device pixel ratio 1")
    print(f"{'layers':>7} {'view':>15} {'rows':>6} {'columns':>8} {'first heatmap ms':>17} {'redraw ms':>10} {'hover ms (mean)':>16} {'hover p95':>10}")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for n, view in [(n, view) for n in sizes for view in ("plain", "grouped+sorted")]:
            firsts, cols = [], None
            hash_ = f"run=bench_{n}"
            if view != "plain":
                groups = sorted({layer_groups.group_of(p, 2) for p in layer_names(n)})
                hash_ += "&" + urllib.parse.urlencode({"group": "2", "expand": json.dumps(groups), "sort": "mean"})
            for _ in range(args.repeat):
                page = browser.new_page(viewport=viewport)
                page.goto(f"{base}#{hash_}")
                page.wait_for_function("window.__stepsize && window.__stepsize.drawCount > 0", timeout=120000)
                t = page.evaluate("window.__stepsize.timings")
                firsts.append(t["firstHeatmapMs"])
                panel = page.evaluate("window.__stepsize.panel(0)")
                cols = panel["cols"]
                if len(firsts) < args.repeat:
                    page.close()
            redraw = statistics.median(page.evaluate("window.__stepsize.redraw()") for _ in range(3))
            hovers = page.evaluate(
                """([rows, cols, n]) => {
                  const out = [];
                  let seed = 1;
                  const rnd = (k) => { seed = (seed * 16807) % 2147483647; return seed % k; };
                  for (let i = 0; i < n; i++) out.push(window.__stepsize.hover(0, rnd(rows), rnd(cols)));
                  return out;
                }""",
                [panel["rows"], cols, args.hovers],
            )
            page.close()
            hovers.sort()
            print(
                f"{n:>7} {view:>15} {panel['rows']:>6} {cols:>8} {statistics.median(firsts):>17.1f} {redraw:>10.1f} "
                f"{statistics.mean(hovers):>16.2f} {hovers[int(0.95 * len(hovers))]:>10.2f}"
            )
        browser.close()
    server.shutdown()


if __name__ == "__main__":
    main()

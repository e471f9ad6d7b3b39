"""Helpers of the robustness tests: event-file framing, plugin route sweeps, timeouts."""

import contextlib
import glob
import json
import os
import signal
import struct
from urllib.parse import urlencode

BASE = "/data/plugin/stepsize"
DATA_ROUTES = ("info", "tags", "heatmap", "layer", "cell", "histogram_steps", "histogram")


def record_spans(data):
    """`(spans, tail)`: (offset, length) of each complete record in TFRecord
    framing (no CRC check), and how many bytes follow the last one."""
    spans, pos = [], 0
    while pos + 12 <= len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        end = pos + 12 + length + 4
        if end > len(data):
            break
        spans.append((pos, end - pos))
        pos = end
    return spans, len(data) - pos


def event_files(run_dir):
    return sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*")))


@contextlib.contextmanager
def time_limit(seconds, what="operation"):
    """Raises TimeoutError in the main thread if the block runs longer (a hang)."""

    def expired(signum, frame):
        raise TimeoutError(f"{what} took more than {seconds} s")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def route_urls(tags):
    """URLs of every data route for every run/metric/layer in a `tags` answer
    (bounded: first two layers, two statistics)."""
    urls = [f"{BASE}/tags", f"{BASE}/info"]
    for run, entry in tags.items():
        for metric in entry.get("metrics", []):
            stats = entry["stats"].get(metric, [])
            for stat in stats[:1] + stats[-1:]:
                for extra in ({}, {"max_steps": 3}):
                    urls.append(f"{BASE}/heatmap?" + urlencode(dict(run=run, metric=metric, stat=stat, **extra)))
            for layer in entry.get("layers", [])[:2]:
                urls.append(f"{BASE}/layer?" + urlencode(dict(run=run, layer=layer, metric=metric)))
                urls.append(f"{BASE}/layer?" + urlencode(dict(run=run, layer=layer, metric=metric, max_steps=2)))
                last = entry.get("max_step", 0)
                urls.append(f"{BASE}/cell?" + urlencode(dict(run=run, layer=layer, metric=metric, first=0, last=last)))
                urls.append(f"{BASE}/histogram_steps?" + urlencode(dict(run=run, layer=layer, metric=metric)))
                urls.append(
                    f"{BASE}/histogram?"
                    + urlencode(dict(run=run, layer=layer, metric=metric, step=entry.get("max_step", 0)))
                )
    return urls


def check_response(response, url):
    """A data route answered 200/400/404 with JSON."""
    status = response.status_code
    assert status in (200, 400, 404), (url, status, response.get_data()[:500])
    body = response.get_data()
    content_type = response.headers["Content-Type"]
    assert content_type.startswith("application/json"), (url, content_type)
    parsed = json.loads(body)
    if status != 200:
        assert set(parsed) == {"error"} and parsed["error"], (url, parsed)
    return parsed


def sweep_routes(client):
    """Requests every route over what `tags` lists; returns the parsed `tags`."""
    response = client.get(f"{BASE}/tags")
    tags = check_response(response, "tags")
    assert response.status_code == 200
    for url in route_urls(tags):
        check_response(client.get(url), url)
    return tags


def make_app(logdir, provider=None):
    """werkzeug test client of a TensorBoard app over `logdir`, loaded the way `load` does
    (TensorBoard's multiplexer, skipping events that do not parse), or over `provider`."""
    from tensorboard.backend import application
    from tensorboard.plugins import base_plugin
    from werkzeug import test as werkzeug_test

    from tb_stepsize import reader
    from tb_stepsize.plugin_loader import StepSizeLoader

    provider = provider or reader._local_provider(logdir)
    context = base_plugin.TBContext(data_provider=provider, logdir=logdir)
    plugin = StepSizeLoader().load(context)
    return werkzeug_test.Client(application.TensorBoardWSGI([plugin], data_provider=provider))


# ------------------------------------------------------ deterministic runs


def layer_list(n_layers, prefix="layer"):
    return [
        {"path": f"{prefix}_{i:03d}/kernel", "shape": [16, 16], "dtype": "float32"} for i in range(n_layers)
    ]


def known_stats(step, n_layers):
    """Deterministic statistics of `step` (every value a function of step, layer, column)."""
    import numpy as np

    from tb_stepsize import metadata

    layer = np.arange(n_layers, dtype=np.float64)[:, None]
    col = np.arange(len(metadata.ELEMENT_STATS), dtype=np.float64)[None, :]
    elem = 1e-4 * (1 + layer) * (1 + (step % 997) / 100.0) * (1 + col / 20.0)
    elem[:, metadata.ELEMENT_STATS.index("zero_fraction")] = 0.01
    elem[:, metadata.ELEMENT_STATS.index("nonfinite")] = 0.0
    ratio = 1e-3 * (1 + layer) / (1 + step % 101)
    return {"step": elem.astype(np.float32), "update_ratio": ratio.astype(np.float32)}


def known_hists(step, n_layers):
    import numpy as np

    from tb_stepsize import metadata

    hists = np.zeros((n_layers, metadata.HIST_BINS), np.int64)
    hists[:, 0] = 1
    for row in range(n_layers):
        hists[row, 200 + row % 7] = step
    return hists


def write_known_run(run_dir, steps, n_layers, histograms=False, flush_every=None, delay=0.0):
    """Writes `steps` with `known_stats`; flushes every `flush_every` steps (live runs)."""
    import time

    from tb_stepsize.summary import StepWriter

    writer = StepWriter(run_dir, layer_list(n_layers), ["step", "update_ratio"], "Adam", histograms=histograms)
    for i, step in enumerate(steps):
        hists = {"step": known_hists(step, n_layers)} if histograms else {}
        writer.write(step, known_stats(step, n_layers), hists, wall_time=1.7e9 + step)
        if flush_every and (i + 1) % flush_every == 0:
            writer.flush()
            time.sleep(delay)
    writer.close()


# ------------------------------------------------------------ tensorboard


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TensorBoard:
    """A real `tensorboard` process on loopback; `stop()` ends it."""

    def __init__(self, logdir, log_path, *flags):
        import subprocess
        import sys

        self.port = free_port()
        self.log = open(log_path, "w")
        tensorboard = os.path.join(os.path.dirname(sys.executable), "tensorboard")
        self.proc = subprocess.Popen(
            [tensorboard, "--logdir", logdir, "--host", "127.0.0.1", "--port", str(self.port), *flags],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3"),
        )

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def wait(self, ready, timeout=120):
        """Polls until `ready(tags)` holds for the plugin's `tags` answer."""
        import time

        import requests

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                listing = requests.get(self.url("/data/plugins_listing"), timeout=10).json()
                if listing.get("stepsize", {}).get("enabled"):
                    tags = requests.get(self.url(BASE + "/tags"), timeout=60).json()
                    if ready(tags):
                        return tags
            except (requests.RequestException, ValueError):
                pass
            time.sleep(0.3)
        self.log.flush()
        with open(self.log.name) as f:
            raise AssertionError(f"tensorboard not ready:\n{f.read()[-3000:]}")

    def peak_rss_kb(self):
        """VmHWM of the tensorboard process and of its children (the data server)."""
        import subprocess

        pids = [self.proc.pid] + [
            int(p) for p in subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout.split()
        ]
        out = {}
        for pid in pids:
            try:
                with open(f"/proc/{pid}/status") as f:
                    fields = dict(line.split(":", 1) for line in f if ":" in line)
                out[pid] = (fields["Name"].strip(), int(fields["VmHWM"].split()[0]), int(fields["VmRSS"].split()[0]))
            except (OSError, KeyError, ValueError):
                pass
        return out

    def stop(self):
        import subprocess

        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(15)
        self.log.close()

"""Helpers of the robustness tests: event-file framing, plugin route sweeps, timeouts."""

import contextlib
import glob
import json
import os
import signal
import struct
from urllib.parse import urlencode

BASE = "/data/plugin/stepsize"
DATA_ROUTES = ("tags", "heatmap", "heatmap.bin", "layer", "histogram")


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
    urls = [f"{BASE}/tags"]
    for run, entry in tags.items():
        for metric in entry.get("metrics", []):
            stats = entry["stats"].get(metric, [])
            for stat in stats[:1] + stats[-1:]:
                for route in ("heatmap", "heatmap.bin"):
                    for extra in ({}, {"max_steps": 3}):
                        urls.append(f"{BASE}/{route}?" + urlencode(dict(run=run, metric=metric, stat=stat, **extra)))
            for layer in entry.get("layers", [])[:2]:
                urls.append(f"{BASE}/layer?" + urlencode(dict(run=run, layer=layer, metric=metric)))
                urls.append(f"{BASE}/layer?" + urlencode(dict(run=run, layer=layer, metric=metric, max_steps=2)))
                urls.append(
                    f"{BASE}/histogram?"
                    + urlencode(dict(run=run, layer=layer, metric=metric, step=entry.get("max_step", 0)))
                )
    return urls


def check_response(response, url):
    """A data route answered 200/400/404 with JSON (or the binary heatmap)."""
    status = response.status_code
    assert status in (200, 400, 404), (url, status, response.get_data()[:500])
    body = response.get_data()
    content_type = response.headers["Content-Type"]
    if content_type == "application/octet-stream":
        assert status == 200 and "heatmap.bin" in url and body.startswith(b"SSZ1"), url
        return None
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


def make_app(logdir):
    """werkzeug test client of a TensorBoard app over `logdir`, loaded the way `load` does
    (TensorBoard's multiplexer, skipping events that do not parse)."""
    from tensorboard.backend import application
    from tensorboard.plugins import base_plugin
    from werkzeug import test as werkzeug_test

    from tb_stepsize import reader
    from tb_stepsize.plugin_loader import StepSizeLoader

    provider = reader._local_provider(logdir)
    context = base_plugin.TBContext(data_provider=provider, logdir=logdir)
    plugin = StepSizeLoader().load(context)
    return werkzeug_test.Client(application.TensorBoardWSGI([plugin], data_provider=provider))

"""Shared by the browser tests and bench/bench_browser.py: where Chromium
is, how to launch it here, a `tensorboard` subprocess and the dashboard
page driven through its test hooks (frontend/hooks.js)."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SCREENSHOTS = os.path.join(REPO, "artifacts", "screenshots")
CHROMIUM = os.environ.get("CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class TensorBoard:
    """`tensorboard --logdir` in a subprocess, ready once plugins are listed
    (also a context manager: stopped on leaving)."""

    def __init__(self, logdir, log_path, extra=(), path_prefix=""):
        self.logdir = logdir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.path_prefix = path_prefix
        if path_prefix:
            extra = [*extra, f"--path_prefix={path_prefix}"]
        exe = os.path.join(os.path.dirname(sys.executable), "tensorboard")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        self.log = open(log_path, "w")
        self.proc = subprocess.Popen(
            [exe, "--logdir", logdir, "--port", str(self.port), "--host", "127.0.0.1", "--reload_interval", "1", *extra],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        deadline = time.time() + 90
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tensorboard exited; see {log_path}")
            try:
                with urllib.request.urlopen(self.url + path_prefix + "/data/plugins_listing", timeout=2) as r:
                    if b"stepsize" in r.read():
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError(f"tensorboard did not start; see {log_path}")
            time.sleep(0.3)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


class Dashboard:
    """The TensorBoard page and the plugin's iframe."""

    def __init__(self, page, frame):
        self.page = page
        self.frame = frame
        self.errors = []

    def js(self, expression, arg=None):
        return self.frame.evaluate(expression, arg)

    def hook(self, expression):
        return self.frame.evaluate(f"window.__stepsize.{expression}")

    def wait_drawn(self, after=0):
        self.frame.wait_for_function(
            "n => window.__stepsize && window.__stepsize.drawCount > n", arg=after, timeout=20000
        )

    def settle(self):
        """Wait until the Findings panel has answered for the shown run and the
        layout it shifts has been redrawn: a hover before that would be moved
        (and its tooltip hidden) by the panel appearing above the heatmap."""
        self.frame.wait_for_function(
            "() => { const s = window.__stepsize; const f = s.findings();"
            " return f.run === s.state.run && f.summary !== ''; }",
            timeout=20000,
        )
        self.page.wait_for_timeout(300)

    def set(self, **changes):
        n = self.hook("drawCount")
        self.frame.evaluate("c => window.__stepsize.app.set(c)", changes)
        self.wait_drawn(n)

    def row_of(self, path, panel=0):
        return self.hook(f"panel({panel})").get("layers").index(path)

    def col_of(self, step, panel=0):
        return self.hook(f"panel({panel})").get("steps").index(step)

    def pixel(self, row, col, panel=0):
        return self.js("([p, r, c]) => window.__stepsize.pixel(p, r, c)", [panel, row, col])

    def decoded(self, row, col, panel=0):
        rgb = self.pixel(row, col, panel)[:3]
        out = self.js("rgb => window.__stepsize.colorToValue(rgb)", rgb)
        assert out["distance"] < 6, f"pixel {rgb} is not a colour of the map"
        return out["value"]

    def mouse_to(self, row, col, panel=0):
        box = self.page.query_selector("iframe").bounding_box()
        c = self.js("([p, r, c]) => window.__stepsize.cellCenter(p, r, c)", [panel, row, col])
        self.page.mouse.move(box["x"] + c["x"], box["y"] + c["y"])
        return box["x"] + c["x"], box["y"] + c["y"]

    def shot(self, name):
        self.page.screenshot(path=os.path.join(SCREENSHOTS, name))


@contextlib.contextmanager
def open_dashboard(browser, url, viewport=None):
    """A `Dashboard` of TensorBoard's page at `url` (the Step Sizes tab),
    once the heatmap is drawn, in a browser context of its own; on leaving,
    no page error (`.errors`) may have happened."""
    context = browser.new_context(viewport=viewport or {"width": 1400, "height": 900}, accept_downloads=True)
    try:
        page = context.new_page()
        errors = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(url)
        iframe = page.wait_for_selector("iframe", timeout=30000)
        assert "plugin_entry.html?name=stepsize" in iframe.get_attribute("src")
        dash = Dashboard(page, iframe.content_frame())
        dash.errors = errors
        dash.wait_drawn()
        dash.settle()
        yield dash
        assert not errors, errors
    finally:
        context.close()

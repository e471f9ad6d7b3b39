"""Shared by the browser tests and bench/bench_browser.py: where Chromium
is, how to launch it here, and a `tensorboard` subprocess."""

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
    """`tensorboard --logdir` in a subprocess, ready once plugins are listed."""

    def __init__(self, logdir, log_path, extra=(), path_prefix=""):
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

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()



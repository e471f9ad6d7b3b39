"""`%load_ext tensorboard` + `%tensorboard --logdir ...` in a real notebook kernel shows the Step Sizes tab.

A notebook runs in an IPython kernel started by `nbclient` (as Jupyter would);
the magic starts a `tensorboard` process itself.  The test follows the port
printed into the cell's HTML output, checks the plugin's listing and a heatmap
through that server, and loads the output HTML in Chromium to see the tab in
the embedded TensorBoard.
"""

import functools
import http.server
import os
import re
import sys
import threading

import pytest
import requests

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

import plugin_helpers as h  # noqa: E402


def _notebook(logdir):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell("%load_ext tensorboard"),
        nbformat.v4.new_code_cell(f"%tensorboard --logdir {logdir} --port 0"),
    ]
    return nb


def _html_output(cell):
    for output in cell.get("outputs", []):
        html = output.get("data", {}).get("text/html")
        if html:
            return html
    raise AssertionError(f"no HTML output from {cell.source!r}: {cell.get('outputs')}")


@pytest.fixture(scope="module")
def magic(tmp_path_factory):
    """(port, html) of a TensorBoard the `%tensorboard` magic started; stopped afterwards."""
    root = tmp_path_factory.mktemp("notebook")
    logdir = root / "logs"
    h.write_synthetic_run(str(logdir / "run1"))
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")  # an activated venv
    env["TENSORBOARD_INFO_DIR"] = str(root / "tbinfo")  # not another test's (or user's) TensorBoard
    nb = _notebook(str(logdir))
    client = nbclient.NotebookClient(nb, timeout=180, kernel_name="python3", resources={"metadata": {"path": str(root)}})
    # The kernel inherits this process's environment (nbclient passes `env` to the kernel manager).
    with client.setup_kernel(env=env):
        client.execute_cell(nb.cells[0], 0)
        client.execute_cell(nb.cells[1], 1)
        html = _html_output(nb.cells[1])
        match = re.search(r"const port = (\d+);", html)
        assert match, html[:500]
        port = int(match.group(1))
        try:
            yield port, html
        finally:
            stop = nbformat.v4.new_code_cell(
                # Only the TensorBoard this kernel started (the one on our port); an info
                # file left by a killed process elsewhere names a pid that is gone.
                "from tensorboard import manager\n"
                "import os, signal\n"
                f"for info in [i for i in manager.get_all() if i.port == {port}]:\n"
                "    try:\n"
                "        os.kill(info.pid, signal.SIGTERM)\n"
                "    except ProcessLookupError:\n"
                "        pass\n"
            )
            nb.cells.append(stop)
            client.execute_cell(stop, 2)


def test_magic_serves_the_plugin(magic):
    port, _ = magic
    base = f"http://127.0.0.1:{port}"
    listing = requests.get(f"{base}/data/plugins_listing", timeout=30).json()
    assert listing["stepsize"]["enabled"] is True
    assert listing["stepsize"]["tab_name"] == "Step Sizes"
    tags = requests.get(f"{base}/data/plugin/stepsize/tags", timeout=30).json()
    assert set(tags) == {"run1"}
    assert tags["run1"]["layers"] == [l["path"] for l in h.LAYERS_B]
    heat = requests.get(
        f"{base}/data/plugin/stepsize/heatmap",
        params={"run": "run1", "metric": "step", "stat": "p50"},
        timeout=30,
    )
    assert heat.status_code == 200, heat.text[:300]
    body = heat.json()
    assert body["steps"] == list(range(1, 13))
    assert len(body["values"]) == len(h.LAYERS_B)


def test_magic_output_shows_the_tab_in_chromium(magic, browser, screenshots, tmp_path):
    _, html = magic
    (tmp_path / "output.html").write_text(f"<!doctype html><html><body>{html}</body></html>")
    # The output's script points its iframe at TensorBoard's port on the page's own host,
    # as in a notebook served from localhost.
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    page = browser.new_page()
    try:
        page.goto(f"http://127.0.0.1:{server.server_address[1]}/output.html")
        frame = page.wait_for_selector("iframe", timeout=30000).content_frame()
        frame.wait_for_load_state()
        # TensorBoard lists the dashboards it has as tabs (or in its "inactive" menu).
        frame.wait_for_function(
            "() => document.body && document.body.innerText.toUpperCase().includes('STEP SIZES')",
            timeout=60000,
        )
        page.screenshot(path=os.path.join(screenshots, "notebook_output.png"))
    finally:
        page.close()
        server.shutdown()

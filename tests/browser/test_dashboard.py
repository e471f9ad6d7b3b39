"""The Step Sizes dashboard in real Chromium, inside a real `tensorboard`.

The logdir holds the designed runs of `designed.py` (written with the pure-
python `StepWriter`) and a run of a tiny Keras model trained with the real
`StepSizeCallback`.  Cells are checked by reading the canvas pixels back and
mapping the colour to a value on the dashboard's colour scale.

Screenshots go to artifacts/screenshots/.
"""

import csv
import io
import os
import re
import subprocess
import sys
import tempfile
import textwrap
import time

import pytest

import designed as d
from browser_helpers import TensorBoard, open_dashboard

CALLBACK_RUN = "keras_callback"
TRAIN_SCRIPT = textwrap.dedent(
    """
    import sys
    import numpy as np, keras
    import tb_stepsize
    keras.utils.set_random_seed(0)
    x = np.random.rand(64, 5).astype("float32")
    y = np.random.rand(64, 1).astype("float32")
    model = keras.Sequential([
        keras.Input((5,)),
        keras.layers.Dense(8, activation="relu", name="hidden"),
        keras.layers.Dense(1, name="out"),
    ])
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    model.fit(x, y, batch_size=8, epochs=2, verbose=0,
              callbacks=[tb_stepsize.StepSizeCallback(sys.argv[1])])
    print(len(model.trainable_variables))
    """
)
LUT_TOLERANCE = 0.05  # relative: one of 256 colours spans < 2% of this scale


@pytest.fixture(scope="module")
def server():
    tmp = tempfile.mkdtemp(prefix="stepsize-browser-")
    logdir = os.path.join(tmp, "logs")
    d.write_logdir(logdir)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    trained = subprocess.run(
        [sys.executable, "-c", TRAIN_SCRIPT, os.path.join(logdir, CALLBACK_RUN)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert trained.returncode == 0, trained.stderr[-3000:]
    tb = TensorBoard(logdir, os.path.join(tmp, "tensorboard.log"))
    tb.callback_variables = int(trained.stdout.split()[-1])
    yield tb
    tb.stop()


@pytest.fixture(scope="module")
def dash(server, browser, screenshots):
    with open_dashboard(browser, server.url + f"/#stepsize&p.stepsize.run={d.RUN}") as dash:
        yield dash


def approx(value, expected, rel=LUT_TOLERANCE):
    return value == pytest.approx(expected, rel=rel)


# --------------------------------------------------------------------- tests


def test_tab_loads_inside_tensorboard(dash, server):
    assert dash.page.url.startswith(server.url)
    state = dash.hook("state")
    assert state["run"] == d.RUN and state["metric"] == "step" and state["stat"] == "p50"
    runs = dash.js("Array.from(document.querySelectorAll('#ss-run option')).map(o => o.value)")
    assert set(runs) == {d.RUN, d.XSS_RUN, CALLBACK_RUN}
    panel = dash.hook("panel(0)")
    assert panel["layers"] == [l["path"] for l in d.LAYERS]
    assert panel["steps"] == d.STEPS
    # All module files came through TensorBoard's CSP (no inline scripts).
    assert dash.js("document.querySelectorAll('script:not([src])').length") <= 1  # TB's own hashed loader
    dash.shot("01_heatmap.png")


def test_known_cells_have_expected_colours(dash):
    fast = dash.row_of("model/fast/kernel")
    for row in range(len(d.LAYERS)):
        for step in (1, 5, 12, 40):
            value = dash.decoded(row, dash.col_of(step))
            assert approx(value, d.step_value(row, step)), (row, step, value)
    # The fast layer moves 10x more than layer 0 at the same step.
    col = dash.col_of(20)
    assert approx(dash.decoded(fast, col) / dash.decoded(0, col), 10.0, rel=0.06)
    # NaN, +Inf and exact zero have their own colours; nothing else is that colour.
    (nan_row, nan_step), (inf_row, inf_step), (zero_row, zero_step) = d.NAN_CELL, d.INF_CELL, d.ZERO_CELL
    assert dash.pixel(nan_row, dash.col_of(nan_step))[:3] == [255, 0, 0]
    assert dash.pixel(inf_row, dash.col_of(inf_step))[:3] == [255, 0, 255]
    assert dash.pixel(zero_row, dash.col_of(zero_step))[:3] == [255, 255, 255]
    scale = dash.hook("scale()")
    assert approx(scale["lo"], min(d.step_value(r, 1) for r in range(len(d.LAYERS))), rel=1e-6)
    assert approx(scale["hi"], max(d.step_value(r, 40) for r in range(len(d.LAYERS))), rel=1e-6)


def test_hover_shows_value_and_quantiles(dash):
    row = dash.row_of("model/fast/kernel")
    dash.mouse_to(row, dash.col_of(20))
    tip = dash.frame.locator(".ss-tooltip")
    tip.wait_for(state="visible")
    text = tip.inner_text()
    assert "model/fast/kernel" in text and "step 20" in text and "shape [16, 16]" in text
    shown = float(dash.frame.locator("#ss-tip-number").inner_text())
    assert shown == pytest.approx(d.step_value(row, 20), rel=1e-5)
    # The other statistics arrive lazily from the cell route.
    dash.frame.wait_for_function("document.querySelector('.ss-tip-stats') !== null", timeout=10000)
    stats = dash.frame.locator(".ss-tip-stats").inner_text().split()
    values = dict(zip(stats[::2], stats[1::2]))
    assert float(values["p99"]) == pytest.approx(d.step_value(row, 20, "p99"), rel=1e-3)
    assert float(values["min"]) == pytest.approx(d.step_value(row, 20, "min"), rel=1e-3)
    dash.shot("02_hover.png")
    # Special cells say what they are.
    nan_row, nan_step = d.NAN_CELL
    dash.mouse_to(nan_row, dash.col_of(nan_step))
    dash.frame.wait_for_function("document.querySelector('#ss-tip-number')?.textContent === 'NaN'")
    zero_row, zero_step = d.ZERO_CELL
    dash.mouse_to(zero_row, dash.col_of(zero_step))
    dash.frame.wait_for_function("document.querySelector('#ss-tip-number')?.textContent.startsWith('0')")
    dash.page.mouse.move(5, 5)


def test_hover_requests_only_the_cell(dash):
    requests = []
    listener = lambda r: requests.append(r.url)  # noqa: E731
    dash.page.on("request", listener)
    try:
        row = dash.row_of("model/head/kernel")
        dash.mouse_to(row, dash.col_of(17))
        dash.frame.wait_for_function("document.querySelector('.ss-tip-stats') !== null", timeout=10000)
    finally:
        dash.page.remove_listener("request", listener)
        dash.page.mouse.move(5, 5)
    routes = [u.split("/data/plugin/stepsize/")[-1] for u in requests if "/data/plugin/stepsize/" in u]
    (route,) = routes
    # the heatmap's max_steps: the server answers from the pooled matrices
    assert re.fullmatch(r"cell\?run=designed&layer=model%2Fhead%2Fkernel&metric=step&first=17&last=17&max_steps=\d+", route), routes


def test_layer_filter_substring_and_regex(dash):
    box = dash.frame.locator("#ss-filter")
    n = dash.hook("drawCount")
    box.fill("HEAD")
    dash.wait_drawn(n)
    assert dash.hook("panel(0)")["layers"] == ["model/head/kernel", "model/head/bias"]
    n = dash.hook("drawCount")
    box.fill(r"/^model\/(fast|head)\/kernel$/")
    dash.wait_drawn(n)
    assert dash.hook("panel(0)")["layers"] == ["model/fast/kernel", "model/head/kernel"]
    assert "2 of 6 layers" in dash.frame.locator("#ss-filter-note").inner_text()
    # Colours stay on the filtered rows' own scale and still decode right.
    assert approx(dash.decoded(0, dash.col_of(30)), d.step_value(3, 30))
    assert dash.hook("state")["filter"] == r"/^model\/(fast|head)\/kernel$/"
    n = dash.hook("drawCount")
    box.fill("/(/")
    dash.wait_drawn(n)
    assert "ss-invalid" in box.get_attribute("class")
    assert "Invalid regular expression" in dash.frame.locator("#ss-filter-note").inner_text()
    n = dash.hook("drawCount")
    box.fill("")
    dash.wait_drawn(n)
    assert len(dash.hook("panel(0)")["layers"]) == len(d.LAYERS)


def test_metric_switch_and_help(dash):
    n = dash.hook("drawCount")
    dash.frame.locator("input[name=ss-metric][value=update_ratio]").check()
    dash.wait_drawn(n)
    state = dash.hook("state")
    assert state["metric"] == "update_ratio" and state["stat"] == "value"
    fast = dash.row_of("model/fast/kernel")
    col = dash.col_of(10)
    assert approx(dash.decoded(fast, col), 1e-2)
    assert approx(dash.decoded(0, col), 1e-3)
    assert dash.js("window.__stepsize.legend().reference.value") == 1e-3
    help_button = dash.frame.locator("button.ss-help-toggle[data-metric=update_ratio]")
    help_button.click()
    paragraph = dash.frame.locator("#ss-help-update_ratio")
    assert paragraph.is_visible() and "1e-3" in paragraph.inner_text()
    dash.shot("03_update_ratio_help.png")
    help_button.click()
    # Back to step: the statistic chosen before (p50) comes back.
    n = dash.hook("drawCount")
    dash.frame.locator("input[name=ss-metric][value=step]").check()
    dash.wait_drawn(n)
    assert dash.hook("state")["stat"] == "p50"
    n = dash.hook("drawCount")
    dash.frame.locator("#ss-stat").select_option("p99")
    dash.wait_drawn(n)
    assert approx(dash.decoded(0, dash.col_of(15)), d.step_value(0, 15, "p99"))
    dash.set(stat="p50")


def test_drilldown_opens_for_clicked_cell(dash):
    row = dash.row_of("model/fast/kernel")
    x, y = dash.mouse_to(row, dash.col_of(21))
    dash.page.mouse.click(x, y)
    dash.frame.wait_for_function(
        "() => { const d = window.__stepsize.drill(); return d.open && d.hasData && d.histogramStep === 21; }",
        timeout=15000,
    )
    drill = dash.hook("drill()")
    assert drill["layer"] == "model/fast/kernel"
    assert dash.frame.locator(".ss-drill-title").inner_text() == "model/fast/kernel"
    readout = dash.frame.locator(".ss-drill .ss-readout").first.inner_text()
    assert readout.startswith("step 21:") and "p50 1e-3" in readout
    note = dash.frame.locator(".ss-drill .ss-readout").nth(1).inner_text()
    assert "256 elements at step 21" in note
    # The band chart actually drew the median line (accent colour pixels).
    assert dash.js(
        """() => {
          const c = document.querySelector('.ss-bands');
          const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
          let n = 0;
          for (let i = 0; i < d.length; i += 4) if (d[i] > 200 && d[i + 1] > 90 && d[i + 1] < 160 && d[i + 2] < 60) n++;
          return n;
        }"""
    ) > 100
    state = dash.hook("state")
    assert state["layer"] == "model/fast/kernel" and state["step"] == "21"
    dash.page.mouse.move(5, 5)
    dash.shot("04_drilldown.png")


def test_link_reproduces_view(dash, browser):
    dash.set(cmap="magma", x="wall", filter="kernel")
    link = dash.hook("link()")
    assert "p.stepsize.cmap=magma" in link and "p.stepsize.layer=model%2Ffast%2Fkernel" in link
    assert dash.page.url == link  # TensorBoard's own URL carries the selection
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    try:
        page.goto(link)
        frame = page.wait_for_selector("iframe").content_frame()
        frame.wait_for_function("window.__stepsize && window.__stepsize.drawCount > 0", timeout=20000)
        state = frame.evaluate("window.__stepsize.state")
        for key in ("run", "cmap", "x", "filter", "layer", "step"):
            assert state[key] == dash.hook("state")[key], key
        frame.wait_for_function("window.__stepsize.drill().open")
    finally:
        page.close()
    dash.shot("05_magma_walltime.png")
    dash.set(cmap="viridis", x="step", filter="")


def test_fixed_colour_range(dash):
    dash.set(range="fixed", lo="1e-5", hi="1e-2")
    assert dash.hook("scale()") == {"lo": 1e-5, "hi": 1e-2}
    assert approx(dash.decoded(0, dash.col_of(40)), d.step_value(0, 40))
    dash.set(range="auto")


def test_compare_side_by_side_and_ratio(dash):
    dash.set(compare="side", run2=d.XSS_RUN)
    assert dash.hook("panel(1)") is not None
    # One colour scale: the same layer at half the step decodes to half.
    col = dash.col_of(30)
    a = dash.decoded(0, col, panel=0)
    b = dash.decoded(0, dash.col_of(30, panel=1), panel=1)
    assert approx(a / b, 2.0, rel=0.06)
    dash.shot("06_compare_side.png")
    dash.set(compare="ratio")
    assert dash.hook("panel(1)") is None
    assert approx(dash.decoded(0, col), 2.0)
    assert dash.pixel(d.NAN_CELL[0], dash.col_of(d.NAN_CELL[1]))[:3] == [255, 0, 0]
    dash.shot("07_compare_ratio.png")
    dash.set(compare="off")


def test_export_png_and_csv(dash, tmp_path):
    with dash.page.expect_download() as info:
        dash.frame.locator("#ss-export-png").click()
    png = tmp_path / "heatmap.png"
    info.value.save_as(png)
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert info.value.suggested_filename == "stepsize_designed_step_p50.png"
    with dash.page.expect_download() as info:
        dash.frame.locator("#ss-export-csv").click()
    path = tmp_path / "heatmap.csv"
    info.value.save_as(path)
    rows = list(csv.DictReader(io.StringIO(path.read_text())))
    assert len(rows) == len(d.LAYERS) * len(d.STEPS)
    cell = {(r["layer"], int(r["step_first"])): r["value"] for r in rows}
    assert float(cell[("model/fast/kernel", 20)]) == pytest.approx(d.step_value(3, 20), rel=1e-6)
    assert cell[(d.LAYERS[d.NAN_CELL[0]]["path"], d.NAN_CELL[1])] == "nan"
    assert cell[(d.LAYERS[d.INF_CELL[0]]["path"], d.INF_CELL[1])] == "inf"
    assert float(cell[(d.LAYERS[d.ZERO_CELL[0]]["path"], d.ZERO_CELL[1])]) == 0.0


def test_xss_names_are_text(dash):
    n = dash.hook("drawCount")
    dash.frame.locator("#ss-run").select_option(d.XSS_RUN)
    dash.wait_drawn(n)
    layers = dash.hook("panel(0)")["layers"]
    assert layers[-1] == d.XSS_LAYER["path"]
    row = len(layers) - 1
    # Before XSS_LAYER_FROM the layer was not logged: hatched background, no map colour.
    missing = dash.pixel(row, dash.col_of(d.XSS_LAYER_FROM - 5))
    assert dash.js("rgb => window.__stepsize.colorToValue(rgb)", missing[:3])["distance"] > 6
    assert missing[3] == 255 and missing[:3] not in ([255, 0, 0], [255, 0, 255], [0, 255, 255], [255, 255, 255])
    dash.mouse_to(row, dash.col_of(d.XSS_LAYER_FROM - 5))
    dash.frame.locator(".ss-tooltip").wait_for(state="visible")
    assert d.XSS_LAYER["path"] in dash.frame.locator(".ss-tip-layer").inner_text()
    dash.frame.wait_for_function("document.querySelector('#ss-tip-number')?.textContent === 'not logged'")
    assert d.XSS_RUN in dash.frame.locator(".ss-subtitle").inner_text()
    x, y = dash.mouse_to(row, dash.col_of(d.XSS_LAYER_FROM + 5))
    dash.page.mouse.click(x, y)
    dash.frame.wait_for_function("window.__stepsize.drill().hasData", timeout=15000)
    assert dash.frame.locator(".ss-drill-title").inner_text() == d.XSS_LAYER["path"]
    time.sleep(0.3)
    dash.shot("08_xss_run.png")
    assert dash.js("document.querySelectorAll('img').length") == 0
    assert dash.js("window.__xss") is None
    assert dash.page.evaluate("window.__xss") is None
    dash.page.mouse.move(5, 5)
    n = dash.hook("drawCount")
    dash.frame.locator("#ss-run").select_option(d.RUN)
    dash.wait_drawn(n)


def test_callback_run(dash, server):
    n = dash.hook("drawCount")
    dash.frame.locator("#ss-run").select_option(CALLBACK_RUN)
    dash.wait_drawn(n)
    panel = dash.hook("panel(0)")
    assert panel["rows"] == server.callback_variables == 4
    assert panel["cols"] == 16  # 64 samples / batch 8 x 2 epochs, every step logged
    # Real training: every cell holds a logged, finite step (a map colour,
    # or white for an exactly-zero median), none missing.
    for row in range(panel["rows"]):
        for col in (0, 7, 15):
            rgb = dash.pixel(row, col)
            if rgb[:3] != [255, 255, 255]:
                assert dash.decoded(row, col) > 0
    dash.shot("09_callback_run.png")
    n = dash.hook("drawCount")
    dash.frame.locator("#ss-run").select_option(d.RUN)
    dash.wait_drawn(n)


def test_live_reload_keeps_selection(dash, server):
    dash.set(filter="head", metric="step", stat="p75")
    before = dash.hook("panel(0)")
    d.append_steps(server.logdir, range(41, 49))
    deadline = time.time() + 30
    while time.time() < deadline:
        n = dash.hook("drawCount")
        dash.page.click("button.reload-button")  # TensorBoard's own reload button
        dash.wait_drawn(n)
        if dash.hook("panel(0)")["cols"] == len(d.STEPS) + 8:
            break
        time.sleep(1)
    after = dash.hook("panel(0)")
    assert after["cols"] == len(d.STEPS) + 8 and after["steps"][-1] == 48
    assert after["layers"] == before["layers"] == ["model/head/kernel", "model/head/bias"]
    state = dash.hook("state")
    assert (state["filter"], state["stat"], state["run"]) == ("head", "p75", d.RUN)
    assert dash.js("document.querySelector('#ss-filter').value") == "head"
    dash.set(filter="", stat="p50", layer="", step="")


def test_dark_mode_follows_tensorboard(dash):
    dash.page.click("[aria-label='Menu for changing light or dark theme']")
    dash.page.click("text=Dark")
    dash.frame.wait_for_function("document.documentElement.dataset.theme === 'dark'")
    dash.set(x="step")
    bg = dash.js("getComputedStyle(document.body).backgroundColor")
    assert bg == "rgb(32, 33, 36)"
    dash.shot("10_dark.png")
    dash.page.click("[aria-label='Menu for changing light or dark theme']")
    dash.page.click("text=Light")
    dash.frame.wait_for_function("document.documentElement.dataset.theme === 'light'")


def test_resizes_with_the_window(dash):
    wide = dash.hook("panel(0)")["canvas"]["width"]
    n = dash.hook("drawCount")
    dash.page.set_viewport_size({"width": 1000, "height": 800})
    dash.wait_drawn(n)
    narrow = dash.hook("panel(0)")["canvas"]["width"]
    assert narrow < wide - 300
    frame_width = dash.js("document.documentElement.clientWidth")
    box = dash.hook("panel(0)")["canvas"]
    assert box["x"] + box["width"] <= frame_width  # fits its iframe
    assert approx(dash.decoded(3, dash.col_of(20)), d.step_value(3, 20))
    dash.shot("11_narrow.png")
    n = dash.hook("drawCount")
    dash.page.set_viewport_size({"width": 1400, "height": 900})
    dash.wait_drawn(n)


def test_works_under_path_prefix(server, browser):
    tmp = tempfile.mkdtemp(prefix="stepsize-prefix-")
    logdir = d.write_logdir(os.path.join(tmp, "logs"))
    tb = TensorBoard(logdir, os.path.join(tmp, "tensorboard.log"), path_prefix="/foo/bar")
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    try:
        page.goto(f"{tb.url}/foo/bar/#stepsize&p.stepsize.run={d.RUN}")
        frame = page.wait_for_selector("iframe", timeout=30000).content_frame()
        frame.wait_for_function("window.__stepsize && window.__stepsize.drawCount > 0", timeout=30000)
        assert frame.url.startswith(f"{tb.url}/foo/bar/data/plugin_entry.html")
        assert frame.evaluate("window.__stepsize.panel(0).rows") == len(d.LAYERS)
        nan_row, nan_step = d.NAN_CELL
        assert frame.evaluate(f"window.__stepsize.pixel(0, {nan_row}, {nan_step - 1})")[:3] == [255, 0, 0]
    finally:
        page.close()
        tb.stop()

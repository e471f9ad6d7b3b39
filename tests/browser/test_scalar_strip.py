"""The scalar strip above the heatmap in real Chromium inside a real
`tensorboard`, on the runs of `designed_findings.py`: `FROZEN_RUN` has a
loss (NaN at one step) and a learning rate as ordinary scalars, the
healthy run has none.  Checked through the test hooks (frontend/hooks.js).
"""

import os
import tempfile

import pytest

import designed_findings as d
from browser_helpers import TensorBoard, open_dashboard

LOSS = dict(d.SCALARS["stepsize/loss"])


@pytest.fixture(scope="module")
def dash(browser, screenshots):
    tmp = tempfile.mkdtemp(prefix="stepsize-strip-")
    with TensorBoard(d.write_logdir(os.path.join(tmp, "logs")), os.path.join(tmp, "tensorboard.log")) as tb:
        with open_dashboard(browser, tb.url + f"/#stepsize&p.stepsize.run={d.FROZEN_RUN}") as dash:
            for _ in range(40):  # TensorBoard may load the scalars' event file after the step sizes'
                if dash.hook("strip()")["points"]:
                    break
                dash.frame.locator("#ss-reload").click()
                dash.frame.wait_for_timeout(500)
            assert dash.hook("strip()")["points"] == 40
            yield dash


def test_loss_is_drawn_on_the_step_axis(dash):
    strip = dash.hook("strip()")
    assert not strip["hidden"] and strip["tag"] == "stepsize/loss" and strip["log"] is False
    assert strip["points"] == 40 and strip["nonfinite"] == [d.NAN_STEP]
    tags = dash.js("Array.from(document.querySelectorAll('#ss-scalar option')).map(o => o.value)")
    assert tags == sorted(d.SCALARS)
    # The strip's x of a step is the heatmap column's centre.
    x = dash.js("s => window.__stepsize.app.strip.geometry.xOf(s)", 30)
    centre = dash.js("c => window.__stepsize.cellCenter(0, 0, c).canvasX", dash.col_of(30))
    assert abs(x - centre) < 0.5
    dash.shot("strip_loss.png")


def test_heatmap_hover_moves_the_strip_cursor(dash):
    dash.mouse_to(0, dash.col_of(30))
    # Read the readout in the same call that saw it (a redraw may clear it right after).
    readout = dash.frame.wait_for_function(
        "() => { const r = window.__stepsize.strip().readout; return r.includes('step 30') ? r : null; }"
    ).json_value()
    value = float(readout.rsplit(": ", 1)[1])
    assert value == pytest.approx(LOSS[30], rel=1e-3)
    dash.mouse_to(0, dash.col_of(d.NAN_STEP))
    dash.frame.wait_for_function(f"window.__stepsize.strip().readout.endsWith('step {d.NAN_STEP}: NaN')")
    dash.page.mouse.move(5, 5)
    dash.frame.wait_for_function("window.__stepsize.strip().readout === ''")


def test_strip_hover_guides_the_heatmap(dash):
    box = dash.page.query_selector("iframe").bounding_box()
    stage = dash.frame.locator(".ss-strip-overlay").bounding_box()
    x = dash.js("c => window.__stepsize.cellCenter(0, 0, c).canvasX", dash.col_of(12))
    dash.page.mouse.move(stage["x"] + x, stage["y"] + stage["height"] / 2)
    dash.frame.wait_for_function("window.__stepsize.strip().readout.includes('step 12')")
    assert dash.js("window.__stepsize.app.card.panels[0].guide") == dash.col_of(12)
    dash.page.mouse.move(box["x"] + 5, box["y"] + 5)
    dash.frame.wait_for_function("window.__stepsize.app.card.panels[0].guide === -1")


def test_tag_and_log_scale_are_chosen_and_kept_in_the_url(dash):
    dash.frame.select_option("#ss-scalar", "stepsize/learning_rate")
    assert dash.hook("strip()")["tag"] == "stepsize/learning_rate" and dash.hook("state")["scalar"] == "stepsize/learning_rate"
    dash.frame.select_option("#ss-scalar", "stepsize/loss")
    dash.frame.locator("#ss-scalar-log").check()
    strip = dash.hook("strip()")
    assert strip["log"] is True and dash.hook("state")["scalar_scale"] == "log"
    assert "scalar_scale=log" in dash.hook("link()")
    dash.shot("strip_log.png")
    dash.frame.locator("#ss-scalar-log").uncheck()


def test_run_without_scalars_has_no_strip(dash):
    dash.set(run=d.HEALTHY_RUN)
    dash.frame.wait_for_function("window.__stepsize.strip().hidden")
    dash.set(run=d.FROZEN_RUN)
    dash.frame.wait_for_function("!window.__stepsize.strip().hidden")

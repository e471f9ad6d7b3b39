"""The Findings panel in real Chromium inside a real `tensorboard`, on the
runs of `designed_findings.py` (known findings: a partly frozen layer and a
NaN in one run, no layer moving in another, nothing in a third).

Checked through the DOM and the test hooks (frontend/hooks.js): the panel's
texts, what choosing an entry (click or keyboard) switches to and outlines,
the row markers, the error tick, the URL state and the reload.
Screenshots go to artifacts/screenshots/.
"""

import os
import tempfile

import numpy as np
import pytest

import designed_findings as d
from browser_helpers import TensorBoard, open_dashboard
from tb_stepsize.summary import StepWriter

FROZEN_ID = f"partly_frozen:{d.FROZEN_LAYER}:{d.FROZEN_FROM}"
NAN_ID = f"nonfinite:{d.NAN_LAYER}:{d.NAN_STEP}"


@pytest.fixture(scope="module")
def server():
    tmp = tempfile.mkdtemp(prefix="stepsize-findings-")
    with TensorBoard(d.write_logdir(os.path.join(tmp, "logs")), os.path.join(tmp, "tensorboard.log")) as tb:
        yield tb


@pytest.fixture(scope="module")
def dash(server, browser, screenshots):
    with open_dashboard(browser, server.url + f"/#stepsize&p.stepsize.run={d.FROZEN_RUN}") as dash:
        yield dash
        assert dash.js("window.__xss === undefined")


def wait_findings(dash, run, summary_start=""):
    dash.frame.wait_for_function(
        "([run, s]) => { const f = window.__stepsize.findings(); "
        "return f.run === run && f.summary.startsWith(s) && !f.summary.startsWith('Looking'); }",
        arg=[run, summary_start],
        timeout=20000,
    )
    return dash.hook("findings()")


def entries(dash):
    return dash.js(
        """Array.from(document.querySelectorAll('.ss-finding')).map(b => ({
             id: b.dataset.id, pressed: b.getAttribute('aria-pressed'),
             sev: b.querySelector('.ss-finding-sev').textContent,
             kind: b.querySelector('.ss-finding-kind').textContent,
             layer: b.querySelector('.ss-finding-layer').textContent,
             steps: b.querySelector('.ss-finding-steps').textContent,
             message: b.querySelector('.ss-finding-message').textContent}))"""
    )


def choose(dash, finding_id, how="click"):
    """Choose an entry by mouse or keyboard; waits for the redraw if the view changes."""
    n = dash.hook("drawCount")
    state = dash.hook("state")
    button = dash.frame.locator(f'.ss-finding[data-id="{finding_id}"]')
    if how == "click":
        button.click()
    else:
        button.focus()
        dash.page.keyboard.press("Enter")
    after = dash.hook("state")
    if (after["metric"], after["stat"]) != (state["metric"], state["stat"]):
        dash.wait_drawn(n)
    return after


def test_panel_lists_findings_most_severe_first(dash):
    out = wait_findings(dash, d.FROZEN_RUN, "2 findings")
    assert out["summary"] == "2 findings: 1 error, 1 warning" and not out["hidden"]
    first, second = entries(dash)
    assert first["id"] == NAN_ID and first["sev"] == "\u2716 Error" and first["kind"] == "nonfinite"
    assert first["layer"] == d.NAN_LAYER and first["steps"] == f"step {d.NAN_STEP}"  # markup shown as text
    assert f"from step {d.NAN_STEP} on" in first["message"]
    assert second["id"] == FROZEN_ID and second["sev"] == "\u25b2 Warning" and second["kind"] == "partly_frozen"
    assert second["layer"] == d.FROZEN_LAYER and second["steps"] == f"steps {d.FROZEN_FROM}\u201340"
    assert second["message"].startswith(f"80% of the elements of {d.FROZEN_LAYER} have not moved since about step {d.FROZEN_FROM}")
    assert dash.js("document.querySelectorAll('.ss-finding img').length") == 0


def test_row_markers_and_error_tick(dash):
    wait_findings(dash, d.FROZEN_RUN, "2 findings")
    marks = dash.hook("marks(0)")
    assert {(m["layer"], m["severity"]) for m in marks["rows"]} == {(d.NAN_LAYER, "error"), (d.FROZEN_LAYER, "warning")}
    (tick,) = marks["ticks"]
    assert tick["step"] == d.NAN_STEP
    centre = dash.js("([r, c]) => window.__stepsize.cellCenter(0, r, c)", [0, dash.col_of(d.NAN_STEP)])
    assert abs(tick["x"] - centre["canvasX"]) <= 1
    # The markers are drawn: the label column's left edge is not background there.
    for m in marks["rows"]:
        y = dash.js("r => window.__stepsize.cellCenter(0, r, 0).canvasY", m["row"])
        pixels = dash.js(
            """([y]) => { const p = window.__stepsize.app.card.panels[0]; const dpr = p.dpr || 1;
                 return Array.from(p.canvas.getContext('2d').getImageData(0, Math.floor((y - 3) * dpr), Math.ceil(12 * dpr), Math.ceil(6 * dpr)).data); }""",
            [y],
        )
        assert any(a > 0 for a in pixels[3::4]), m  # something opaque drawn


def test_choosing_a_finding_switches_view_and_outlines_it(dash):
    wait_findings(dash, d.FROZEN_RUN, "2 findings")
    state = choose(dash, FROZEN_ID)
    assert (state["metric"], state["stat"], state["finding"]) == ("step", "zero_fraction", FROZEN_ID)
    high = dash.hook("marks(0)")["highlight"]
    assert high["rows"] == [dash.row_of(d.FROZEN_LAYER)]
    assert (high["c0"], high["c1"]) == (dash.col_of(d.FROZEN_FROM), dash.col_of(d.STEPS[-1]))
    assert [e["pressed"] for e in entries(dash)] == ["false", "true"]
    assert "finding=" in dash.hook("link()") and "finding=partly_frozen" in dash.js("location.hash")
    dash.shot("findings_selected.png")
    # The keyboard: Enter on the error's entry shows the non-finite counts.
    state = choose(dash, NAN_ID, how="keyboard")
    assert (state["metric"], state["stat"], state["finding"]) == ("step", "nonfinite", NAN_ID)
    high = dash.hook("marks(0)")["highlight"]
    assert high["rows"] == [dash.row_of(d.NAN_LAYER)] and high["c0"] == high["c1"] == dash.col_of(d.NAN_STEP)
    assert dash.js("document.activeElement.dataset.id") == NAN_ID  # focus stays on the entry
    # Choosing it again clears the outline but keeps the view.
    state = choose(dash, NAN_ID, how="keyboard")
    assert state["finding"] == "" and state["stat"] == "nonfinite"
    assert dash.hook("marks(0)")["highlight"] is None
    assert [e["pressed"] for e in entries(dash)] == ["false", "false"]


def test_dark_theme_colours(dash):
    dash.set(run=d.FROZEN_RUN, finding="")
    wait_findings(dash, d.FROZEN_RUN, "2 findings")
    choose(dash, FROZEN_ID)
    dash.page.click("[aria-label='Menu for changing light or dark theme']")
    dash.page.click("text=Dark")
    try:
        dash.frame.wait_for_function("document.documentElement.dataset.theme === 'dark'")
        dash.set(x="step")
        colour = dash.js("getComputedStyle(document.querySelector('.ss-sev-warning .ss-finding-sev')).color")
        assert colour == "rgb(255, 204, 128)"  # light amber on the dark card
        dash.shot("findings_dark.png")
    finally:
        dash.page.click("[aria-label='Menu for changing light or dark theme']")
        dash.page.click("text=Light")
        dash.frame.wait_for_function("document.documentElement.dataset.theme === 'light'")


def test_whole_run_finding(dash):
    dash.set(run=d.STUCK_RUN, finding="")
    out = wait_findings(dash, d.STUCK_RUN, "1 finding")
    assert out["summary"] == "1 finding: 1 error"
    (entry,) = entries(dash)
    assert entry["layer"] == "whole run" and entry["kind"] == "no_update" and entry["steps"] == "steps 1\u201340"
    assert entry["message"].startswith("No weight moved in any of the 4 layers from step 1 on") and "bfloat16" in entry["message"]
    state = choose(dash, entry["id"])
    assert (state["metric"], state["stat"]) == ("step", "max")
    marks = dash.hook("marks(0)")
    assert marks["highlight"] == {"rows": [0, 1, 2, 3], "c0": 0, "c1": len(d.STEPS) - 1}
    assert len(marks["rows"]) == 4 and [t["step"] for t in marks["ticks"]] == [1]
    dash.shot("findings_whole_run.png")


def test_run_without_findings_is_one_line(dash):
    dash.set(run=d.HEALTHY_RUN, finding="")
    out = wait_findings(dash, d.HEALTHY_RUN, "No findings")
    assert out["summary"] == "No findings" and out["findings"] == []
    assert dash.js("document.querySelector('#ss-findings-list').hidden")
    assert dash.js("document.querySelector('.ss-findings-toggle').hidden")
    box = dash.frame.locator(".ss-findings").bounding_box()
    assert box["height"] < 60  # one line
    marks = dash.hook("marks(0)")
    assert marks["rows"] == [] and marks["ticks"] == []
    dash.shot("findings_none.png")


def test_reload_finds_new_problems(dash, server):
    """New steps with a NaN in the healthy run: the reload button brings its finding."""
    dash.set(run=d.HEALTHY_RUN)
    wait_findings(dash, d.HEALTHY_RUN, "No findings")
    layers = [dict(l) for l in d.LAYERS]
    writer = StepWriter(os.path.join(server.logdir, d.HEALTHY_RUN), layers, d.METRICS, "Adam", histograms=False)
    for step in (41, 42):
        stats = {m: np.full((len(layers), 13 if m in ("step", "intended_step") else 1), 1e-4, np.float32) for m in d.METRICS}
        stats["step"][1, -1] = 2  # NaN elements in model/dense/bias
        writer.write(step, stats, {}, wall_time=2000.0 + step)
    writer.close()
    for _ in range(40):
        dash.frame.locator("#ss-reload").click()
        dash.frame.wait_for_timeout(500)
        if dash.hook("findings()")["summary"].startswith("1 finding"):
            break
    out = dash.hook("findings()")
    assert out["summary"] == "1 finding: 1 error"
    assert out["findings"][0]["kind"] == "nonfinite" and out["findings"][0]["first_step"] == 41


def test_link_with_finding_reopens_it(server, browser):
    url = (
        server.url + f"/#stepsize&p.stepsize.run={d.FROZEN_RUN}&p.stepsize.stat=zero_fraction"
        f"&p.stepsize.finding={FROZEN_ID.replace('/', '%2F')}"
    )
    with open_dashboard(browser, url) as dash:
        wait_findings(dash, d.FROZEN_RUN, "2 findings")
        dash.frame.wait_for_function("window.__stepsize.marks(0).highlight !== null", timeout=10000)
        assert dash.hook("marks(0)")["highlight"]["rows"] == [dash.row_of(d.FROZEN_LAYER)]
        assert [e["pressed"] for e in entries(dash)] == ["false", "true"]

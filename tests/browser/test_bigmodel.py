"""Big models in real Chromium inside a real `tensorboard`: zoom and pan, rows
grouped by module, kinds, sorting, the keyboard, the compare drill-down and
the URL state, on `designed_bigmodel` (600 variables in 12 modules x 100,000
logged steps).

What the dashboard draws (`window.__stepsize.cells()`, the numbers of the
grid drawn) is compared with numpy computed from `tb_stepsize.load()`'s
matrices.  Screenshots go to artifacts/screenshots/.
"""

import os
import tempfile

import numpy as np
import pytest

import designed_bigmodel as d
import tb_stepsize
from browser_helpers import Dashboard, TensorBoard, open_dashboard

GROUP_RUN = f"/#stepsize&p.stepsize.run={d.RUN}"


@pytest.fixture(scope="module")
def server(bigmodel_logdir):
    tmp = tempfile.mkdtemp(prefix="stepsize-bigmodel-")
    with TensorBoard(bigmodel_logdir, os.path.join(tmp, "tensorboard.log")) as tb:
        d.wait_served(tb.url)
        yield tb


@pytest.fixture(scope="module")
def run(bigmodel_logdir):
    return tb_stepsize.load_runs(bigmodel_logdir)[d.RUN]


@pytest.fixture()
def dash(server, browser, screenshots):
    with open_dashboard(browser, server.url + GROUP_RUN) as dash:
        yield dash


def cells(dash, panel=0):
    out = dash.js("p => window.__stepsize.cells(p)", panel)
    cols = len(out["steps"])
    out["grid"] = np.array([np.nan if v is None or isinstance(v, str) else v for v in out["values"]], float).reshape(-1, cols)
    return out


def weights(run):
    return np.array([np.prod(i["shape"]) for i in run.layer_info], float)


def group_members(run, name):
    return [i for i, p in enumerate(run.layers) if p.startswith(name + "/")]


def test_zoom_to_100_steps_shows_the_steps_of_load(dash, run):
    dash.set(start="50001", end="50100")
    out = cells(dash)
    assert out["steps"] == list(range(50001, 50101)) == out["stepEnds"]
    assert out["layers"] == run.layers
    lo, hi = np.searchsorted(run.steps, [50001, 50101])
    np.testing.assert_array_equal(out["grid"], run.matrix("step", "p50")[:, lo:hi])
    view = dash.hook("viewbar()")
    assert "Zoomed: steps 50001\u201350100 of 100000" in view["zoom"] and not view["resetHidden"]
    assert "50001\u201350100, one column each" in dash.js("document.querySelector('.ss-subtitle').textContent")
    dash.shot("bigmodel_zoomed.png")


def test_drag_zooms_steps_and_rows_double_click_resets(dash):
    before = cells(dash)
    box = dash.page.query_selector("iframe").bounding_box()
    a = dash.js("() => window.__stepsize.cellCenter(0, 40, 100)")
    b = dash.js("() => window.__stepsize.cellCenter(0, 40, 160)")
    n = dash.hook("drawCount")
    dash.page.mouse.move(box["x"] + a["x"], box["y"] + a["y"])
    dash.page.mouse.down()
    dash.page.mouse.move(box["x"] + (a["x"] + b["x"]) / 2, box["y"] + a["y"] + 2, steps=3)
    dash.page.mouse.move(box["x"] + b["x"], box["y"] + b["y"], steps=3)
    dash.page.mouse.up()
    dash.wait_drawn(n)
    state = dash.hook("state")
    # one column per pixel here: the drag's ends are known to a column
    assert int(state["start"]) in before["steps"][99:102] and int(state["end"]) in before["stepEnds"][159:162]
    assert state["rows"] == "" and not dash.hook("drill()")["open"]  # a drag is not a click
    zoomed = cells(dash)
    assert (zoomed["steps"][0], zoomed["stepEnds"][-1]) == (int(state["start"]), int(state["end"]))
    assert len(zoomed["steps"]) > 600  # pooled again, from the zoomed range only
    # a drag down the labels zooms rows only
    a = dash.js("() => window.__stepsize.cellCenter(0, 10, 0)")
    b = dash.js("() => window.__stepsize.cellCenter(0, 20, 0)")
    label_x = box["x"] + dash.hook("panel(0)")["canvas"]["x"] + 20
    n = dash.hook("drawCount")
    dash.page.mouse.move(label_x, box["y"] + a["y"])
    dash.page.mouse.down()
    dash.page.mouse.move(label_x, box["y"] + b["y"], steps=4)
    dash.page.mouse.up()
    dash.wait_drawn(n)
    assert dash.hook("state")["rows"] == "10-20"
    assert cells(dash)["layers"] == before["layers"][10:21]
    assert "rows 11\u201321 of 600" in dash.hook("viewbar()")["zoom"]
    n = dash.hook("drawCount")
    c = dash.js("() => window.__stepsize.cellCenter(0, 3, 3)")
    dash.page.mouse.dblclick(box["x"] + c["x"], box["y"] + c["y"])
    dash.wait_drawn(n)
    dash.frame.wait_for_function("() => window.__stepsize.panel(0).rows === 600")
    state = dash.hook("state")
    assert (state["start"], state["end"], state["rows"]) == ("", "", "")
    assert dash.hook("viewbar()")["resetHidden"]


def test_shift_wheel_pans_a_zoomed_range(dash):
    dash.set(start="1001", end="1100")
    c = dash.js("() => window.__stepsize.cellCenter(0, 5, 50)")
    box = dash.page.query_selector("iframe").bounding_box()
    dash.page.mouse.move(box["x"] + c["x"], box["y"] + c["y"])
    n = dash.hook("drawCount")
    dash.page.keyboard.down("Shift")
    dash.page.mouse.wheel(0, 100)
    dash.page.keyboard.up("Shift")
    dash.wait_drawn(n)
    dash.frame.wait_for_function("() => window.__stepsize.state.start === '1026'")
    assert dash.hook("state")["end"] == "1125" and cells(dash)["steps"][0] == 1026


def test_groups_equal_the_pooled_members(dash, run):
    weight = weights(run)
    # zoomed: each group cell is the size-weighted mean of its members' steps
    dash.set(group="2", start="20001", end="20100")
    out = cells(dash)
    names = [f"model/block{m:02d}" for m in range(d.MODULES)]
    assert out["layers"] == [n + "/*" for n in names] and out["rowMembers"] == [50] * 12
    lo, hi = np.searchsorted(run.steps, [20001, 20101])
    matrix = run.matrix("step", "p50")[:, lo:hi]
    for g, name in enumerate(names):
        m = group_members(run, name)
        expected = (matrix[m] * weight[m, None]).sum(axis=0) / weight[m].sum()
        np.testing.assert_allclose(out["grid"][g], expected, rtol=1e-12)
    # not zoomed: steps pooled as the step axis pools (max of max), then the members' max
    dash.set(start="", end="", stat="max")
    out = cells(dash)
    full = run.matrix("step", "max")
    for g, name in enumerate(names):
        m = group_members(run, name)
        for j in (0, 7, len(out["steps"]) - 1):
            lo, hi = np.searchsorted(run.steps, [out["steps"][j], out["stepEnds"][j] + 1])
            assert out["grid"][g, j] == full[m, lo:hi].max()
    dash.set(stat="p50")
    out = cells(dash)
    full = run.matrix("step", "p50")
    for g, name in ((7, names[7]), (11, names[11])):
        m = group_members(run, name)
        for j in (0, 5, len(out["steps"]) - 1):
            lo, hi = np.searchsorted(run.steps, [out["steps"][j], out["stepEnds"][j] + 1])
            pooled = full[m, lo:hi].mean(axis=1)
            expected = (pooled * weight[m]).sum() / weight[m].sum()
            assert out["grid"][g, j] == pytest.approx(expected, rel=1e-12)
    dash.shot("bigmodel_grouped.png")


def test_click_on_a_group_label_lists_its_members(dash, run):
    dash.set(group="2")
    box = dash.page.query_selector("iframe").bounding_box()
    canvas = dash.hook("panel(0)")["canvas"]
    c = dash.js("() => window.__stepsize.cellCenter(0, 3, 0)")
    n = dash.hook("drawCount")
    dash.page.mouse.click(box["x"] + canvas["x"] + 60, box["y"] + c["y"])
    dash.wait_drawn(n)
    state = dash.hook("state")
    assert state["expand"] == '["model/block03"]'
    out = cells(dash)
    assert len(out["layers"]) == 12 + 50
    assert out["layers"][3] == "model/block03/*" and out["layers"][4:54] == [p for p in run.layers if p.startswith("model/block03/")]
    assert out["rowGroups"][4:54] == ["model/block03"] * 50 and out["rowMembers"][4] == 0
    # a member row is its variable's row (pooled over each column's steps)
    full, first = run.matrix("step", "p50"), run.layers.index(out["layers"][4])
    for j in (0, len(out["steps"]) - 1):
        lo, hi = np.searchsorted(run.steps, [out["steps"][j], out["stepEnds"][j] + 1])
        assert out["grid"][4, j] == pytest.approx(full[first, lo:hi].mean(), rel=1e-12)
    dash.set(expand="")
    assert len(cells(dash)["layers"]) == 12


def test_kind_filter(dash, run):
    dash.frame.select_option("#ss-kind", "bias")
    dash.frame.wait_for_function("() => window.__stepsize.panel(0).rows === 120")
    layers = cells(dash)["layers"]
    assert layers == [p for p in run.layers if p.endswith("/dense/bias")]
    dash.frame.select_option("#ss-kind", "norm")
    dash.frame.wait_for_function("() => window.__stepsize.panel(0).rows === 240")
    assert all(p.endswith(("/gamma", "/beta")) for p in cells(dash)["layers"])


def test_sorting_puts_the_outlier_first(dash, run):
    n = dash.hook("drawCount")
    dash.frame.select_option("#ss-sort", "mean")
    dash.wait_drawn(n)
    assert cells(dash)["layers"][0] == d.OUTLIER
    assert dash.hook("state")["sort"] == "mean"
    # by the value at the selected step, and by name
    dash.set(sort="value", step="777")
    assert cells(dash)["layers"][0] == d.OUTLIER
    dash.set(sort="name")
    assert cells(dash)["layers"] == sorted(run.layers)
    # grouped: the outlier's module first, its members sorted among themselves
    dash.set(sort="mean", group="2", expand='["model/block07"]', step="")
    out = cells(dash)
    assert out["layers"][0] == "model/block07/*" and out["layers"][1] == d.OUTLIER
    dash.shot("bigmodel_sorted.png")


def test_url_state_round_trips(dash, server, browser):
    dash.set(group="2", expand='["model/block07"]', sort="mean", start="30001", end="30100", kind="kernel")
    before = cells(dash)
    link = dash.hook("link()")
    for key in ("group", "expand", "sort", "start", "end", "kind"):
        assert f"p.stepsize.{key}=" in link
    dash.page.reload()
    iframe = dash.page.wait_for_selector("iframe", timeout=30000)
    again = Dashboard(dash.page, iframe.content_frame())
    again.wait_drawn()
    again.settle()
    state = again.hook("state")
    assert (state["group"], state["sort"], state["start"], state["end"], state["kind"]) == ("2", "mean", "30001", "30100", "kernel")
    after = cells(again)
    assert after["layers"] == before["layers"] and after["steps"] == before["steps"]
    np.testing.assert_array_equal(after["grid"], before["grid"])
    with open_dashboard(browser, link) as shared:
        assert cells(shared)["layers"] == before["layers"]


def focusables(dash):
    """Ids (or descriptions) of the iframe's visible, enabled controls a Tab stops at."""
    return dash.js(
        """() => {
          const all = Array.from(document.querySelectorAll('select, input, button, [tabindex="0"]'));
          const visible = all.filter(e => e.offsetParent !== null && !e.disabled && e.getClientRects().length);
          // a radio group is one stop: its checked button
          return visible.filter(e => !(e.type === 'radio' && !e.checked && document.querySelector(`input[name="${e.name}"]:checked`)))
            .map(e => e.id || e.className || e.tagName);
        }"""
    )


def test_tab_reaches_every_control_with_a_visible_focus(dash):
    expected = focusables(dash)
    assert "ss-run" in expected and "ss-group" in expected and "ss-sort" in expected and "ss-overlay" in expected
    dash.frame.focus("#ss-run")
    seen = []
    for _ in range(len(expected) + 10):
        info = dash.js(
            """() => { const e = document.activeElement; const s = getComputedStyle(e);
              return {id: e.id || e.className || e.tagName, outline: s.outlineStyle, width: parseFloat(s.outlineWidth)}; }"""
        )
        if info["id"] in ("BODY", "") or (seen and info["id"] == seen[0]["id"]):
            break
        seen.append(info)
        dash.page.keyboard.press("Tab")
    reached = [s["id"] for s in seen]
    assert set(expected) <= set(reached), set(expected) - set(reached)
    for s in seen[1:]:  # reached by the keyboard: a focus ring shows
        assert s["outline"] != "none" and s["width"] >= 1, s


def test_arrow_keys_enter_and_escape(dash, run):
    dash.frame.focus("canvas.ss-overlay")
    for key in ("Home", "ArrowDown", "ArrowDown", "ArrowRight"):
        dash.page.keyboard.press(key)
    view = dash.hook("viewbar()")
    assert view["cursor"] == {"row": 2, "col": 1}
    layer = run.layers[2]
    tip = dash.js("() => { const t = document.querySelector('.ss-tooltip'); return [t.hidden, t.querySelector('.ss-tip-layer').textContent]; }")
    assert tip == [False, layer]
    assert view["readout"].startswith(layer + " \u00b7 steps ")
    dash.page.keyboard.press("Enter")
    dash.frame.wait_for_function("() => window.__stepsize.drill().hasData")
    assert dash.hook("drill()")["layer"] == layer and dash.hook("state")["layer"] == layer
    dash.page.keyboard.press("Escape")
    assert not dash.hook("drill()")["open"] and dash.hook("state")["layer"] == ""
    # Enter on a group row lists its members
    dash.set(group="2")
    dash.frame.focus("canvas.ss-overlay")  # the cursor stays where it was (row 2)
    dash.page.keyboard.press("ArrowUp")
    n = dash.hook("drawCount")
    dash.page.keyboard.press("Enter")
    dash.wait_drawn(n)
    assert dash.hook("state")["expand"] == '["model/block01"]'


def test_compare_drill_down_shows_both_runs(dash):
    dash.set(compare="side", run2=d.OTHER_RUN)
    box = dash.page.query_selector("iframe").bounding_box()
    c = dash.js("() => window.__stepsize.cellCenter(0, 5, 10)")
    dash.page.mouse.click(box["x"] + c["x"], box["y"] + c["y"])
    dash.frame.wait_for_function("() => window.__stepsize.drills().every(d => d.open && d.hasData)")
    drills = dash.hook("drills()")
    assert [x["run"] for x in drills] == [d.RUN, d.OTHER_RUN]
    assert all(x["layer"] == d.LAYERS[5]["path"] for x in drills)
    assert f"run {d.OTHER_RUN}" in drills[1]["meta"]
    dash.page.wait_for_timeout(300)
    dash.shot("bigmodel_compare_drill.png")
    dash.page.keyboard.press("Escape")
    assert not any(x["open"] for x in dash.hook("drills()"))
    dash.set(compare="off")
    dash.page.wait_for_timeout(300)
    dash.js("() => window.__stepsize.app.onCellClick(window.__stepsize.app.card.panels[0], {row: 6, col: 10})")
    dash.frame.wait_for_function("() => window.__stepsize.drill().open")
    assert [x["open"] for x in dash.hook("drills()")] == [True]  # the other run's is gone

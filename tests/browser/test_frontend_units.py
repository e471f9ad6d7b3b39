"""Unit tests of the dashboard's pure modules, run in real Chromium.

There is no node in CI: the installed package's static files are served by
a small HTTP server, a blank page imports the module under test and each
test evaluates a function over it.  state.js (the selection and its URLs),
grid.js (the one decoder of the server's grid encoding), scale.js (the
colour range), findings.js (the panel's texts and the heatmap's marks),
catalog.js and format.js need no DOM, so nothing else of the dashboard runs.
"""

import http.server
import math
import os
import threading

import pytest

import tb_stepsize
from tb_stepsize import assets

STATIC = os.path.join(os.path.dirname(tb_stepsize.__file__), "static")
PAGE = b"<!DOCTYPE html><html><head><meta charset='utf-8'></head><body></body></html>"


@pytest.fixture(scope="module")
def page(browser):
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            name = self.path.split("?")[0].rsplit("/", 1)[-1]
            if name == "page.html":
                body, ctype = PAGE, "text/html"
            elif name in assets.STATIC_FILES:
                with open(os.path.join(STATIC, name), "rb") as f:
                    body, ctype = f.read(), assets.STATIC_FILES[name]
            else:
                self.send_response(404)
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    p = browser.new_page()
    errors = []
    p.on("pageerror", lambda e: errors.append(str(e)))
    p.goto(f"http://127.0.0.1:{server.server_address[1]}/page.html")
    yield p
    p.close()
    server.shutdown()
    assert not errors, errors


def run(page, module, body, arg=None):
    """`body` (a JS function body over the module `m` and `arg`), awaited."""
    return page.evaluate(
        f"async (arg) => {{ const m = await import('./{module}'); {body} }}",
        arg,
    )


# ------------------------------------------------------------------ state.js


def test_defaults_make_an_empty_hash_and_back(page):
    out = run(page, "state.js", "return [m.toHash(m.DEFAULTS), m.fromHash(''), m.fromHash('#'), m.linkParams(m.DEFAULTS)];")
    assert out == ["", {}, {}, {}]


@pytest.mark.parametrize(
    "changes",
    [
        {"run": "a b&c=d#e", "layer": "model/dense/kernel", "step": "21"},
        {"run": "<img src=x onerror=1>", "filter": "/^model\\/(a|b)$/i", "metric": "update_ratio", "stat": "value"},
        {"run": "r\u00e9sum\u00e9 \u2603", "x": "wall", "cmap": "magma", "range": "fixed", "lo": "1e-5", "hi": "0.01"},
        {"run": "a", "compare": "ratio", "run2": "b+c"},
    ],
)
def test_selection_round_trips_through_both_hashes(page, changes):
    out = run(
        page,
        "state.js",
        """
        const state = { ...m.DEFAULTS, ...arg };
        const host = m.withHostEntries('#stepsize&other=1', m.linkParams(state));
        return { iframe: m.fromHash('#' + m.toHash(state)), host: m.fromHostHash(host), raw: host };
        """,
        changes,
    )
    assert out["iframe"] == changes
    assert out["host"] == changes
    assert out["raw"].startswith("#stepsize&other=1&p.stepsize.")


def test_link_params_keep_only_what_matters(page):
    out = run(
        page,
        "state.js",
        """
        const s = { ...m.DEFAULTS, run: 'a', run2: 'b', lo: '1', hi: '2', stat: 'p50', filter: '' };
        return [m.linkParams(s), m.linkParams({ ...s, compare: 'side', range: 'fixed' })];
        """,
    )
    assert out[0] == {"run": "a"}  # run2 without compare, lo/hi without a fixed range
    assert out[1] == {"run": "a", "run2": "b", "lo": "1", "hi": "2", "compare": "side", "range": "fixed"}


def test_invalid_url_values_are_ignored(page):
    out = run(
        page,
        "state.js",
        """
        return [
          m.fromHash('x=sideways&cmap=jet&range=weird&compare=maybe&bogus=1&toString=x&constructor=y'),
          m.fromHash('run=first&run=second&x=wall'),
          m.fromHostHash('#stepsize&p.stepsize.run=a+b&p.stepsize.layer=%E0%A4%A&p.stepsize.x=sideways&p.other.run=no'),
          m.parseEntries([['run', 5], ['metric', 'step'], ['__proto__', 'x']]),
        ];
        """,
    )
    assert out[0] == {}
    assert out[1] == {"run": "first", "x": "wall"}
    assert out[2] == {"run": "a b"}  # a malformed escape drops only its entry
    assert out[3] == {"metric": "step"}


def test_host_hash_belongs_to_the_shown_tab(page):
    out = run(
        page,
        "state.js",
        """
        return [
          m.withHostEntries('#scalars&p.stepsize.run=a', { run: 'b' }),
          m.withHostEntries('#stepsize&p.stepsize.run=a&p.stepsize.x=wall&p.stepsize%2Estat=p99', { run: 'b' }),
          m.withHostEntries('stepsize', {}),
        ];
        """,
    )
    assert out == [None, "#stepsize&p.stepsize.run=b", "#stepsize"]


TAGS = {
    "empty": {"metrics": [], "stats": {}, "num_steps": 0},
    "sgd": {"metrics": ["step", "update_ratio"], "stats": {"step": ["min", "p50", "max"], "update_ratio": ["value"]}, "num_steps": 5},
    "adam": {"metrics": ["step"], "stats": {"step": ["min", "p25", "p99"]}, "num_steps": 9},
}


def test_resolve_makes_the_selection_valid(page):
    out = run(
        page,
        "state.js",
        """
        const [tags, d] = [arg, m.DEFAULTS];
        return [
          m.resolve({ ...d, run: 'gone', run2: 'gone' }, tags, 'p99'),
          m.resolve({ ...d, run: 'sgd', run2: 'sgd', metric: 'effective_lr', stat: 'p99' }, tags, 'max'),
          m.resolve({ ...d, run: 'sgd', metric: 'update_ratio', stat: 'p50' }, tags, 'p50'),
          m.resolve({ ...d, run: 'adam', stat: 'p75' }, tags, 'p75'),
          m.resolve({ ...d, run: 'x' }, {}, 'p50'),
        ].map((s) => [s.run, s.run2, s.metric, s.stat]);
        """,
        TAGS,
    )
    assert out[0] == ["adam", "empty", "step", "p99"]  # the first run (sorted) with data
    assert out[1] == ["sgd", "adam", "step", "max"]  # the preferred quantile
    assert out[2] == ["sgd", "adam", "update_ratio", "value"]  # the only statistic
    assert out[3] == ["adam", "empty", "step", "min"]  # neither preferred nor p50: the first
    assert out[4] == ["", "", "step", "p50"]  # nothing listed: nothing to fix


def test_layer_filter(page):
    out = run(
        page,
        "state.js",
        """
        const paths = ['model/Head/kernel', 'model/head/bias', 'model/fast/kernel'];
        const keep = (t) => { const f = m.layerFilter(t); return [paths.filter(f.test), f.error]; };
        return [keep(''), keep('  HEAD '), keep('/^model\\\\/(fast|head)\\\\/kernel$/'), keep('/head/i'), keep('/(/')];
        """,
    )
    assert out[0] == [["model/Head/kernel", "model/head/bias", "model/fast/kernel"], None]
    assert out[1] == [["model/Head/kernel", "model/head/bias"], None]
    assert out[2] == [["model/fast/kernel"], None]
    assert out[3] == [["model/Head/kernel", "model/head/bias"], None]
    assert out[4][0] == ["model/Head/kernel", "model/head/bias", "model/fast/kernel"] and out[4][1]


# ------------------------------------------------------------------- grid.js

HEATMAP = {
    "run": "r",
    "metric": "step",
    "stat": "p50",
    "layers": ["a", "b", "c"],
    "steps": [1, 3, 5],
    "step_ends": [2, 4, 5],
    "wall_times": [10.0, 11.0, 12.0],
    # b's last row is short (missing cells); c's first cell is null *and* +Inf
    "values": [[1e-4, None, 0.0], [2e-3, None], [None, 5e-6, None]],
    "nonfinite": [[0, 1, "nan"], [2, 0, "inf"], [2, 2, "-inf"], [7, 0, "nan"]],
    "pooling": "mean",
}


def test_heatmap_answer_decodes_to_values_and_kinds(page):
    out = run(
        page,
        "grid.js",
        """
        const g = m.Grid.fromHeatmap(arg);
        const cells = [];
        for (let i = 0; i < g.rows; i++) for (let j = 0; j < g.cols; j++) cells.push(g.value(i, j));
        return { cells, rows: g.rows, cols: g.cols, range: g.range(), kinds: Array.from(g.kinds),
                 ends: g.stepEnds, pooling: g.info.pooling, inf: g.values[6] === Infinity, ninf: g.values[8] === -Infinity };
        """,
        HEATMAP,
    )
    assert (out["rows"], out["cols"]) == (3, 3)
    assert out["cells"] == [1e-4, "nan", 0, 2e-3, "missing", "missing", "inf", 5e-6, "-inf"]
    assert out["kinds"] == [0, 1, 0, 0, 4, 4, 2, 0, 3]
    assert out["inf"] and out["ninf"]
    # smallest positive and largest finite value: zero and non-finite cells do not count
    assert out["range"] == {"lo": 5e-6, "hi": 2e-3}
    assert out["ends"] == [2, 4, 5] and out["pooling"] == "mean"


def test_grid_without_values_has_no_range(page):
    out = run(
        page,
        "grid.js",
        "return m.Grid.fromHeatmap({ ...arg, values: [[0, null, 0], [], [null, null, null]], nonfinite: [] }).range();",
        HEATMAP,
    )
    assert out == {"lo": None, "hi": None}


def test_stat_tables_decode_rows_and_single_cells(page):
    out = run(
        page,
        "grid.js",
        """
        const stats = ['min', 'p50', 'max', 'nonfinite'];
        const series = new m.StatTable(stats, [[1, 2, 3, 0], [null, null, null, null], [null, 4, null, 7]],
                                       [[2, 0, 'nan'], [2, 2, 'inf']]);
        const cell = m.StatTable.ofRow(stats, [0.5, null, null, 2], [[1, '-inf']]);
        const col = (t, r) => stats.map((s) => t.get(r, s));
        return [col(series, 0), col(series, 1), col(series, 2), col(cell, 0), cell.rows, series.get(0, 'p99'),
                series.get(3, 'min'), series.has('p50'), series.has('rms')];
        """,
    )
    assert out[0] == [1, 2, 3, 0]
    assert out[1] == [None, None, None, None]  # not logged
    assert out[2] == ["nan", 4, "inf", 7]
    assert out[3] == [0.5, "-inf", None, 2]
    assert out[4] == 1
    assert out[5] is None and out[6] is None  # undefined: no such statistic / row
    assert out[7:] == [True, False]


def test_ratio_grid(page):
    other = dict(HEATMAP, run="s", layers=["c", "a"], values=[[1.0, 1.0, 1.0], [0.0, 2e-4, 1e-4]], nonfinite=[])
    out = run(
        page,
        "grid.js",
        """
        const g = m.Grid.ratio(m.Grid.fromHeatmap(arg[0]), m.Grid.fromHeatmap(arg[1]));
        return { layers: g.layers, a: [0, 1, 2].map((j) => g.value(0, j)), c: [0, 1, 2].map((j) => g.value(1, j)),
                 of: g.info.ratioOf, parts: g.parts[0] };
        """,
        [HEATMAP, other],
    )
    assert out["layers"] == ["a", "c"]  # rows matched by path, in the first run's order; b has no partner
    assert out["a"] == ["inf", "nan", 0]  # 1e-4 / 0, a NaN numerator stays NaN, 0 / 1e-4
    assert out["c"] == ["inf", 5e-6, "-inf"]
    assert out["of"] == ["r", "s"] and out["parts"] == [1e-4, 0]


def test_filtered_grid_is_cached_and_keeps_order(page):
    out = run(
        page,
        "grid.js",
        """
        const g = m.Grid.fromHeatmap(arg);
        const keepAll = g.filtered(() => true);
        const f1 = g.filtered((p) => p !== 'b');
        const f2 = g.filtered((p) => p !== 'b');
        return [keepAll === g, f1 === f2, f1.layers, [0, 1, 2].map((j) => f1.value(1, j))];
        """,
        HEATMAP,
    )
    assert out == [True, True, ["a", "c"], ["inf", 5e-6, "-inf"]]


# ------------------------------------------------------------------ scale.js


def scale_of(page, grids, options):
    return run(
        page,
        "scale.js",
        f"""
        const {{ Grid }} = await import('./grid.js');
        const grids = arg[0].map((a) => Grid.fromHeatmap(a));
        let out = m.colourScale(grids, arg[1]);
        if (grids.length === 2 && arg[1].ratio) out = m.colourScale([Grid.ratio(grids[0], grids[1])], arg[1]);
        return {{ lo: out.scale.lo, hi: out.scale.hi, note: out.note }};
        """,
        [grids, options],
    )


def grid_of(values, run="r"):
    return dict(HEATMAP, run=run, layers=[f"l{i}" for i in range(len(values))], steps=list(range(len(values[0]))),
                step_ends=list(range(len(values[0]))), values=values, nonfinite=[])


def test_auto_range_spans_all_grids(page):
    out = scale_of(page, [grid_of([[1e-5, 0.0], [3e-4, None]]), grid_of([[2e-2, 4e-6]], "s")], {})
    assert out == {"lo": 4e-6, "hi": 2e-2, "note": ""}


def test_reference_level_joins_the_range_within_three_decades(page):
    near = scale_of(page, [grid_of([[1e-5, 1e-4]])], {"reference": {"value": 1e-3, "label": "x"}})
    far = scale_of(page, [grid_of([[1e-9, 1e-8]])], {"reference": {"value": 1e-3, "label": "x"}})
    assert (near["lo"], near["hi"]) == (1e-5, 1e-3)
    assert (far["lo"], far["hi"]) == (1e-9, 1e-8)


def test_fixed_range_and_its_fallback(page):
    grids = [grid_of([[1e-5, 1e-4]])]
    fixed = scale_of(page, grids, {"range": "fixed", "lo": "1e-6", "hi": " 1e-2"})
    assert (fixed["lo"], fixed["hi"]) == (1e-6, 1e-2) and fixed["note"] == "Data: 1e-5 to 1e-4."
    for lo, hi in (("1e-2", "1e-6"), ("0", "1"), ("", "1"), ("abc", "1")):
        bad = scale_of(page, grids, {"range": "fixed", "lo": lo, "hi": hi})
        assert (bad["lo"], bad["hi"]) == (1e-5, 1e-4) and "using auto" in bad["note"], (lo, hi)


def test_range_without_data_and_of_one_value(page):
    empty = scale_of(page, [grid_of([[0.0, None]])], {})
    assert (empty["lo"], empty["hi"]) == (1e-8, 1)
    one = scale_of(page, [grid_of([[1e-4, 1e-4]])], {})
    assert one["lo"] == pytest.approx(1e-4 / math.sqrt(2)) and one["hi"] == pytest.approx(1e-4 * math.sqrt(2))


def test_ratio_range_is_symmetric_around_one(page):
    out = scale_of(page, [grid_of([[1.0, 2.0]]), grid_of([[1e-2, 1.0]], "s")], {"ratio": True, "range": "fixed", "lo": "1", "hi": "2"})
    assert out["lo"] == pytest.approx(1e-2) and out["hi"] == pytest.approx(1e2)
    assert out["note"] == "Ratios use a symmetric range around 1."


def test_cell_codes(page):
    out = run(
        page,
        "scale.js",
        """
        const { Grid } = await import('./grid.js');
        const { CODE } = await import('./colormaps.js');
        const g = Grid.fromHeatmap(arg);
        const codes = Array.from(m.computeCodes(g, new m.LogScale(1e-5, 1e-3)));
        return [codes, [CODE.nan, CODE.inf, CODE['-inf'], CODE.zero, CODE.missing]];
        """,
        grid_of([[1e-5, 1e-3, 3e-4, 1e-9, 5.0, 0.0, None]]),
    )
    codes, (nan, inf, ninf, zero, missing) = out
    assert codes == [0, 255, 189, 0, 255, zero, missing]  # log10(3e-4) = -3.52: 1.48 decades of 2 -> 189 of 256
    assert len({nan, inf, ninf, zero, missing}) == 5 and min(nan, inf, ninf, zero, missing) >= 256


# --------------------------------------------------------------- findings.js


def finding(kind, severity, layer, first, last, layers=None, metric="step"):
    return {
        "kind": kind, "severity": severity, "layer": layer, "metric": metric, "first_step": first,
        "last_step": last, "value": 0.5, "threshold": 0.5, "message": "m",
        "layers": layers if layers is not None else ([layer] if layer else []),
    }


FOUND = [
    finding("partly_frozen", "warning", "a/kernel", 20, 60),
    finding("outlier_layer", "info", "k/bias", 1, 60),
    finding("nonfinite", "error", "b/kernel", 31, 40, layers=["b/kernel", "b/bias"]),
    finding("no_update", "error", None, 5, 60, layers=["a/kernel", "b/kernel", "b/bias", "k/bias"]),
    finding("ratio_high", "warning", "a/kernel", 3, 9, metric="update_ratio"),
]
VIEWS = {"partly_frozen": {"metric": "step", "stat": "zero_fraction"}, "ratio_high": {"metric": "update_ratio", "stat": "value"},
         "lost_to_rounding": {"metric": "lost_fraction", "stat": "value"}}


def test_findings_summary_texts(page):
    out = run(page, "findings.js", "return [[], arg.slice(0, 1), arg.slice(0, 2), arg].map(m.summaryText);", FOUND)
    assert out == [
        "No findings",
        "1 finding: 1 warning",
        "2 findings: 1 warning, 1 info",
        "5 findings: 2 errors, 2 warnings, 1 info",
    ]
    ranges = run(page, "findings.js", "return arg.map(m.stepRangeText);", [FOUND[0], finding("x", "info", "a", 7, 7)])
    assert ranges == ["steps 20–60", "step 7"]


def test_findings_order_ids_and_severities(page):
    out = run(
        page,
        "findings.js",
        "return [m.ordered(arg).map(m.findingId), m.severityOf({severity: '<b>'}), m.findingId({kind: 'k', layer: null, first_step: 3})];",
        FOUND,
    )
    assert out[0] == ["no_update::5", "nonfinite:b/kernel:31", "ratio_high:a/kernel:3", "partly_frozen:a/kernel:20", "outlier_layer:k/bias:1"]
    assert out[1] == "info" and out[2] == "k::3"


def test_findings_views(page):
    stats = {"step": ["min", "p50", "max", "zero_fraction"], "update_ratio": ["value"]}
    out = run(
        page,
        "findings.js",
        "const [f, views, stats] = arg; return f.map((x) => m.viewOf(x, views, stats, 'max'));",
        [[FOUND[0], FOUND[4], finding("lost_to_rounding", "warning", "a", 1, 9, metric="lost_fraction"),
          finding("outlier_layer", "info", "a", 1, 9), finding("rms_spike", "warning", "a", 1, 9, metric="second_moment_rms")],
         VIEWS, stats],
    )
    assert out == [
        {"metric": "step", "stat": "zero_fraction"},  # the served view
        {"metric": "update_ratio", "stat": "value"},
        None,  # the run has neither its view's metric nor its own
        {"metric": "step", "stat": "max"},  # no view served: its own metric, the current statistic
        None,
    ]


def test_findings_marks(page):
    out = run(
        page,
        "findings.js",
        "const k = m.marksOf(arg, 'nonfinite:b/kernel:31'); return [[...k.rows.entries()], k.ticks, k.highlight, m.marksOf(arg, '').highlight, m.marksOf(arg, 'gone').highlight];",
        FOUND,
    )
    rows, ticks, highlight, none, gone = out
    assert dict(rows) == {"a/kernel": "error", "b/kernel": "error", "b/bias": "error", "k/bias": "error"}
    assert ticks == [5, 31]
    assert highlight == {"layers": ["b/kernel", "b/bias"], "first": 31, "last": 40, "severity": "error", "whole": False}
    assert none is None and gone is None
    warnings_only = run(page, "findings.js", "return [...m.rowMarkers(arg).entries()];", [FOUND[1], FOUND[0], FOUND[4]])
    assert dict(warnings_only) == {"k/bias": "info", "a/kernel": "warning"}
    whole = run(page, "findings.js", "return m.marksOf(arg, 'no_update::5').highlight.whole;", FOUND)
    assert whole is True


@pytest.mark.parametrize(
    "first, last, expected",
    [(1, 1, [0, 0]), (4, 4, [1, 1]), (3, 3, None), (0, 100, [0, 3]), (5, 8, [1, 2]), (9, 30, [3, 3]), (31, 40, None), (-5, 0, None)],
)
def test_column_span_of_pooled_steps(page, first, last, expected):
    # columns hold the logged steps 1-2, 4-6, 7-8, 10-12 (3 and 9 not logged)
    out = run(page, "findings.js", "return m.columnSpan([1, 4, 7, 10], [2, 6, 8, 12], arg[0], arg[1]);", [first, last])
    assert out == expected


# ----------------------------------------------------- catalog.js, format.js


def test_catalog_lookups(page):
    info = {
        "metrics": [{"name": "step", "label": "step", "unit": "u", "help": "h", "reference": None}],
        "element_stats": ["min", "p50", "max", "zero_fraction", "nonfinite"],
        "stat_labels": {"p50": "median (p50)"},
        "quantile_stats": ["min", "p50", "max"],
    }
    out = run(
        page,
        "catalog.js",
        """
        const c = new m.Catalog(arg);
        return [c.metric('step').unit, c.metric('new_one'), c.statLabel('p50'), c.statLabel('rms'),
                c.isQuantile('max'), c.isQuantile('nonfinite'), c.ordered(['value', 'nonfinite', 'max', 'min'])];
        """,
        info,
    )
    assert out[0] == "u"
    assert out[1]["label"] == "new_one" and out[1]["reference"] is None and out[1]["help"]
    assert out[2:6] == ["median (p50)", "rms", True, False]
    assert out[6] == ["min", "max", "nonfinite", "value"]


def test_number_formats(page):
    out = run(
        page,
        "format.js",
        """
        return [m.formatExact(0), m.formatExact(1.2345678e-4), m.formatExact(0.0123456789),
                m.formatValue(NaN), m.formatValue(-Infinity), m.formatValue(1.23456e-7, 4), m.formatValue(null),
                m.describeKind('nan'), m.describeKind('-inf'), m.describeKind('missing'), m.describeKind(3),
                m.formatDuration(4.25), m.formatDuration(185), m.formatDuration(7800)];
        """,
    )
    assert out == [
        "0 (exactly)", "1.23457e-4", "0.0123457",
        "NaN", "\u2212Inf", "1.235e-7", "missing",
        "NaN", "\u2212Inf", "not logged", 3,
        "4.3s", "3m05s", "2h10m",
    ]


# ------------------------------------------------------------------ rows.js and the big-model state



def grid_js(rows):
    """JS building a Grid of `rows` ([path, members, group, [values]]) over rows.js's module `m` and grid.js `G`."""
    return (
        "const G = await import('./grid.js');"
        f"const rows = {rows!r};".replace("None", "null")
        + "const grid = G.Grid.fromHeatmap({run: 'r', metric: 'step', stat: 'p50', layers: rows.map(r => r[0]),"
        " row_members: rows.map(r => r[1]), row_groups: rows.map(r => r[2]), steps: rows[0][3].map((_, j) => j + 1),"
        " values: rows.map(r => r[3]), nonfinite: []});"
    )


def test_sort_rows_by_value_mean_and_name(page):
    rows = [
        ["b/kernel", 0, "", [1.0, 5.0]],
        ["a/kernel", 0, "", [3.0, 1.0]],
        ["c/bias", 0, "", [None, None]],
        ["d/bias", 0, "", [2.0, 4.0]],
    ]
    out = run(
        page,
        "rows.js",
        grid_js(rows) + "return ['model', 'value', 'mean', 'name', 'nope'].map(s => m.sortRows(grid, s, 0))"
        ".concat([m.sortRows(grid, 'value', 1)]);",
    )
    # mean: b and d tie at 3 (model order), no value last
    assert out == [[0, 1, 2, 3], [1, 3, 0, 2], [0, 3, 1, 2], [1, 0, 2, 3], [0, 1, 2, 3], [0, 3, 1, 2]]


def test_sort_rows_keeps_group_members_with_their_group(page):
    rows = [
        ["m0/*", 2, "m0", [1.0]],
        ["m1/*", 2, "m1", [9.0]],
        ["m1/a", 0, "m1", [2.0]],
        ["m1/b", 0, "m1", [20.0]],
        ["x/kernel", 0, "", [5.0]],
    ]
    out = run(page, "rows.js", grid_js(rows) + "return m.sortRows(grid, 'mean');")
    assert out == [1, 3, 2, 4, 0]


def test_module_labels_of_thin_rows(page):
    layers = [f"net/block{b}/layer{j}/kernel" for b in range(3) for j in range(10)]
    out = run(page, "rows.js", "return [m.moduleLabels(arg, arg.map(() => 0), 4), m.moduleLabels(arg, arg.map(() => 0), 12)];", layers)
    fine, coarse = out
    # every 4th row has room: depth 3 (30 modules) does not fit, depth 2 does
    assert fine["modules"] and [x["text"] for x in fine["items"]] == ["net/block0/*", "net/block1/*", "net/block2/*"]
    assert [x["row"] for x in fine["items"]] == [0, 10, 20] and all(x["top"] for x in fine["items"])
    assert coarse["modules"] and [x["row"] for x in coarse["items"]] == [0, 12, 24]  # block1 labelled where there is room
    # sorted across modules: every 4th row, labelled with its path
    shuffled = layers[::3] + layers[1::3] + layers[2::3]
    mixed = run(page, "rows.js", "return m.moduleLabels(arg, arg.map(() => 0), 4);", shuffled)
    assert not mixed["modules"] and [x["row"] for x in mixed["items"]] == [0, 4, 8, 12, 16, 20, 24, 28]
    # a group row and its listed members: labelled by modules deeper than the group
    rows = ["net/block0/*"] + [f"net/block0/part{j // 5}/v{j}" for j in range(10)] + ["net/block1/*", "net/block2/*"]
    members = [10] + [0] * 10 + [10, 10]
    groups = ["net/block0"] * 11 + ["net/block1", "net/block2"]
    listed = run(page, "rows.js", "return m.moduleLabels(arg[0], arg[1], 2, (i) => arg[0][i], arg[2]);", [rows, members, groups])
    assert listed["modules"] and [(x["row"], x["text"]) for x in listed["items"]] == [
        (0, "net/block0/*"), (2, "net/block0/part0/*"), (6, "net/block0/part1/*"), (11, "net/block1/*")]


def test_big_model_state_keys(page):
    out = run(
        page,
        "state.js",
        "return [m.fromHash('#start=10&end=20&rows=3-9&group=2&kind=bias&sort=mean&expand=%5B%22a%22%5D'),"
        " m.fromHash('#start=x&end=-1&rows=3&group=0&kind=weights&sort=up&expand=a'),"
        " m.expandedGroups({expand: '[\"a\", 3, \"b\"]'}), m.expandedGroups({expand: 'nope'}),"
        " m.rowRange('3-9', 100), m.rowRange('0-99', 100), m.rowRange('5-500', 20), m.rowRange('', 5),"
        " m.linkParams({...m.DEFAULTS, expand: '[\"a\"]'})];",
    )
    good, bad, groups, broken, r1, r2, r3, r4, link = out
    assert good == {"start": "10", "end": "20", "rows": "3-9", "group": "2", "kind": "bias", "sort": "mean", "expand": '["a"]'}
    assert bad == {}
    assert groups == ["a", "b"] and broken == []
    assert r1 == [3, 9] and r2 is None and r3 == [5, 19] and r4 is None
    assert link == {}  # the listed groups only count when grouping

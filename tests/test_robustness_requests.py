"""Hostile requests, fuzzed (extends test_plugin_security.py's fixed payloads).

Hypothesis builds whole raw query strings for every route -- known and
unknown keys, repeated and missing parameters, random unicode, huge and
negative numbers, path traversal, broken percent-escapes -- and random paths
below the plugin's prefix.  Every answer is 200/400/404 within a time limit;
data routes always answer JSON; a 200 answer
is internally consistent; no file outside the plugin's static table is ever
served.
"""

import json
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plugin_helpers as h
import robustness_helpers as rh
from tb_stepsize import plugin as plugin_mod

BASE = rh.BASE
SENTINEL = h.SENTINEL
ROUTES = ["tags", "heatmap", "layer", "cell", "histogram_steps", "histogram", "info"]
PARAMS = ["run", "metric", "stat", "layer", "step", "max_steps", "first", "last"]
VALID = {
    "run": ["run1"],
    "metric": ["step", "update_ratio"],
    "stat": ["p50", "min", "max", "nonfinite", "value"],
    "layer": [l["path"] for l in h.LAYERS_B],
    "step": ["3", "12"],
    "max_steps": ["1", "5", "100000"],
    "first": ["1", "4", "9"],
    "last": ["4", "9", "12"],
}
TRAVERSAL = [
    "../../../../etc/passwd",
    "..%2f..%2fsecret.txt",
    "%2e%2e%2f%2e%2e%2fsecret.txt",
    "..\\..\\secret.txt",
    "/etc/passwd",
    "secret.txt",
    "run1/../../secret.txt",
    "\x00",
    "%00",
    "%",
    "%zz",
    "%%%",
]
NUMBERS = st.one_of(
    st.integers(-(10**40), 10**40).map(str),
    st.sampled_from(["-1", "0", "-0", "+5", "1e3", "1.5", "0x10", " 7", "٣", "9" * 19, "-" + "9" * 30, "NaN", "inf"]),
)
VALUES = st.one_of(
    st.sampled_from(sum(VALID.values(), [])),
    NUMBERS,
    st.sampled_from(TRAVERSAL),
    st.text(max_size=40),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=5).map(lambda s: s * 1500),  # long
)


pytestmark = pytest.mark.usefixtures("sandbox")


def check_consistent(route, out, query):
    """A 200 JSON answer agrees with itself."""
    if route == "tags":
        for entry in out.values():
            assert entry["num_steps"] >= 0 and len(entry["layers"]) == len(entry["layer_info"])
        return
    if route == "histogram":
        assert isinstance(out["step"], int) and all(len(b) == 3 for b in out["bins"])
        return
    if route == "histogram_steps":
        assert out["steps"] == sorted(out["steps"]) and all(isinstance(s, int) for s in out["steps"])
        return
    if route == "cell":
        assert out["first"] <= out["last"] and len(out["values"]) == len(out["stats"])
        for index, kind in out["nonfinite"]:
            assert out["values"][index] is None and kind in ("nan", "inf", "-inf")
        return
    if route == "info":
        assert out["format_version"] == 2 and out["metrics"]
        return
    steps = out["steps"]
    assert steps == sorted(steps) and len(steps) == len(out["step_ends"])
    assert all(a <= b for a, b in zip(steps, out["step_ends"]))
    if route == "heatmap":
        assert len(out["values"]) == len(out["layers"])
        assert all(len(row) == len(steps) for row in out["values"])
        assert len(out["wall_times"]) == len(steps)
    elif route == "layer":
        assert len(out["values"]) == len(steps)
        assert all(len(row) == len(out["stats"]) for row in out["values"])
    if route in ("heatmap", "layer"):
        for cell in out["nonfinite"]:
            assert cell[-1] in ("nan", "inf", "-inf")


def fetch(client, url):
    with rh.time_limit(30, url[:200]):
        return client.get(url)


def check(sandbox, route, url):
    response = fetch(sandbox[0], url)
    body = response.get_data()
    assert SENTINEL.encode() not in body and b"root:" not in body
    parsed = rh.check_response(response, url)
    if response.status_code == 200 and parsed is not None:
        check_consistent(route, parsed, url)
    return response


@st.composite
def raw_query(draw):
    """A query string as a client could send it, possibly malformed."""
    pairs = []
    for name in PARAMS:
        count = draw(st.sampled_from([0, 1, 1, 1, 2]))  # missing, present, repeated
        for _ in range(count):
            pairs.append((name, draw(VALUES)))
    pairs += draw(st.lists(st.tuples(st.text(max_size=8), VALUES), max_size=2))  # unknown keys
    pairs = draw(st.permutations(pairs))
    encode = draw(st.sampled_from(["quoted", "raw", "mixed"]))
    parts = []
    for key, value in pairs:
        if encode == "quoted" or (encode == "mixed" and draw(st.booleans())):
            parts.append(f"{quote(key, safe='')}={quote(value, safe='')}")
        else:  # raw: only what an HTTP client cannot send at all is escaped
            parts.append(f"{quote(key, safe='%/?=&+;')}={quote(value, safe='%/?=&+;:@')}")
    sep = draw(st.sampled_from(["&", "&", ";", "&&"]))
    return sep.join(parts)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None)
@given(route=st.sampled_from(ROUTES), query=raw_query())
def test_fuzz_raw_query_strings(sandbox, route, query):
    check(sandbox, route, f"{BASE}/{route}?{query}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None)
@given(
    route=st.sampled_from(["heatmap", "layer", "cell", "histogram"]),
    drop=st.sets(st.sampled_from(PARAMS)),
    numbers=st.fixed_dictionaries({"max_steps": NUMBERS, "step": NUMBERS}),
)
def test_fuzz_numbers_and_missing_parameters(sandbox, route, drop, numbers):
    """Valid requests with numeric parameters replaced and parameters dropped."""
    params = {
        "heatmap": {"run": "run1", "metric": "step", "stat": "p50"},
        "layer": {"run": "run1", "metric": "step", "layer": "dense/bias"},
        "cell": {"run": "run1", "metric": "step", "layer": "dense/bias", "last": "12"},
        "histogram": {"run": "run1", "metric": "step", "layer": "dense/bias"},
    }[route]
    missing = any(k in drop for k in params)
    params = {k: v for k, v in params.items() if k not in drop}
    if route == "histogram":
        params["step"] = numbers["step"]
    elif route == "cell":  # steps 1..12 are logged
        params["first"] = numbers["step"]
    else:
        params["max_steps"] = numbers["max_steps"]
    query = "&".join(f"{k}={quote(v, safe='')}" for k, v in params.items())
    response = check(sandbox, route, f"{BASE}/{route}?{query}")
    number = numbers["step"] if route in ("histogram", "cell") else numbers["max_steps"]
    well_formed = number.lstrip("-").isascii() and number.lstrip("-").isdigit() and len(number.lstrip("-")) <= 18
    if missing or not well_formed:
        assert response.status_code == 400
    elif route in ("heatmap", "layer") and int(number) < 1:
        assert response.status_code == 400
    elif route == "cell" and int(number) > 12:
        assert response.status_code == 400  # last before first
    else:
        assert response.status_code == 200
        if route in ("heatmap", "layer"):
            out = json.loads(response.get_data())
            assert len(out["steps"]) <= min(int(number), plugin_mod.MAX_STEPS_CAP)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None)
@given(
    path=st.one_of(
        st.text(max_size=40),
        st.lists(st.sampled_from(["..", "%2e%2e", "%2f", "\\", "static", "secret.txt", "index.js", "/", "%00", ".", "%5c"]), max_size=6).map("".join),
        st.sampled_from([route for route in plugin_mod.STATIC_FILES]).map(lambda r: r + "/../secret.txt"),
    )
)
def test_fuzz_paths_serve_only_static_files(sandbox, path):
    url = BASE + "/" + quote(path, safe="%/\\.")
    response = fetch(sandbox[0], url)
    assert response.status_code in (200, 400, 404), (url, response.status_code)
    body = response.get_data()
    assert SENTINEL.encode() not in body
    if response.status_code == 200:
        content_type = response.headers["Content-Type"]
        assert body in sandbox[2] or content_type.startswith("application/json"), (url, body[:100])

"""Path traversal and hostile input on every plugin route (in-process app).

Only 200/400/404 may come back, data routes always answer JSON, and no file
outside the plugin's fixed static table is ever served.
"""

import json
import os
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import plugin_helpers as h
from tb_stepsize import plugin as plugin_mod

BASE = "/data/plugin/stepsize"
SENTINEL = h.SENTINEL

PAYLOADS = [
    "..",
    "../..",
    "../../../../etc/passwd",
    "..%2f..%2fetc%2fpasswd",
    "%2e%2e/%2e%2e/etc/passwd",
    "%252e%252e%252fsecret.txt",
    "..\\..\\secret.txt",
    "\\..\\secret.txt",
    "/etc/passwd",
    "C:\\Windows\\win.ini",
    "secret.txt",
    "../secret.txt",
    "static/../../secret.txt",
    "run1/../run1",
    "run1/..",
    "./run1",
    "run1\x00",
    "\x00",
    "%00",
    "",
    " ",
    "ü",
    "\u202e\u0000\ud7ff",
    "😀" * 10,
    "<script>alert(1)</script>",
    "dense/kernel/../bias",
    "file:///etc/passwd",
    "a" * 5000,
]

VALID = {
    "heatmap": {"run": "run1", "metric": "step", "stat": "p50"},
    "layer": {"run": "run1", "layer": "dense/bias", "metric": "step"},
    "cell": {"run": "run1", "layer": "dense/bias", "metric": "step", "first": "2", "last": "5"},
    "histogram_steps": {"run": "run1", "layer": "dense/bias", "metric": "step"},
    "histogram": {"run": "run1", "layer": "dense/bias", "metric": "step", "step": "3"},
}
STRING_PARAMS = {
    "heatmap": ["run", "metric", "stat", "max_steps"],
    "layer": ["run", "layer", "metric", "max_steps"],
    "cell": ["run", "layer", "metric", "first", "last"],
    "histogram_steps": ["run", "layer", "metric"],
    "histogram": ["run", "layer", "metric", "step"],
}
NUMBER_PARAMS = ("max_steps", "step", "first", "last")


pytestmark = pytest.mark.usefixtures("sandbox")


def check(response, data_route):
    assert response.status_code in (200, 400, 404), response.status_code
    body = response.get_data()
    assert SENTINEL.encode() not in body
    assert b"root:" not in body
    if data_route:
        assert response.headers["Content-Type"].startswith("application/json")
        parsed = json.loads(body)
        if response.status_code != 200:
            assert set(parsed) == {"error"}
    return response


@pytest.mark.parametrize("route", sorted(VALID))
@pytest.mark.parametrize("payload", PAYLOADS)
def test_query_parameters(sandbox, route, payload):
    client = sandbox[0]
    for name in STRING_PARAMS[route]:
        params = dict(VALID[route], **{name: payload})
        response = check(client.get(f"{BASE}/{route}?" + urlencode(params)), data_route=True)
        if name in NUMBER_PARAMS:
            assert response.status_code == 400
        else:
            assert response.status_code in (400, 404)
        # Also raw (not re-encoded) in the query string, and doubled.
        raw = f"{BASE}/{route}?" + "&".join(
            f"{k}={payload if k == name else quote(v)}" for k, v in params.items()
        )
        check(client.get(raw), data_route=True)
        doubled = f"{BASE}/{route}?" + urlencode(params) + "&" + urlencode({name: payload})
        assert check(client.get(doubled), data_route=True).status_code == 400


def test_tags_ignores_parameters(sandbox):
    client = sandbox[0]
    for payload in PAYLOADS:
        response = check(client.get(f"{BASE}/tags?" + urlencode({"run": payload, "file": payload})), True)
        assert response.status_code == 200 and list(json.loads(response.get_data())) == ["run1"]


PATHS = [
    "/secret.txt",
    "/../secret.txt",
    "/../../secret.txt",
    "/%2e%2e/secret.txt",
    "/%2e%2e/%2e%2e/secret.txt",
    "/%2E%2E%2Fsecret.txt",
    "/..%2fsecret.txt",
    "/..%5csecret.txt",
    "/..\\secret.txt",
    "/%5c..%5csecret.txt",
    "/index.js/../secret.txt",
    "/index.js/..%2fsecret.txt",
    "/index.js%2f..%2fsecret.txt",
    "/static/secret.txt",
    "/static/index.js",
    "/index.js.map",
    "/index.js%00.txt",
    "/index.js%00",
    "/INDEX.JS",
    "/index.js/",
    "/index.js/x",
    "//etc/passwd",
    "/%2fetc%2fpasswd",
    "/C:%5cWindows%5cwin.ini",
    "/heatmap/../secret.txt",
    "/tags/..",
    "/ü.js",
    "/%ff%fe.js",
    "/index.js?path=../secret.txt",
    "/style.css?../../secret.txt",
]


@pytest.mark.parametrize("path", PATHS)
def test_paths(sandbox, path):
    client, static, _ = sandbox
    response = client.get(BASE + path)
    assert response.status_code in (200, 400, 404), (path, response.status_code)
    body = response.get_data()
    assert SENTINEL.encode() not in body
    if response.status_code == 200:
        allowed = []
        for name, _ in plugin_mod.STATIC_FILES.values():
            with open(os.path.join(static, name), "rb") as f:
                allowed.append(f.read())
        assert body in allowed or response.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("route", sorted(VALID))
def test_unicode_names_are_plain_lookups(sandbox, route):
    """The odd layer name (markup, quotes, backslash, '..') works as a key."""
    client = sandbox[0]
    odd = h.LAYERS_A[2]["path"]
    params = dict(VALID[route])
    if "layer" in params:
        params["layer"] = odd
    response = check(client.get(f"{BASE}/{route}?" + urlencode(params)), True)
    assert response.status_code == 200
    out = json.loads(response.get_data())
    if route == "heatmap":
        assert odd in out["layers"]
    elif route != "histogram":
        assert out["layer"] == odd


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(sorted(VALID)),
    overrides=st.dictionaries(
        st.sampled_from(["run", "metric", "stat", "layer", "step", "max_steps", "first", "last"]),
        st.text(max_size=30),
        max_size=4,
    ),
)
def test_fuzz_parameters(sandbox, route, overrides):
    client = sandbox[0]
    params = dict(VALID[route], **overrides)
    check(client.get(f"{BASE}/{route}?" + urlencode(params)), data_route=True)

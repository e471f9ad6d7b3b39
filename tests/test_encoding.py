"""`encoding`: grids on the wire as JSON with nulls plus a non-finite list."""

import gzip
import json

import numpy as np
import pytest

from tb_stepsize.encoding import encode_grid, gzip_json, nonfinite_cells


def test_finite_grid_is_plain_lists():
    values = np.array([[1.0, 2.5], [0.0, -3.0]])
    assert encode_grid(values, np.ones_like(values, bool)) == ([[1.0, 2.5], [0.0, -3.0]], [])


def test_missing_and_nonfinite_cells_are_null_and_listed():
    values = np.array([[1.0, np.nan, np.inf], [-np.inf, np.nan, 2.0]])
    present = np.array([[True, True, True], [True, False, True]])  # [1, 1] missing: not listed
    cells, nonfinite = encode_grid(values, present)
    assert cells == [[1.0, None, None], [None, None, 2.0]]
    assert nonfinite == [[0, 1, "nan"], [0, 2, "inf"], [1, 0, "-inf"]]


def test_one_dimensional_grid():
    values = np.array([np.inf, 4.0, np.nan])
    cells, nonfinite = encode_grid(values, np.array([True, True, False]))
    assert cells == [None, 4.0, None] and nonfinite == [[0, "inf"]]
    assert nonfinite_cells(values, np.ones(3, bool)) == [[0, "inf"], [2, "nan"]]


def test_float32_values_keep_their_exact_value():
    values = np.array([[0.1]], np.float32)
    cells, _ = encode_grid(values, np.ones((1, 1), bool))
    assert cells[0][0] == float(np.float32(0.1))


def test_gzip_json_is_compact_and_strict():
    body = gzip_json({"a": [1, None], "b": "ü"})
    assert json.loads(gzip.decompress(body)) == {"a": [1, None], "b": "ü"}
    assert b" " not in gzip.decompress(body)
    assert gzip_json({"x": 1}) == gzip_json({"x": 1})  # no timestamp: cacheable bytes
    with pytest.raises(ValueError):
        gzip_json({"x": float("nan")})

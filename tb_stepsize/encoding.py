"""How the plugin puts grids of numbers on the wire: JSON with nulls plus a non-finite list.

JSON has no NaN or Infinity, and a heatmap must tell a missing cell (the
variable was not updated) from a NaN or an infinite one.  So a grid is sent
as nested lists with `null` for every cell that is missing or not finite,
and a separate list `[index..., "nan" | "inf" | "-inf"]` of the non-finite
ones.  The dashboard decodes it in one place (its data model).
"""

import gzip
import json

import numpy as np


def _kind(x):
    if np.isnan(x):
        return "nan"
    return "inf" if x > 0 else "-inf"


def nonfinite_cells(values, present):
    """`[index..., kind]` of every present, non-finite cell (row-major order)."""
    bad = present & ~np.isfinite(values)
    if not bad.any():
        return []
    return [[*(int(i) for i in index), _kind(values[index])] for index in zip(*np.nonzero(bad))]


def encode_grid(values, present):
    """`values` (any shape) as nested lists with None for missing/non-finite
    cells, plus the `[index..., kind]` list of the non-finite ones."""
    finite = present & np.isfinite(values)
    if finite.all():
        return values.tolist(), []
    cells = values.astype(object)
    cells[~finite] = None
    return cells.tolist(), nonfinite_cells(values, present)


def gzip_json(obj):
    """`obj` as compact JSON, gzipped (what the plugin caches and sends)."""
    raw = json.dumps(obj, allow_nan=False, separators=(",", ":")).encode("utf-8")
    return gzip.compress(raw, compresslevel=3, mtime=0)

"""The summary format contract shared by the writer, the reader and the plugin.

Everything that decides how step sizes look on disk lives here, so that the
write side (`summary.py`) and the read side (`reader.py`, `plugin.py`) can
never disagree.  This module imports no TensorFlow.

Layout of one run (format version 1)
------------------------------------
For every metric and every *layer set* (the ordered list of watched
variables; a digest of it is part of the tag, so a later monitor that watches
other variables never clashes with an earlier one), one tag per logged step:

* ``<metric>/<digest>``: float32 tensor ``[L, S]``: one row per variable in
  model order, one column per statistic named in the content's ``stats``.
* ``<metric>/<digest>/hist/<row>``: float64 tensor ``[k, 3]`` of
  ``(left, right, count)`` rows (TensorBoard's histogram layout) over
  half-octave bins of ``|value|``; the first row ``[0, 0, n]`` counts exact
  zeros.  Only elementwise metrics have histograms.

Each tag's plugin content is JSON with a ``version``; readers accept every
version up to their own and reject newer ones with a clear error.
"""

import hashlib
import json

from tensorboard.compat.proto import summary_pb2

PLUGIN_NAME = "stepsize"
FORMAT_VERSION = 1

QUANTILES = (
    ("p01", 0.01),
    ("p05", 0.05),
    ("p25", 0.25),
    ("p50", 0.50),
    ("p75", 0.75),
    ("p95", 0.95),
    ("p99", 0.99),
)
# Statistics of an elementwise metric, in the column order of the stats tensor.
ELEMENT_STATS = (
    ("min",)
    + tuple(name for name, _ in QUANTILES)
    + ("max", "mean", "rms", "zero_fraction", "nonfinite")
)
# Per-layer scalar metrics have a single statistic.
SCALAR_STATS = ("value",)

# metric name -> (elementwise?, one-line description).  The order is the order
# the dashboard lists them in.
METRICS = {
    "step": (True, "|w_t - w_{t-1}|: the change the optimizer applied, per element."),
    "effective_lr": (True, "Per-parameter learning rate of the Adam family at step t."),
    "intended_step": (True, "|update| the optimizer computed before rounding into the weight."),
    "update_ratio": (False, "rms(w_t - w_{t-1}) / rms(w_{t-1}) per layer."),
    "lost_fraction": (False, "Share of elements whose intended step was non-zero but applied step zero."),
    "second_moment_rms": (False, "RMS of g_t / sqrt(v_hat_t): far above 1 means v lags the gradient."),
}

KIND_STATS = "stats"
KIND_HISTOGRAM = "histogram"

# Histogram bins: bin 0 holds exact zeros; bin b >= 1 covers
# [2^((b - 1 + HIST_OFFSET) / 2), 2^((b + HIST_OFFSET) / 2)) -- half-octaves of
# float32's whole positive range.  Bins past HIST_FINITE_BINS count NaN/Inf.
HIST_OFFSET = -2 * 127
HIST_FINITE_BINS = 2 * 255  # biased exponents 0..254, two halves each
HIST_BINS = HIST_FINITE_BINS + 3  # zero bin, finite bins, two non-finite bins


class FormatError(ValueError):
    """Data that does not follow (this version of) the format."""


def stats_for(metric):
    """The statistic names stored for `metric`."""
    elementwise, _ = METRICS[metric]
    return ELEMENT_STATS if elementwise else SCALAR_STATS


def layer_digest(layer_paths):
    """A short, stable name for an ordered set of variable paths."""
    joined = "\n".join(layer_paths).encode("utf-8")
    return hashlib.sha1(joined).hexdigest()[:10]


def stats_tag(metric, digest):
    return f"{metric}/{digest}"


def histogram_tag(metric, digest, row):
    return f"{metric}/{digest}/hist/{row:05d}"


def histogram_edges(first, last):
    """Left and right edges of finite bins `first..last` (both >= 1)."""
    import numpy as np

    k = np.arange(first, last + 1, dtype=np.float64) - 1 + HIST_OFFSET
    return np.exp2(k / 2.0), np.exp2((k + 1) / 2.0)


def stats_content(metric, layers, optimizer):
    """Plugin content of a stats tag.

    `layers` is a list of dicts with `path`, `shape` and `dtype`.
    """
    return {
        "version": FORMAT_VERSION,
        "kind": KIND_STATS,
        "metric": metric,
        "stats": list(stats_for(metric)),
        "layers": layers,
        "optimizer": optimizer,
    }


def histogram_content(metric, layer_path, row):
    return {
        "version": FORMAT_VERSION,
        "kind": KIND_HISTOGRAM,
        "metric": metric,
        "layer": layer_path,
        "row": row,
    }


def create_summary_metadata(content):
    """SummaryMetadata for a tag; `data_class` is set so the Rust data server keeps it."""
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=PLUGIN_NAME,
            content=json.dumps(content, separators=(",", ":")).encode("utf-8"),
        ),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )


def parse_content(raw):
    """Decode a tag's plugin content, checking what a reader relies on.

    Raises FormatError for content that is not ours, malformed or newer than
    this reader understands.
    """
    try:
        content = json.loads(raw.decode("utf-8") if isinstance(raw, bytes) else raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise FormatError(f"plugin content is not JSON: {e}") from None
    if not isinstance(content, dict):
        raise FormatError("plugin content is not a JSON object")
    version = content.get("version")
    if not isinstance(version, int) or version < 1:
        raise FormatError(f"missing or invalid format version {version!r}")
    if version > FORMAT_VERSION:
        raise FormatError(
            f"format version {version} is newer than this reader "
            f"({FORMAT_VERSION}); upgrade tb_stepsize"
        )
    kind = content.get("kind")
    metric = content.get("metric")
    if kind not in (KIND_STATS, KIND_HISTOGRAM) or not isinstance(metric, str):
        raise FormatError(f"unknown kind {kind!r} or metric {metric!r}")
    if kind == KIND_STATS:
        stats, layers = content.get("stats"), content.get("layers")
        if not (isinstance(stats, list) and all(isinstance(s, str) for s in stats)):
            raise FormatError("stats content without a list of statistic names")
        if not (
            isinstance(layers, list)
            and all(isinstance(l, dict) and isinstance(l.get("path"), str) for l in layers)
        ):
            raise FormatError("stats content without a list of layers")
    else:
        if not isinstance(content.get("layer"), str) or not isinstance(content.get("row"), int):
            raise FormatError("histogram content without layer and row")
    return content

"""The summary format contract shared by the writer, the reader and the plugin.

Everything that decides how step sizes look on disk lives here, so that the
write side (`summary.py`) and the read side (`listing.py`, `reader.py`, the
plugin) can never disagree.  So do the facts a reader of the data needs and
that are written nowhere else: what each metric means (`METRICS`: label,
unit, help text, reference line -- the dashboard gets them from the
plugin's `info` route, `describe()`), how statistics are named
(`STAT_LABELS`) and how each one pools across steps (`pooling_rule`).  This
module imports no TensorFlow.

Layout of one run (format version 2)
------------------------------------
A *layer set* is the ordered list of watched variables of one monitor; a
digest of it is part of every tag, so a later monitor that watches other
variables never clashes with an earlier one.  At every logged step, for
each layer set:

* ``index/<digest>`` (plugin ``stepsize``): uint8 ``[L]``, 1 where the
  variable was updated at this step (0: it got no gradient).  Its content
  names the layers (model order), the optimizer and each metric's
  statistics; it gives the run its step axis, so reading it is cheap.
* ``<metric>/<digest>/<stat>`` (plugin ``stepsize``): float32 ``[L]``: one
  statistic of one metric for every variable.  One tag per (metric, stat)
  keeps any single read -- a heatmap -- at 4 bytes per layer-step, however
  many statistics a run has.
* ``<metric>/<digest>/hist`` (plugin ``stepsize_histograms``): int32
  ``[n, 3]`` rows ``(layer row, bin, count)`` for the non-empty bins of the
  elementwise metric's half-octave histogram of ``|value|`` (bin 0 counts
  exact zeros, see `HIST_OFFSET`).  A plugin name of their own lets
  TensorBoard keep a bounded sample of these big tensors while it keeps
  every step of the statistics.

Beside them, ordinary TensorBoard scalars (plugin ``scalars``, so the
Scalars tab shows them too) at the logged steps: ``stepsize/loss`` (the
training loss Keras reported, `LOSS_TAG`) and ``stepsize/learning_rate``
(the learning rate the optimizer used at that update,
`LEARNING_RATE_TAG`).  They are optional: a run without them reads the same.

Each tag's plugin content is JSON with a ``version``; readers reject a
version they do not know with a clear error (version 1, an unreleased
layout with one ``[L, S]`` tensor per metric, is not read any more).
"""

import dataclasses
import hashlib
import json

from tensorboard.compat.proto import summary_pb2

PLUGIN_NAME = "stepsize"
HISTOGRAM_PLUGIN_NAME = "stepsize_histograms"
FORMAT_VERSION = 2

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

# Pooling rule of each statistic (how adjacent steps are merged into one
# column of a wide heatmap): the extremes keep their extreme, a count of
# non-finite elements its largest count, everything else (quantiles, mean,
# rms, zero_fraction, a scalar's value) is averaged.  `pooling.pool` applies it.
POOLING = {"min": "min", "max": "max", "nonfinite": "max"}


def pooling_rule(stat):
    """Name of the rule pooling `stat`: "min", "max" or "mean"."""
    return POOLING.get(stat, "mean")


# How each statistic is named in the dashboard.
STAT_LABELS = {
    **{name: name for name in ELEMENT_STATS + SCALAR_STATS},
    "p50": "median (p50)",
    "zero_fraction": "zero fraction",
    "nonfinite": "non-finite count",
}
# Statistics in the units of the metric itself (not a fraction or a count): the
# dashboard keeps the one chosen among them when the metric changes.
QUANTILE_STATS = ("min",) + tuple(name for name, _ in QUANTILES) + ("max", "mean", "rms")


@dataclasses.dataclass(frozen=True)
class Reference:
    """A marked value on a metric's colour scale (a rule of thumb)."""

    value: float
    label: str


@dataclasses.dataclass(frozen=True)
class Metric:
    """What a metric is: its kind and the texts the dashboard shows for it.

    `elementwise` metrics are reduced over a layer's elements into
    `ELEMENT_STATS` (and have histograms); the others are one number per
    layer (`SCALAR_STATS`).  The texts are served by the plugin's `info`
    route, so they are written here only.
    """

    elementwise: bool
    description: str  # one line
    label: str
    unit: str
    help: str
    reference: "Reference | None" = None


# metric name -> Metric.  The order is the order the dashboard lists them in.
METRICS = {
    "step": Metric(
        elementwise=True,
        description="|w_t - w_{t-1}|: the change the optimizer applied, per element.",
        label="step",
        unit="|\u0394w| per element, weight units",
        help=(
            "The change the optimizer actually applied to each weight element, |w\u209c \u2212 w\u209c\u208b\u2081|, "
            "measured after the update was rounded into the weight's dtype. The statistic is taken over the "
            "layer's elements. Look for layers far faster or slower than their neighbours, the end of "
            "warm-up, and steps that collapse to zero or explode."
        ),
    ),
    "effective_lr": Metric(
        elementwise=True,
        description="Per-parameter learning rate of the Adam family at step t.",
        label="effective_lr",
        unit="learning rate per element",
        help=(
            "Adam family only: the learning rate each parameter effectively gets, lr\u209c / (\u221av\u0302 + \u03b5), "
            "the factor that turns the first moment into a step. Warm-up shows as a ramp; a layer whose "
            "effective rate is orders of magnitude above the others has a tiny second moment (near-zero "
            "gradients) and is one large gradient away from a huge step."
        ),
    ),
    "intended_step": Metric(
        elementwise=True,
        description="|update| the optimizer computed before rounding into the weight.",
        label="intended_step",
        unit="|update| per element, weight units",
        help=(
            "The magnitude of the update the optimizer computed, before it was added to the weight and rounded "
            "to the weight's dtype. In float32 it matches step; with bfloat16 or float16 weights an intended "
            "step far larger than the applied step means updates are being rounded away."
        ),
    ),
    "update_ratio": Metric(
        elementwise=False,
        description="rms(w_t - w_{t-1}) / rms(w_{t-1}) per layer.",
        label="update_ratio",
        unit="rms \u0394w / rms w, unitless",
        reference=Reference(1e-3, "healthy \u2248 1e-3"),
        help=(
            "Per layer: rms(\u0394w) / rms(w), how large the applied step is relative to the weights. A common rule "
            "of thumb puts healthy training near 1e-3 (the marker on the legend): far below, the layer barely "
            "learns; far above (\u2273 1e-2), its weights are being overwritten every few steps."
        ),
    ),
    "lost_fraction": Metric(
        elementwise=False,
        description="Share of elements whose intended step was non-zero but applied step zero.",
        label="lost_fraction",
        unit="fraction of elements",
        help=(
            "Per layer: the share of elements whose intended update was non-zero but whose weight did not "
            "change, because the update was smaller than half a unit in the last place of the weight "
            "(bfloat16 / float16 weights). Healthy is 0 (shown as the 'exactly 0' colour); large values mean "
            "low-precision weights silently stop learning."
        ),
    ),
    "second_moment_rms": Metric(
        elementwise=False,
        description="RMS of g_t / sqrt(v_hat_t): far above 1 means v lags the gradient.",
        label="second_moment_rms",
        unit="rms g / \u221av\u0302, unitless",
        reference=Reference(1.0, "1: v tracks g"),
        help=(
            "Adam family only: rms of g\u209c / \u221av\u0302\u209c over the layer. Near 1 the second-moment estimate "
            "keeps up with the gradient. Values \u226b 1 mean v lags a sudden rise of the gradient, so steps "
            "are oversized; this often precedes loss spikes."
        ),
    ),
}


def describe():
    """The format's user-facing facts as plain JSON data (the plugin's `info` route)."""
    return {
        "format_version": FORMAT_VERSION,
        "metrics": [
            {
                "name": name,
                "elementwise": m.elementwise,
                "label": m.label,
                "unit": m.unit,
                "description": m.description,
                "help": m.help,
                "reference": None if m.reference is None else dataclasses.asdict(m.reference),
            }
            for name, m in METRICS.items()
        ],
        "element_stats": list(ELEMENT_STATS),
        "scalar_stats": list(SCALAR_STATS),
        "stat_labels": dict(STAT_LABELS),
        "quantile_stats": list(QUANTILE_STATS),
        "pooling": {stat: pooling_rule(stat) for stat in ELEMENT_STATS + SCALAR_STATS},
    }


LOSS_TAG = "stepsize/loss"
LEARNING_RATE_TAG = "stepsize/learning_rate"

KIND_INDEX = "index"
KIND_STATS = "stats"
KIND_HISTOGRAM = "histogram"

# Histogram bins: bin 0 holds exact zeros; bin b >= 1 covers
# [2^((b - 1 + HIST_OFFSET) / 2), 2^((b + HIST_OFFSET) / 2)) -- half-octaves of
# float32's whole positive range.  Bins past HIST_FINITE_BINS count NaN/Inf
# on the device; they are not written (the `nonfinite` statistic has them).
HIST_OFFSET = -2 * 127
HIST_FINITE_BINS = 2 * 255  # biased exponents 0..254, two halves each
HIST_BINS = HIST_FINITE_BINS + 3  # zero bin, finite bins, two non-finite bins


class FormatError(ValueError):
    """Data that does not follow (this version of) the format."""


def stats_for(metric):
    """The statistic names stored for `metric`."""
    return ELEMENT_STATS if METRICS[metric].elementwise else SCALAR_STATS


def layer_digest(layer_paths):
    """A short, stable name for an ordered set of variable paths."""
    joined = "\n".join(layer_paths).encode("utf-8")
    return hashlib.sha1(joined).hexdigest()[:10]


def index_tag(digest):
    return f"index/{digest}"


def stats_tag(metric, digest, stat):
    return f"{metric}/{digest}/{stat}"


def histogram_tag(metric, digest):
    return f"{metric}/{digest}/hist"


def histogram_edges(first, last):
    """Left and right edges of finite bins `first..last` (both >= 1)."""
    import numpy as np

    k = np.arange(first, last + 1, dtype=np.float64) - 1 + HIST_OFFSET
    return np.exp2(k / 2.0), np.exp2((k + 1) / 2.0)


def index_content(digest, layers, metrics, optimizer):
    """Content of a layer set's index tag.

    `layers` is a list of dicts with `path`, `shape` and `dtype`; `metrics`
    the recorded metric names.
    """
    return {
        "version": FORMAT_VERSION,
        "kind": KIND_INDEX,
        "digest": digest,
        "layers": layers,
        "metrics": {m: list(stats_for(m)) for m in metrics},
        "optimizer": optimizer,
    }


def stats_content(digest, metric, stat):
    return {"version": FORMAT_VERSION, "kind": KIND_STATS, "digest": digest, "metric": metric, "stat": stat}


def histogram_content(digest, metric):
    return {"version": FORMAT_VERSION, "kind": KIND_HISTOGRAM, "digest": digest, "metric": metric}


def create_summary_metadata(content):
    """SummaryMetadata for a tag; `data_class` is set so the Rust data server keeps it."""
    plugin = HISTOGRAM_PLUGIN_NAME if content["kind"] == KIND_HISTOGRAM else PLUGIN_NAME
    return summary_pb2.SummaryMetadata(
        plugin_data=summary_pb2.SummaryMetadata.PluginData(
            plugin_name=plugin,
            content=json.dumps(content, separators=(",", ":")).encode("utf-8"),
        ),
        data_class=summary_pb2.DATA_CLASS_TENSOR,
    )


def _is_str_list(x):
    return isinstance(x, list) and all(isinstance(s, str) for s in x)


def parse_content(raw):
    """Decode a tag's plugin content, checking what a reader relies on.

    Raises FormatError for content that is not ours, malformed or of a
    version this reader does not read.
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
    if version < FORMAT_VERSION:
        raise FormatError(
            f"format version {version} was written by a pre-release tb_stepsize "
            f"and is not read by this one (version {FORMAT_VERSION}); record the run again"
        )
    kind = content.get("kind")
    if kind not in (KIND_INDEX, KIND_STATS, KIND_HISTOGRAM) or not isinstance(content.get("digest"), str):
        raise FormatError(f"unknown kind {kind!r} or no layer-set digest")
    if kind == KIND_INDEX:
        layers, metrics = content.get("layers"), content.get("metrics")
        if not (
            isinstance(layers, list)
            and layers
            and all(isinstance(l, dict) and isinstance(l.get("path"), str) for l in layers)
        ):
            raise FormatError("index content without a list of layers")
        if not (isinstance(metrics, dict) and all(_is_str_list(v) and v for v in metrics.values())):
            raise FormatError("index content without each metric's statistics")
    elif not isinstance(content.get("metric"), str) or (
        kind == KIND_STATS and not isinstance(content.get("stat"), str)
    ):
        raise FormatError(f"{kind} content without metric (and statistic)")
    return content

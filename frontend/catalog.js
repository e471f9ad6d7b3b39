// What the metrics and statistics are -- their labels, units, help texts,
// reference levels and order -- as the server describes them (the shape of
// its `info` route), with the lookups the views need.  Pure (no DOM).

// Until the server has an `info` route: the same facts, kept here.
export const LOCAL_INFO = {
  metrics: [
    {
      name: "step",
      elementwise: true,
      label: "step",
      unit: "|\u0394w| per element, weight units",
      help:
        "The change the optimizer actually applied to each weight element, |w\u209c \u2212 w\u209c\u208b\u2081|, " +
        "measured after the update was rounded into the weight's dtype. The statistic is taken over the " +
        "layer's elements. Look for layers far faster or slower than their neighbours, the end of " +
        "warm-up, and steps that collapse to zero or explode.",
      reference: null,
    },
    {
      name: "effective_lr",
      elementwise: true,
      label: "effective_lr",
      unit: "learning rate per element",
      help:
        "Adam family only: the learning rate each parameter effectively gets, lr\u209c / (\u221av\u0302 + \u03b5), " +
        "the factor that turns the first moment into a step. Warm-up shows as a ramp; a layer whose " +
        "effective rate is orders of magnitude above the others has a tiny second moment (near-zero " +
        "gradients) and is one large gradient away from a huge step.",
      reference: null,
    },
    {
      name: "intended_step",
      elementwise: true,
      label: "intended_step",
      unit: "|update| per element, weight units",
      help:
        "The magnitude of the update the optimizer computed, before it was added to the weight and rounded " +
        "to the weight's dtype. In float32 it matches step; with bfloat16 or float16 weights an intended " +
        "step far larger than the applied step means updates are being rounded away.",
      reference: null,
    },
    {
      name: "update_ratio",
      elementwise: false,
      label: "update_ratio",
      unit: "rms \u0394w / rms w, unitless",
      reference: { value: 1e-3, label: "healthy \u2248 1e-3" },
      help:
        "Per layer: rms(\u0394w) / rms(w), how large the applied step is relative to the weights. A common rule " +
        "of thumb puts healthy training near 1e-3 (the marker on the legend): far below, the layer barely " +
        "learns; far above (\u2273 1e-2), its weights are being overwritten every few steps.",
    },
    {
      name: "lost_fraction",
      elementwise: false,
      label: "lost_fraction",
      unit: "fraction of elements",
      help:
        "Per layer: the share of elements whose intended update was non-zero but whose weight did not " +
        "change, because the update was smaller than half a unit in the last place of the weight " +
        "(bfloat16 / float16 weights). Healthy is 0 (shown as the 'exactly 0' colour); large values mean " +
        "low-precision weights silently stop learning.",
      reference: null,
    },
    {
      name: "second_moment_rms",
      elementwise: false,
      label: "second_moment_rms",
      unit: "rms g / \u221av\u0302, unitless",
      reference: { value: 1, label: "1: v tracks g" },
      help:
        "Adam family only: rms of g\u209c / \u221av\u0302\u209c over the layer. Near 1 the second-moment estimate " +
        "keeps up with the gradient. Values \u226b 1 mean v lags a sudden rise of the gradient, so steps " +
        "are oversized; this often precedes loss spikes.",
    },
  ],
  element_stats: ["min", "p01", "p05", "p25", "p50", "p75", "p95", "p99", "max", "mean", "rms", "zero_fraction", "nonfinite"],
  scalar_stats: ["value"],
  stat_labels: {
    min: "min",
    p01: "p01",
    p05: "p05",
    p25: "p25",
    p50: "median (p50)",
    p75: "p75",
    p95: "p95",
    p99: "p99",
    max: "max",
    mean: "mean",
    rms: "rms",
    zero_fraction: "zero fraction",
    nonfinite: "non-finite count",
    value: "value",
  },
  quantile_stats: ["min", "p01", "p05", "p25", "p50", "p75", "p95", "p99", "max", "mean", "rms"],
};

export class Catalog {
  constructor(info) {
    this.info = info;
    this.metrics = new Map(info.metrics.map((m) => [m.name, m]));
    this.quantiles = new Set(info.quantile_stats);
  }

  // Label, unit, help and reference level (or null) of a metric; a bare
  // entry for one the server does not describe.
  metric(name) {
    return this.metrics.get(name) || { name, label: name, unit: "", help: "No description for this metric.", reference: null };
  }

  statLabel(stat) {
    return this.info.stat_labels[stat] || stat;
  }

  // A statistic in the metric's own units (what the tooltip and a metric
  // switch keep), not a fraction or a count.
  isQuantile(stat) {
    return this.quantiles.has(stat);
  }

  // `stats` in the server's order of element statistics, others after.
  ordered(stats) {
    const order = this.info.element_stats;
    return [...order.filter((s) => stats.includes(s)), ...stats.filter((s) => !order.includes(s))];
  }
}

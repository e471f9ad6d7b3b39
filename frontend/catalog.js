// What the metrics and statistics are -- their labels, units, help texts,
// reference levels and order -- as the server's `info` route describes
// them (written once, in tb_stepsize/metadata.py), with the lookups the
// views need.  Pure (no DOM).

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

// Drill-down for one layer: its quantile bands over time on a log axis and
// the log-binned histogram of the chosen step (charts.js draws both).

import { drawBands, drawHistogram } from "./charts.js";
import { theme } from "./canvas.js";
import { h } from "./dom.js";
import { formatValue } from "./format.js";

export class DrillDown {
  // `model`: the data model (series and histograms); `onStep(step)` when the
  // user picks a step, `onClose()` for the close button.
  constructor(container, { model, onStep, onClose }) {
    this.model = model;
    this.onStep = onStep;
    this.heading = h("h3", { class: "ss-drill-title" });
    this.meta = h("span", { class: "ss-drill-meta" });
    const close = h("button", {
      type: "button",
      class: "ss-icon-button",
      text: "\u00d7",
      title: "Close the drill-down",
      "aria-label": "Close the drill-down",
      onclick: () => onClose(),
    });
    this.bandTitle = h("div", { class: "ss-chart-title" });
    this.bands = h("canvas", { class: "ss-bands" });
    this.readout = h("div", { class: "ss-readout" });
    this.histTitle = h("div", { class: "ss-chart-title" });
    this.hist = h("canvas", { class: "ss-hist" });
    this.histNote = h("div", { class: "ss-readout" });
    this.right = h("div", { class: "ss-drill-chart" }, this.histTitle, this.hist, this.histNote);
    this.root = h(
      "section",
      { class: "ss-card ss-drill", hidden: true },
      h("div", { class: "ss-drill-head" }, this.heading, this.meta, close),
      h(
        "div",
        { class: "ss-drill-body" },
        h("div", { class: "ss-drill-chart" }, this.bandTitle, this.bands, this.readout),
        this.right
      )
    );
    container.append(this.root);
    this.data = null; // {steps, stepEnds, table, histogramSteps} of the layer shown
    this.histogram = null;
    this.step = null;
    this.bands.addEventListener("click", (e) => {
      const col = this._colAt(e.offsetX);
      if (col >= 0) this.setStep(this.data.steps[col], true);
    });
    this.bands.addEventListener("mousemove", (e) => this._readout(this._colAt(e.offsetX)));
    this.bands.addEventListener("mouseleave", () => this._readout(this._colAt(this._stepX())));
  }

  get open() {
    return !this.root.hidden;
  }

  close() {
    this.root.hidden = true;
    this.key = null;
    if (this.abort) this.abort.abort();
  }

  // Open for `layer` of the selection's run and metric (at `step`, or the
  // last one if null); closes when the run has no such layer.
  openLayer({ run, metric }, layer, step, width) {
    const entry = this.model.tags[run];
    if (!entry || !entry.layers.includes(layer)) {
      this.close();
      return;
    }
    this.show({
      run,
      layer,
      info: this.model.layerInfo(run, layer),
      metric,
      metricLabel: this.model.catalog.metric(metric).label,
      step: step === null ? undefined : step,
      width,
    });
  }

  // Open (or refresh) for `layer` of `run`.
  async show({ run, layer, info, metric, metricLabel, step, width }) {
    this.root.hidden = false;
    this.heading.textContent = layer;
    this.heading.title = layer;
    const parts = [];
    if (info && info.shape) parts.push(`shape [${info.shape.join(", ")}]`);
    if (info && info.dtype) parts.push(info.dtype);
    parts.push(`run ${run}`);
    this.meta.textContent = parts.join(" \u00b7 ");
    this.run = run;
    this.layer = layer;
    this.metric = metric;
    this.width = width;
    if (step !== undefined && step !== null) this.step = step;
    if (this.abort) this.abort.abort();
    this.abort = new AbortController();
    const signal = this.abort.signal;
    const chartW = this._chartWidth();
    this.bandTitle.textContent = `${metricLabel} over steps (log scale): bands p01\u2013p99, p05\u2013p95, p25\u2013p75; line p50; dashed min / max`;
    try {
      const maxSteps = Math.max(50, Math.floor(chartW - 60));
      this.data = await this.model.series({ run, layer, metric, maxSteps }, signal);
      if (this.step === null || this.step === undefined) this.step = this.data.steps[this.data.steps.length - 1];
      this.drawBands();
      this._readout(this._colAt(this._stepX()));
      await this.loadHistogram(signal);
    } catch (e) {
      if (e.name === "AbortError") return;
      this.readout.textContent = "Could not load this layer: " + e.message;
    }
  }

  // Width of the drill-down's body; the band chart takes 60% when wide.
  _bodyWidth() {
    return Math.max(320, this.width || this.root.clientWidth || 800);
  }

  _chartWidth() {
    const total = this._bodyWidth();
    return total >= 760 ? Math.floor(total * 0.6) : total;
  }

  _histWidth() {
    const total = this._bodyWidth();
    return total >= 760 ? total - this._chartWidth() - 24 : total;
  }

  setStep(step, user) {
    this.step = step;
    this.drawBands();
    this._readout(this._colAt(this._stepX()));
    if (user && this.onStep) this.onStep(step);
    if (this.abort) this.abort.abort();
    this.abort = new AbortController();
    this.loadHistogram(this.abort.signal).catch(() => {});
  }

  async loadHistogram(signal) {
    const hasHist = this.data && this.data.histogramSteps.length > 0;
    this.right.hidden = !hasHist;
    if (!hasHist) {
      this.histogram = null;
      return;
    }
    try {
      this.histogram = await this.model.histogram(
        { run: this.run, layer: this.layer, metric: this.metric, step: this.step },
        signal
      );
      this.drawHistogram();
    } catch (e) {
      if (e.name === "AbortError") return;
      this.histogram = null;
      this.histNote.textContent = "No histogram: " + e.message;
    }
  }

  _geometry() {
    const w = this._chartWidth();
    return { w, h: 230, left: 52, right: 12, top: 10, bottom: 34 };
  }

  _colAt(x) {
    if (!this.data || this.data.steps.length === 0 || x === null) return -1;
    const g = this._geometry();
    const n = this.data.steps.length;
    const f = (x - g.left) / (g.w - g.left - g.right);
    if (f < -0.02 || f > 1.02) return -1;
    return Math.max(0, Math.min(n - 1, Math.round(f * (n - 1))));
  }

  _stepX() {
    if (!this.data || this.step === null) return null;
    const g = this._geometry();
    const { steps, stepEnds } = this.data;
    let col = steps.length - 1;
    for (let j = 0; j < steps.length; j++) {
      if (steps[j] <= this.step && this.step <= (stepEnds[j] ?? steps[j])) {
        col = j;
        break;
      }
      if (steps[j] > this.step) {
        col = Math.max(0, j - 1);
        break;
      }
    }
    return g.left + (steps.length > 1 ? col / (steps.length - 1) : 0.5) * (g.w - g.left - g.right);
  }

  drawBands() {
    drawBands(this.bands, this.data, this._geometry(), this._stepX(), theme(this.root));
  }

  drawHistogram() {
    const w = this._histWidth();
    const text = drawHistogram(this.hist, this.histogram, { w, metric: this.metric, step: this.step }, theme(this.root));
    this.histTitle.textContent = text.title;
    this.histNote.textContent = text.note;
  }

  // Redraw both charts at the current width and theme.
  redraw(width) {
    if (!this.open || !this.data) return;
    if (width !== undefined) this.width = width;
    this.drawBands();
    if (this.histogram) this.drawHistogram();
  }

  _readout(col) {
    if (!this.data || col < 0) return;
    const { steps, stepEnds, table } = this.data;
    const range = steps[col] === stepEnds[col] ? `step ${steps[col]}` : `steps ${steps[col]}\u2013${stepEnds[col]}`;
    const quantiles = ["min", "p01", "p05", "p25", "p50", "p75", "p95", "p99", "max"].filter((s) => table.has(s));
    const show = table.has("p50") ? quantiles : table.stats;
    const parts = show.map((s) => `${s} ${formatValue(table.get(col, s))}`);
    this.readout.textContent = `${range}: ${parts.join("  ")}`;
  }
}

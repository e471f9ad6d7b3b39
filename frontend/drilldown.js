// Drill-down for one layer: its quantile bands over time on a log axis and
// the log-binned histogram of the chosen step.

import { LogScale, formatTick, formatValue } from "./colormaps.js";
import { setupCanvas, theme } from "./heatmap.js";

const BANDS = [
  ["p01", "p99", 0.16],
  ["p05", "p95", 0.22],
  ["p25", "p75", 0.4],
];

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function niceLinear(lo, hi, count) {
  const span = hi - lo || 1;
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw);
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9 * span; v += step) out.push(Math.round(v * 1e9) / 1e9);
  return out;
}

// Log-axis ticks labelled so that they never overlap.
function drawLogAxis(ctx, scale, x, yTop, yBottom, th) {
  const ticks = scale.ticks(Math.max(2, Math.floor((yBottom - yTop) / 28)));
  ctx.font = `10px ${th.font}`;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  for (const v of ticks) {
    const y = yBottom - scale.t(v) * (yBottom - yTop);
    ctx.strokeStyle = th.grid;
    ctx.beginPath();
    ctx.moveTo(x, Math.round(y) + 0.5);
    ctx.lineTo(ctx.canvas.width, Math.round(y) + 0.5);
    ctx.stroke();
    ctx.fillStyle = th.muted;
    ctx.fillText(formatTick(v), x - 4, y);
  }
}

export class DrillDown {
  constructor(container, { fetchLayer, fetchHistogram, onStep, onClose }) {
    this.fetchLayer = fetchLayer;
    this.fetchHistogram = fetchHistogram;
    this.onStep = onStep;
    this.root = el("section", "ss-card ss-drill");
    this.root.hidden = true;
    const head = el("div", "ss-drill-head");
    this.heading = el("h3", "ss-drill-title");
    this.meta = el("span", "ss-drill-meta");
    const close = el("button", "ss-icon-button", "\u00d7");
    close.type = "button";
    close.title = "Close the drill-down";
    close.setAttribute("aria-label", "Close the drill-down");
    close.addEventListener("click", () => onClose());
    head.append(this.heading, this.meta, close);
    const body = el("div", "ss-drill-body");
    const left = el("div", "ss-drill-chart");
    this.bandTitle = el("div", "ss-chart-title");
    this.bands = el("canvas", "ss-bands");
    this.readout = el("div", "ss-readout");
    left.append(this.bandTitle, this.bands, this.readout);
    const right = el("div", "ss-drill-chart");
    this.histTitle = el("div", "ss-chart-title");
    this.hist = el("canvas", "ss-hist");
    this.histNote = el("div", "ss-readout");
    right.append(this.histTitle, this.hist, this.histNote);
    this.right = right;
    body.append(left, right);
    this.root.append(head, body);
    container.append(this.root);
    this.data = null;
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

  // Open (or refresh) for `layer` of `run`.
  async show({ run, layer, info, metric, metricLabel, unit, step, width }) {
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
    this.metricLabel = metricLabel;
    this.unit = unit;
    this.width = width;
    if (step !== undefined && step !== null) this.step = step;
    if (this.abort) this.abort.abort();
    this.abort = new AbortController();
    const signal = this.abort.signal;
    const chartW = this._chartWidth();
    this.bandTitle.textContent = `${metricLabel} over steps (log scale): bands p01\u2013p99, p05\u2013p95, p25\u2013p75; line p50; dashed min / max`;
    try {
      const data = await this.fetchLayer({ run, layer, metric, maxSteps: Math.max(50, Math.floor(chartW - 60)) }, signal);
      this.data = data;
      this.statIndex = Object.fromEntries(data.stats.map((s, i) => [s, i]));
      this.kinds = new Map((data.nonfinite || []).map(([j, s, kind]) => [j + "," + s, kind]));
      if (this.step === null || this.step === undefined) this.step = data.steps[data.steps.length - 1];
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
    const data = this.data;
    const hasHist = data && data.histogram_steps && data.histogram_steps.length > 0;
    this.right.hidden = !hasHist;
    if (!hasHist) {
      this.histogram = null;
      return;
    }
    try {
      this.histogram = await this.fetchHistogram(
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

  _value(col, stat) {
    const s = this.statIndex[stat];
    if (s === undefined) return undefined;
    const v = this.data.values[col] ? this.data.values[col][s] : null;
    if (v === null || v === undefined) return this.kinds.get(col + "," + s) || null;
    return v;
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
    const steps = this.data.steps;
    let col = steps.length - 1;
    for (let j = 0; j < steps.length; j++) {
      if (steps[j] <= this.step && this.step <= (this.data.step_ends[j] ?? steps[j])) {
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
    const data = this.data;
    const th = theme(this.root);
    const g = this._geometry();
    const ctx = setupCanvas(this.bands, g.w, g.h);
    const n = data.steps.length;
    const scalar = !("p50" in this.statIndex);
    const lineStats = scalar ? [data.stats[0]] : ["min", "max", "p01", "p99", "p50"];
    let lo = Infinity;
    let hi = -Infinity;
    for (let j = 0; j < n; j++) {
      for (const s of lineStats) {
        const v = this._value(j, s);
        if (typeof v === "number" && v > 0 && isFinite(v)) {
          lo = Math.min(lo, v);
          hi = Math.max(hi, v);
        }
      }
    }
    const plotTop = g.top;
    const plotBottom = g.h - g.bottom;
    const plotW = g.w - g.left - g.right;
    ctx.fillStyle = th.muted;
    if (lo === Infinity) {
      ctx.font = `12px ${th.font}`;
      ctx.textAlign = "center";
      ctx.fillText("no positive finite values to plot", g.w / 2, g.h / 2);
      return;
    }
    const scale = new LogScale(lo / 1.3, hi * 1.3);
    this.bandScale = scale;
    drawLogAxis(ctx, scale, g.left, plotTop, plotBottom, th);
    const X = (j) => g.left + (n > 1 ? j / (n - 1) : 0.5) * plotW;
    const Y = (v) => plotBottom - scale.t(v) * (plotBottom - plotTop);
    const ok = (v) => typeof v === "number" && v > 0 && isFinite(v);
    const accent = th.accent;

    const band = (a, b, alpha) => {
      ctx.globalAlpha = alpha;
      ctx.fillStyle = accent;
      let j = 0;
      while (j < n) {
        while (j < n && !(ok(this._value(j, a)) && ok(this._value(j, b)))) j++;
        const start = j;
        while (j < n && ok(this._value(j, a)) && ok(this._value(j, b))) j++;
        if (j - start < 1) continue;
        ctx.beginPath();
        for (let k = start; k < j; k++) ctx.lineTo(X(k), Y(this._value(k, b)));
        for (let k = j - 1; k >= start; k--) ctx.lineTo(X(k), Y(this._value(k, a)));
        ctx.closePath();
        ctx.fill();
        if (j - start === 1) ctx.fillRect(X(start) - 1.5, Y(this._value(start, b)), 3, Y(this._value(start, a)) - Y(this._value(start, b)));
      }
      ctx.globalAlpha = 1;
    };
    const line = (s, width, alpha, dash) => {
      ctx.strokeStyle = accent;
      ctx.globalAlpha = alpha;
      ctx.lineWidth = width;
      ctx.setLineDash(dash || []);
      ctx.beginPath();
      let pen = false;
      for (let j = 0; j < n; j++) {
        const v = this._value(j, s);
        if (!ok(v)) {
          pen = false;
          continue;
        }
        if (pen) ctx.lineTo(X(j), Y(v));
        else ctx.moveTo(X(j), Y(v));
        pen = true;
        if (n === 1) ctx.arc(X(j), Y(v), 2, 0, 2 * Math.PI);
      }
      ctx.stroke();
      ctx.setLineDash([]);
      ctx.globalAlpha = 1;
    };
    if (scalar) {
      line(data.stats[0], 2, 1);
    } else {
      for (const [a, b, alpha] of BANDS) band(a, b, alpha);
      line("min", 1, 0.45, [3, 3]);
      line("max", 1, 0.45, [3, 3]);
      line("p50", 2, 1);
    }

    // Zero and non-finite columns: marks under the plot.
    const keyStat = scalar ? data.stats[0] : "p50";
    for (let j = 0; j < n; j++) {
      const v = this._value(j, keyStat);
      const anyBad = !scalar && typeof this._value(j, "nonfinite") === "number" && this._value(j, "nonfinite") > 0;
      if (v === 0) {
        ctx.fillStyle = th.muted;
        ctx.fillRect(X(j) - 1.5, plotBottom + 1, 3, 5);
      } else if (typeof v === "string" || anyBad) {
        ctx.fillStyle = "#e00000";
        ctx.fillRect(X(j) - 1.5, plotBottom + 1, 3, 5);
      }
    }

    // Step axis.
    ctx.strokeStyle = th.muted;
    ctx.beginPath();
    ctx.moveTo(g.left, plotBottom + 0.5);
    ctx.lineTo(g.left + plotW, plotBottom + 0.5);
    ctx.stroke();
    ctx.font = `10px ${th.font}`;
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.fillStyle = th.muted;
    const first = data.steps[0];
    const last = data.steps[n - 1];
    if (n > 1) {
      let lastRight = -Infinity;
      for (const s of niceLinear(first, last, Math.max(2, Math.floor(plotW / 70)))) {
        const x = g.left + ((s - first) / (last - first)) * plotW;
        const label = String(s);
        const w = ctx.measureText(label).width;
        if (x - w / 2 < lastRight + 6) continue;
        ctx.fillText(label, x, plotBottom + 8);
        lastRight = x + w / 2;
      }
    } else {
      ctx.fillText(String(first), X(0), plotBottom + 8);
    }
    ctx.textAlign = "right";
    ctx.fillText("step", g.left + plotW, plotBottom + 21);

    // Selected step.
    const sx = this._stepX();
    if (sx !== null) {
      ctx.strokeStyle = th.select;
      ctx.lineWidth = 1.5;
      ctx.beginPath();
      ctx.moveTo(Math.round(sx) + 0.5, plotTop);
      ctx.lineTo(Math.round(sx) + 0.5, plotBottom);
      ctx.stroke();
    }
  }

  _readout(col) {
    if (!this.data || col < 0) return;
    const d = this.data;
    const range = d.steps[col] === d.step_ends[col] ? `step ${d.steps[col]}` : `steps ${d.steps[col]}\u2013${d.step_ends[col]}`;
    const show = "p50" in this.statIndex ? ["min", "p01", "p05", "p25", "p50", "p75", "p95", "p99", "max"] : d.stats;
    const parts = show.map((s) => `${s} ${formatValue(this._value(col, s))}`);
    this.readout.textContent = `${range}: ${parts.join("  ")}`;
  }

  drawHistogram() {
    const h = this.histogram;
    const th = theme(this.root);
    const w = this._histWidth();
    const height = 230;
    const ctx = setupCanvas(this.hist, w, height);
    // TensorBoard keeps a sample of the histograms: say when this is the nearest one.
    const nearest = h.step !== this.step ? ", the nearest kept to " + this.step : "";
    this.histTitle.textContent = `|${this.metric}| histogram at step ${h.step}${nearest} (half-octave bins)`;
    const bins = h.bins || [];
    const zero = bins.length && bins[0][0] === 0 && bins[0][1] === 0 ? bins[0][2] : 0;
    const finite = bins.filter((b) => !(b[0] === 0 && b[1] === 0));
    const total = bins.reduce((a, b) => a + b[2], 0);
    const left = 46;
    const right = 10;
    const top = 10;
    const bottom = 34;
    const zeroW = 26;
    const plotL = left + zeroW + 8;
    const plotW = w - plotL - right;
    const plotB = height - bottom;
    const maxCount = Math.max(1, zero, ...finite.map((b) => b[2]));
    const Y = (c) => plotB - (c / maxCount) * (plotB - top);
    ctx.font = `10px ${th.font}`;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (const c of niceLinear(0, maxCount, 4)) {
      const y = Y(c);
      ctx.strokeStyle = th.grid;
      ctx.beginPath();
      ctx.moveTo(left, Math.round(y) + 0.5);
      ctx.lineTo(w - right, Math.round(y) + 0.5);
      ctx.stroke();
      ctx.fillStyle = th.muted;
      ctx.fillText(formatValue(c, 3), left - 4, y);
    }
    // Zero bin.
    ctx.fillStyle = th.muted;
    ctx.fillRect(left + 4, Y(zero), zeroW - 8, plotB - Y(zero));
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    ctx.fillText("0", left + zeroW / 2, plotB + 8);
    if (finite.length) {
      // At least two decades wide, so a few bins do not fill the chart.
      let lo = finite[0][0];
      let hi = finite[finite.length - 1][1];
      const widen = Math.sqrt(Math.max(1, 100 / (hi / lo)));
      lo /= widen;
      hi *= widen;
      const scale = new LogScale(lo, hi);
      const X = (v) => plotL + scale.t(v) * plotW;
      ctx.fillStyle = th.accent;
      for (const [l, r, c] of finite) {
        const x0 = X(l);
        const x1 = X(r);
        ctx.fillRect(x0 + 0.5, Y(c), Math.max(1, x1 - x0 - 1), plotB - Y(c));
      }
      ctx.fillStyle = th.muted;
      let lastRight = -Infinity;
      for (const v of scale.ticks(Math.max(2, Math.floor(plotW / 50)))) {
        const x = X(v);
        const label = formatTick(v);
        const tw = ctx.measureText(label).width;
        if (x - tw / 2 < lastRight + 4) continue;
        ctx.fillText(label, x, plotB + 8);
        lastRight = x + tw / 2;
      }
    }
    ctx.strokeStyle = th.muted;
    ctx.beginPath();
    ctx.moveTo(left, plotB + 0.5);
    ctx.lineTo(w - right, plotB + 0.5);
    ctx.stroke();
    ctx.textAlign = "right";
    ctx.fillText(`|${this.metric}| per element (log scale)`, w - right, plotB + 21);
    const zeroPct = total ? ((100 * zero) / total).toFixed(1) : "0";
    this.histNote.textContent = `${total.toLocaleString()} elements at step ${h.step}; ${zero.toLocaleString()} exactly zero (${zeroPct}%).`;
  }
}

// The drill-down's two charts, drawn from decoded data: one layer's
// quantile bands over the logged steps on a log axis, and the log-binned
// histogram of one step.

import { setupCanvas } from "./canvas.js";
import { niceStep } from "./axis.js";
import { formatTick, formatValue } from "./format.js";
import { LogScale } from "./scale.js";

const BANDS = [
  ["p01", "p99", 0.16],
  ["p05", "p95", 0.22],
  ["p25", "p75", 0.4],
];

// Round values from lo to hi, about `count` of them.
function niceLinear(lo, hi, count) {
  const span = hi - lo || 1;
  const step = niceStep(span, count);
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

// The bands p01-p99, p05-p95, p25-p75, the median line and dashed min/max
// of `series` ({steps, table}), or the one line of a per-layer metric; `g`
// the geometry {w, h, left, right, top, bottom}; `selectedX` the selected
// step's x (or null).
export function drawBands(canvas, series, g, selectedX, th) {
  const table = series.table;
  const value = (j, s) => table.get(j, s);
  const ctx = setupCanvas(canvas, g.w, g.h);
  const n = series.steps.length;
  const scalar = !table.has("p50");
  const lineStats = scalar ? [table.stats[0]] : ["min", "max", "p01", "p99", "p50"];
  let lo = Infinity;
  let hi = -Infinity;
  for (let j = 0; j < n; j++) {
    for (const s of lineStats) {
      const v = value(j, s);
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
      while (j < n && !(ok(value(j, a)) && ok(value(j, b)))) j++;
      const start = j;
      while (j < n && ok(value(j, a)) && ok(value(j, b))) j++;
      if (j - start < 1) continue;
      ctx.beginPath();
      for (let k = start; k < j; k++) ctx.lineTo(X(k), Y(value(k, b)));
      for (let k = j - 1; k >= start; k--) ctx.lineTo(X(k), Y(value(k, a)));
      ctx.closePath();
      ctx.fill();
      if (j - start === 1) ctx.fillRect(X(start) - 1.5, Y(value(start, b)), 3, Y(value(start, a)) - Y(value(start, b)));
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
      const v = value(j, s);
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
    line(table.stats[0], 2, 1);
  } else {
    for (const [a, b, alpha] of BANDS) band(a, b, alpha);
    line("min", 1, 0.45, [3, 3]);
    line("max", 1, 0.45, [3, 3]);
    line("p50", 2, 1);
  }

  // Zero and non-finite columns: marks under the plot.
  const keyStat = scalar ? table.stats[0] : "p50";
  for (let j = 0; j < n; j++) {
    const v = value(j, keyStat);
    const anyBad = !scalar && typeof value(j, "nonfinite") === "number" && value(j, "nonfinite") > 0;
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
  const first = series.steps[0];
  const last = series.steps[n - 1];
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
  const sx = selectedX;
  if (sx !== null) {
    ctx.strokeStyle = th.select;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    ctx.moveTo(Math.round(sx) + 0.5, plotTop);
    ctx.lineTo(Math.round(sx) + 0.5, plotBottom);
    ctx.stroke();
  }
}

// The histogram `h` ({step, bins}: [left, right, count], zeros first) at
// `w` px wide; returns the title and the note under it.
export function drawHistogram(canvas, h, { w, metric, step }, th) {
  const height = 230;
  const ctx = setupCanvas(canvas, w, height);
  // TensorBoard keeps a sample of the histograms: say when this is the nearest one.
  const nearest = h.step !== step ? ", the nearest kept to " + step : "";
  const title = `|${metric}| histogram at step ${h.step}${nearest} (half-octave bins)`;
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
  ctx.fillText(`|${metric}| per element (log scale)`, w - right, plotB + 21);
  const zeroPct = total ? ((100 * zero) / total).toFixed(1) : "0";
  const note = `${total.toLocaleString()} elements at step ${h.step}; ${zero.toLocaleString()} exactly zero (${zeroPct}%).`;
  return { title, note };
}

// The layers x steps heatmap: one canvas for labels, cells and axis, one
// overlay canvas for hover and selection marks (so hovering never redraws
// the cells), and the colour legend.

import { CODE, LUT_SIZE, SPECIAL, cssColor, formatTick, formatValue, lut, packedLut } from "./colormaps.js";

// Size a canvas for the device pixel ratio; returns its cleared 2-D context in CSS pixels.
export function setupCanvas(canvas, width, height) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.style.width = width + "px";
  canvas.style.height = height + "px";
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return ctx;
}

export const KIND = { finite: 0, nan: 1, inf: 2, "-inf": 3, missing: 4 };
const KIND_NAMES = ["finite", "nan", "inf", "-inf", "missing"];

export function theme(el) {
  const style = getComputedStyle(el || document.documentElement);
  const v = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return {
    text: v("--ss-text", "#212121"),
    muted: v("--ss-muted", "#616161"),
    grid: v("--ss-grid", "#e0e0e0"),
    bg: v("--ss-card", "#ffffff"),
    hatch: v("--ss-hatch", "#bdbdbd"),
    missing: v("--ss-missing", "#e9e9e9"),
    accent: v("--ss-accent", "#f57c00"),
    select: v("--ss-select", "#1976d2"),
    font: v("--ss-font", "Roboto, sans-serif"),
  };
}

// ---------------------------------------------------------------- the data

// A grid of one run (or a ratio of two) ready to draw.  `values` is
// row-major Float64Array (rows x cols), `kinds` a Uint8Array of KIND.
export class Grid {
  constructor({ layers, steps, stepEnds, wallTimes, values, kinds, info }) {
    this.layers = layers;
    this.steps = steps;
    this.stepEnds = stepEnds;
    this.wallTimes = wallTimes;
    this.values = values;
    this.kinds = kinds;
    this.info = info || {};
    this.rows = layers.length;
    this.cols = steps.length;
  }

  // From a `heatmap` response.
  static fromResponse(resp) {
    const rows = resp.layers.length;
    const cols = resp.steps.length;
    const values = new Float64Array(rows * cols);
    const kinds = new Uint8Array(rows * cols);
    for (let i = 0; i < rows; i++) {
      const row = resp.values[i] || [];
      const base = i * cols;
      for (let j = 0; j < cols; j++) {
        const v = row[j];
        if (v === null || v === undefined) {
          values[base + j] = NaN;
          kinds[base + j] = KIND.missing;
        } else {
          values[base + j] = v;
        }
      }
    }
    for (const [i, j, kind] of resp.nonfinite || []) {
      if (i < rows && j < cols) {
        kinds[i * cols + j] = KIND[kind] ?? KIND.nan;
        values[i * cols + j] = kind === "inf" ? Infinity : kind === "-inf" ? -Infinity : NaN;
      }
    }
    return new Grid({
      layers: resp.layers,
      steps: resp.steps,
      stepEnds: resp.step_ends || resp.steps,
      wallTimes: resp.wall_times || [],
      values,
      kinds,
      info: { run: resp.run, metric: resp.metric, stat: resp.stat, pooling: resp.pooling },
    });
  }

  // The rows whose index is in `rowIndices` (filtering keeps model order).
  subset(rowIndices) {
    const cols = this.cols;
    const values = new Float64Array(rowIndices.length * cols);
    const kinds = new Uint8Array(rowIndices.length * cols);
    rowIndices.forEach((r, i) => {
      values.set(this.values.subarray(r * cols, (r + 1) * cols), i * cols);
      kinds.set(this.kinds.subarray(r * cols, (r + 1) * cols), i * cols);
    });
    const g = new Grid({ ...this, layers: rowIndices.map((r) => this.layers[r]), values, kinds });
    g.sourceRows = rowIndices;
    return g;
  }

  value(row, col) {
    const k = row * this.cols + col;
    const kind = this.kinds[k];
    if (kind === KIND.finite) return this.values[k];
    return KIND_NAMES[kind]; // "nan" | "inf" | "-inf" | "missing"
  }

  // Smallest positive and largest finite value (computed once).
  range() {
    if (!this._range) this._range = this._computeRange();
    return this._range;
  }

  _computeRange() {
    let lo = Infinity;
    let hi = -Infinity;
    const { values, kinds } = this;
    for (let k = 0; k < values.length; k++) {
      if (kinds[k] !== KIND.finite) continue;
      const v = values[k];
      if (v > 0 && v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return { lo: lo === Infinity ? null : lo, hi: hi === -Infinity || hi <= 0 ? null : hi };
  }

  // Column j of the ratio grid a / b: rows matched by layer path, columns by
  // the b column whose step range holds a's first step.
  static ratio(a, b) {
    const rowOfB = new Map(b.layers.map((p, i) => [p, i]));
    const rows = a.layers.map((p, i) => [i, rowOfB.get(p)]).filter(([, rb]) => rb !== undefined);
    const colOfB = a.steps.map((s) => {
      let lo = 0;
      let hi = b.cols - 1;
      let found = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (b.steps[mid] <= s) {
          found = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      return found >= 0 && s <= b.stepEnds[found] ? found : -1;
    });
    const cols = a.cols;
    const values = new Float64Array(rows.length * cols);
    const kinds = new Uint8Array(rows.length * cols);
    const parts = new Array(rows.length * cols);
    rows.forEach(([ra, rb], i) => {
      for (let j = 0; j < cols; j++) {
        const k = i * cols + j;
        const va = a.value(ra, j);
        const jb = colOfB[j];
        const vb = jb >= 0 ? b.value(rb, jb) : "missing";
        parts[k] = [va, vb];
        if (va === "missing" || vb === "missing") {
          kinds[k] = KIND.missing;
          values[k] = NaN;
        } else if (typeof va === "string") {
          kinds[k] = KIND[va]; // a non-finite numerator stays what it was
          values[k] = va === "inf" ? Infinity : va === "-inf" ? -Infinity : NaN;
        } else if (typeof vb === "string" || (va === 0 && vb === 0)) {
          kinds[k] = KIND.nan;
          values[k] = NaN;
        } else if (vb === 0) {
          kinds[k] = KIND.inf;
          values[k] = Infinity;
        } else {
          values[k] = va / vb;
        }
      }
    });
    const g = new Grid({
      layers: rows.map(([ra]) => a.layers[ra]),
      steps: a.steps,
      stepEnds: a.stepEnds,
      wallTimes: a.wallTimes,
      values,
      kinds,
      info: { ...a.info, ratioOf: [a.info.run, b.info.run] },
    });
    g.parts = parts;
    return g;
  }
}

// ------------------------------------------------------------ path labels

// `a/b/c/kernel` shortened to fit `maxWidth`: leading components go first
// ("…/c/kernel"), then the middle of the last one.
export function shortenPath(ctx, path, maxWidth) {
  if (ctx.measureText(path).width <= maxWidth) return path;
  const parts = path.split("/");
  for (let k = 1; k < parts.length; k++) {
    const candidate = "\u2026/" + parts.slice(k).join("/");
    if (ctx.measureText(candidate).width <= maxWidth) return candidate;
  }
  const last = parts.length > 1 ? "\u2026/" + parts[parts.length - 1] : path;
  let keep = last.length;
  while (keep > 3) {
    keep--;
    const head = Math.ceil(keep / 2);
    const candidate = last.slice(0, head) + "\u2026" + last.slice(last.length - (keep - head));
    if (ctx.measureText(candidate).width <= maxWidth) return candidate;
  }
  return "\u2026";
}

// ------------------------------------------------------------------- axes

function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

export function formatDuration(seconds) {
  const s = Math.round(seconds);
  if (Math.abs(seconds) < 10 && seconds !== s) return seconds.toFixed(1) + "s";
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + (s % 60 ? String(s % 60).padStart(2, "0") + "s" : "");
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h + "h" + (m ? String(m).padStart(2, "0") + "m" : "");
}

// Fractional column position of `x` in the increasing sequence `starts`
// (column j spans [starts[j], starts[j+1])).
function columnPosition(starts, x, lastEnd) {
  const n = starts.length;
  if (n === 0) return 0;
  if (x <= starts[0]) return 0;
  let lo = 0;
  let hi = n - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (starts[mid] <= x) lo = mid;
    else hi = mid - 1;
  }
  if (lo === n - 1) {
    const span = lastEnd !== undefined ? lastEnd - starts[n - 1] + 1 : 1;
    return n - 1 + Math.min(1, (x - starts[n - 1]) / span);
  }
  return lo + (x - starts[lo]) / (starts[lo + 1] - starts[lo] || 1);
}

// ----------------------------------------------------------------- panel

const LABEL_FONT_PX = 11;
const AXIS_H = 36;
const TOP_PAD = 4;
const RIGHT_PAD = 10;

export class HeatmapPanel {
  constructor(container, { onHover, onClick, onLeave }) {
    this.root = document.createElement("div");
    this.root.className = "ss-panel";
    this.title = document.createElement("div");
    this.title.className = "ss-panel-title";
    this.stage = document.createElement("div");
    this.stage.className = "ss-stage";
    this.canvas = document.createElement("canvas");
    this.canvas.className = "ss-heatmap";
    this.overlay = document.createElement("canvas");
    this.overlay.className = "ss-overlay";
    this.stage.append(this.canvas, this.overlay);
    this.root.append(this.title, this.stage);
    container.append(this.root);
    this.grid = null;
    this.hover = null;
    this.selectedRow = -1;
    this.selectedCol = -1;
    this.bitmap = document.createElement("canvas");
    this.onHover = onHover;
    this.onClick = onClick;
    this.onLeave = onLeave;
    this.overlay.addEventListener("mousemove", (e) => this._move(e));
    this.overlay.addEventListener("mouseleave", () => this._leave());
    this.overlay.addEventListener("click", (e) => {
      const cell = this.cellAt(e.offsetX, e.offsetY);
      if (cell) this.onClick(this, cell);
    });
  }

  destroy() {
    this.root.remove();
  }

  setTitle(text) {
    this.title.textContent = text;
    this.title.title = text;
  }

  // Lay out for a CSS size; returns the cell area's width in pixels.
  layout(width, height, rows, labelWidth) {
    this.width = Math.max(120, Math.floor(width));
    this.labelWidth = labelWidth;
    this.cellsW = Math.max(20, this.width - labelWidth - RIGHT_PAD);
    const rowH = rows > 0 ? Math.max(2, Math.min(20, Math.floor((height - TOP_PAD - AXIS_H) / rows))) : 20;
    this.rowH = rowH;
    this.cellsH = Math.max(rowH, rows * rowH);
    this.height = TOP_PAD + this.cellsH + AXIS_H;
    return this.cellsW;
  }

  // Draw `grid` with `scale` (LogScale) and colour map `cmap`.  `xMode` is
  // "step" or "wall".  Returns the milliseconds spent.
  draw(grid, scale, cmap, xMode) {
    const t0 = performance.now();
    this.grid = grid;
    this.scale = scale;
    this.cmap = cmap;
    this.xMode = xMode;
    const dpr = window.devicePixelRatio || 1;
    this.dpr = dpr;
    for (const c of [this.canvas, this.overlay]) {
      c.width = Math.round(this.width * dpr);
      c.height = Math.round(this.height * dpr);
      c.style.width = this.width + "px";
      c.style.height = this.height + "px";
    }
    this.stage.style.height = this.height + "px";
    this.stage.style.width = this.width + "px";
    this.root.style.width = this.width + "px";
    const ctx = this.canvas.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    const th = theme(this.root);
    this.theme = th;
    ctx.clearRect(0, 0, this.width, this.height);
    const x0 = this.labelWidth;
    const y0 = TOP_PAD;
    const { rows, cols } = grid;
    this.colW = cols > 0 ? this.cellsW / cols : this.cellsW;

    // Hatched background: what shows through missing cells.
    ctx.save();
    ctx.beginPath();
    ctx.rect(x0, y0, this.cellsW, this.cellsH);
    ctx.clip();
    ctx.fillStyle = th.missing;
    ctx.fillRect(x0, y0, this.cellsW, this.cellsH);
    ctx.strokeStyle = th.hatch;
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let d = -this.cellsH; d < this.cellsW; d += 6) {
      ctx.moveTo(x0 + d, y0 + this.cellsH);
      ctx.lineTo(x0 + d + this.cellsH, y0);
    }
    ctx.stroke();
    ctx.restore();

    // Cells: one pixel per cell in a bitmap, scaled up without smoothing.
    if (rows > 0 && cols > 0) {
      // Codes depend on the data and the scale only; a colour-map change reuses them.
      if (!(this.codes && this._codesFor === grid && this._codesScale === scale.l0 + "," + scale.l1)) {
        this.codes = computeCodes(grid, scale);
        this._codesFor = grid;
        this._codesScale = scale.l0 + "," + scale.l1;
      }
      const words = packedLut(cmap);
      this.bitmap.width = cols;
      this.bitmap.height = rows;
      const bctx = this.bitmap.getContext("2d");
      const image = bctx.createImageData(cols, rows);
      const out = new Uint32Array(image.data.buffer);
      const codes = this.codes;
      for (let k = 0; k < codes.length; k++) out[k] = words[codes[k]];
      bctx.putImageData(image, 0, 0);
      ctx.imageSmoothingEnabled = false;
      ctx.drawImage(this.bitmap, 0, 0, cols, rows, x0, y0, this.cellsW, this.cellsH);
    }

    // Row labels.
    ctx.font = `${LABEL_FONT_PX}px ${th.font}`;
    ctx.textBaseline = "middle";
    ctx.textAlign = "right";
    ctx.fillStyle = th.text;
    const every = Math.max(1, Math.ceil((LABEL_FONT_PX + 2) / this.rowH));
    this.labelEvery = every;
    for (let i = 0; i < rows; i += every) {
      const label = shortenPath(ctx, grid.layers[i], this.labelWidth - 10);
      ctx.fillText(label, x0 - 6, y0 + (i + 0.5) * this.rowH);
    }
    if (every > 1) {
      ctx.fillStyle = th.muted;
      ctx.textAlign = "left";
      ctx.fillText(`every ${every}${ordinalSuffix(every)} layer labelled`, 2, y0 + this.cellsH + 28);
    }

    this._drawAxis(ctx, th);
    this.lastDrawMs = performance.now() - t0;
    this.drawOverlay();
    return this.lastDrawMs;
  }

  _drawAxis(ctx, th) {
    const grid = this.grid;
    const x0 = this.labelWidth;
    const yAxis = TOP_PAD + this.cellsH;
    ctx.strokeStyle = th.muted;
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(x0, yAxis + 0.5);
    ctx.lineTo(x0 + this.cellsW, yAxis + 0.5);
    ctx.stroke();
    ctx.fillStyle = th.muted;
    ctx.font = `${LABEL_FONT_PX}px ${th.font}`;
    ctx.textBaseline = "top";
    if (!grid || grid.cols === 0) return;
    const wall = this.xMode === "wall" && grid.wallTimes.length === grid.cols;
    const starts = wall ? grid.wallTimes.map((t) => t - grid.wallTimes[0]) : grid.steps;
    const first = starts[0];
    const last = wall ? starts[starts.length - 1] : grid.stepEnds[grid.cols - 1];
    const maxTicks = Math.max(2, Math.floor(this.cellsW / 80));
    let ticks = [];
    if (last > first) {
      let step;
      if (wall) {
        const raw = (last - first) / maxTicks;
        step = TIME_STEPS.find((s) => s >= raw) || niceStep(last - first, maxTicks);
      } else {
        step = Math.max(1, niceStep(last - first, maxTicks));
      }
      for (let v = Math.ceil(first / step) * step; v <= last + 1e-9; v += step) ticks.push(v);
    } else {
      ticks = [first];
    }
    ctx.textAlign = "center";
    let lastRight = -Infinity;
    // One logged step per column: ticks at column centres.
    const single = grid.steps.every((s, j) => s === grid.stepEnds[j]);
    for (const v of ticks) {
      const pos = columnPosition(starts, v, wall ? undefined : grid.stepEnds[grid.cols - 1]) + (single ? 0.5 : 0);
      const x = x0 + Math.min(grid.cols, pos) * this.colW;
      const label = wall ? formatDuration(v) : String(v);
      const w = ctx.measureText(label).width;
      ctx.beginPath();
      ctx.moveTo(Math.round(x) + 0.5, yAxis);
      ctx.lineTo(Math.round(x) + 0.5, yAxis + 4);
      ctx.stroke();
      if (x - w / 2 > lastRight + 6 && x + w / 2 <= this.width) {
        ctx.fillText(label, x, yAxis + 6);
        lastRight = x + w / 2;
      }
    }
    ctx.textAlign = "right";
    ctx.fillText(wall ? "wall time since first logged step" : "step", x0 + this.cellsW, yAxis + 21);
  }

  // Cell under a CSS-pixel position in the canvas, or null.
  cellAt(x, y) {
    const grid = this.grid;
    if (!grid || grid.rows === 0 || grid.cols === 0) return null;
    const cx = x - this.labelWidth;
    const cy = y - TOP_PAD;
    // Hovering a row label selects the row (col -1 means "no cell").
    if (cy < 0 || cy >= this.cellsH || cx >= this.cellsW) return null;
    const row = Math.floor(cy / this.rowH);
    if (row < 0 || row >= grid.rows) return null;
    if (cx < 0) return { row, col: -1 };
    const col = Math.min(grid.cols - 1, Math.floor((cx * grid.cols) / this.cellsW));
    return { row, col };
  }

  // CSS-pixel rectangle of a cell (its drawn extent).
  cellRect(row, col) {
    const x = this.labelWidth + (col * this.cellsW) / this.grid.cols;
    const x1 = this.labelWidth + ((col + 1) * this.cellsW) / this.grid.cols;
    return { x, y: TOP_PAD + row * this.rowH, w: x1 - x, h: this.rowH };
  }

  _move(e) {
    const cell = this.cellAt(e.offsetX, e.offsetY);
    this.overlay.style.cursor = cell ? "pointer" : "default";
    const same = cell && this.hover && cell.row === this.hover.row && cell.col === this.hover.col;
    this.hover = cell;
    if (!same) this.drawOverlay();
    if (cell) this.onHover(this, cell, e);
    else this.onLeave(this);
  }

  _leave() {
    this.hover = null;
    this.drawOverlay();
    this.onLeave(this);
  }

  setHover(cell) {
    this.hover = cell;
    this.drawOverlay();
  }

  select(row, col) {
    this.selectedRow = row;
    this.selectedCol = col;
    this.drawOverlay();
  }

  // Hover and selection marks only; the cells stay untouched.
  drawOverlay() {
    const ctx = this.overlay.getContext("2d");
    const dpr = this.dpr || 1;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, this.width, this.height);
    const grid = this.grid;
    if (!grid || grid.rows === 0) return;
    const th = this.theme || theme(this.root);
    const x0 = this.labelWidth;
    if (this.selectedRow >= 0 && this.selectedRow < grid.rows) {
      const y = TOP_PAD + this.selectedRow * this.rowH;
      ctx.fillStyle = th.select;
      ctx.fillRect(x0 - 4, y, 3, Math.max(2, this.rowH));
      ctx.strokeStyle = th.select;
      ctx.lineWidth = 1.5;
      ctx.strokeRect(x0 + 0.5, y + 0.5, this.cellsW - 1, Math.max(1, this.rowH - 1));
      if (this.selectedCol >= 0 && this.selectedCol < grid.cols) {
        const r = this.cellRect(this.selectedRow, this.selectedCol);
        ctx.lineWidth = 2;
        ctx.strokeRect(r.x - 1, r.y - 1, Math.max(2, r.w) + 2, Math.max(2, r.h) + 2);
      }
    }
    if (this.hover) {
      const { row, col } = this.hover;
      const y = TOP_PAD + row * this.rowH;
      ctx.fillStyle = "rgba(128,128,128,0.18)";
      ctx.fillRect(0, y, x0 - 2, this.rowH);
      if (col >= 0) {
        const r = this.cellRect(row, col);
        ctx.strokeStyle = "rgba(128,128,128,0.55)";
        ctx.lineWidth = 1;
        const cx = Math.round(r.x + r.w / 2) + 0.5;
        ctx.beginPath();
        ctx.moveTo(cx, TOP_PAD);
        ctx.lineTo(cx, r.y - 2);
        ctx.moveTo(cx, r.y + r.h + 2);
        ctx.lineTo(cx, TOP_PAD + this.cellsH);
        ctx.stroke();
        ctx.lineWidth = 2;
        ctx.strokeStyle = th.text;
        ctx.strokeRect(r.x - 1, r.y - 1, Math.max(2, r.w) + 2, Math.max(2, r.h) + 2);
        ctx.lineWidth = 1;
        ctx.strokeStyle = th.bg;
        ctx.strokeRect(r.x - 2.5, r.y - 2.5, Math.max(2, r.w) + 5, Math.max(2, r.h) + 5);
      }
      // The full path of a shortened label, drawn over the label column.
      const full = grid.layers[row];
      ctx.font = `${LABEL_FONT_PX}px ${th.font}`;
      const w = ctx.measureText(full).width;
      if (w > x0 - 10 || this.labelEvery > 1) {
        ctx.fillStyle = th.bg;
        const boxW = Math.min(w + 8, this.width);
        ctx.fillRect(Math.max(0, x0 - 4 - boxW), y + this.rowH / 2 - 8, boxW + 2, 16);
        ctx.fillStyle = th.text;
        ctx.textBaseline = "middle";
        ctx.textAlign = w + 8 > x0 ? "left" : "right";
        ctx.fillText(full, w + 8 > x0 ? 2 : x0 - 6, y + this.rowH / 2);
      }
    }
  }
}

function ordinalSuffix(n) {
  const s = ["th", "st", "nd", "rd"];
  const v = n % 100;
  return s[(v - 20) % 10] || s[v] || s[0];
}

// Uint16 cell codes (LUT index or special) of a whole grid.
export function computeCodes(grid, scale) {
  const { values, kinds } = grid;
  const codes = new Uint16Array(values.length);
  const l0 = scale.l0;
  const inv = LUT_SIZE / (scale.l1 - scale.l0);
  const LOG10E = Math.LOG10E;
  const kindCode = [0, CODE.nan, CODE.inf, CODE["-inf"], CODE.missing];
  for (let k = 0; k < values.length; k++) {
    const kind = kinds[k];
    if (kind !== 0) {
      codes[k] = kindCode[kind];
      continue;
    }
    const v = values[k];
    if (v === 0) {
      codes[k] = CODE.zero;
    } else if (v < 0) {
      codes[k] = 0;
    } else {
      const i = Math.floor((Math.log(v) * LOG10E - l0) * inv);
      codes[k] = i < 0 ? 0 : i >= LUT_SIZE ? LUT_SIZE - 1 : i;
    }
  }
  return codes;
}

// ----------------------------------------------------------------- legend

// Draws the legend into `ctx` at (x, y), `width` wide; returns its height.
// `opts`: {scale, cmap, title, reference: {value, label} | null, th}.
export function drawLegend(ctx, x, y, width, opts) {
  const { scale, cmap, title, reference, th, specials } = opts;
  const font = th.font;
  ctx.save();
  ctx.textBaseline = "top";
  ctx.textAlign = "left";
  ctx.font = `500 12px ${font}`;
  ctx.fillStyle = th.text;
  ctx.fillText(title, x, y);

  const barY = y + 30;
  const barH = 12;
  const swatchW = specials ? 380 : 0;
  const barW = Math.max(120, Math.min(width - swatchW - 70, 520));
  const barX = x + 34;
  const table = lut(cmap);
  for (let i = 0; i < barW; i++) {
    ctx.fillStyle = cssColor(table[Math.min(LUT_SIZE - 1, Math.floor((i / barW) * LUT_SIZE))]);
    ctx.fillRect(barX + i, barY, 1.5, barH);
  }
  ctx.strokeStyle = th.muted;
  ctx.lineWidth = 1;
  ctx.strokeRect(barX - 0.5, barY - 0.5, barW + 1, barH + 1);

  // min / max at the ends, ticks between.
  ctx.font = `11px ${font}`;
  ctx.fillStyle = th.muted;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  ctx.fillText("\u2264", barX - 4, barY + barH / 2);
  ctx.textAlign = "left";
  ctx.fillText("\u2265", barX + barW + 4, barY + barH / 2);
  ctx.textBaseline = "top";
  const ticks = scale.ticks(Math.max(3, Math.floor(barW / 55)));
  const pos = (v) => barX + scale.t(v) * barW;
  ctx.textAlign = "center";
  let lastRight = -Infinity;
  const placed = [];
  const endLabels = [
    [scale.lo, "left"],
    [scale.hi, "right"],
  ];
  ctx.fillStyle = th.text;
  for (const [v, align] of endLabels) {
    const label = formatValue(v, 3);
    const w = ctx.measureText(label).width;
    const px = align === "left" ? barX : barX + barW;
    ctx.textAlign = align;
    ctx.fillText(label, px, barY + barH + 4);
    placed.push(align === "left" ? [px, px + w] : [px - w, px]);
  }
  ctx.fillStyle = th.muted;
  ctx.textAlign = "center";
  for (const v of ticks) {
    const px = pos(v);
    ctx.beginPath();
    ctx.moveTo(Math.round(px) + 0.5, barY + barH);
    ctx.lineTo(Math.round(px) + 0.5, barY + barH + 3);
    ctx.stroke();
    const label = formatTick(v);
    const w = ctx.measureText(label).width;
    const l = px - w / 2;
    const r = px + w / 2;
    if (l > lastRight + 4 && placed.every(([a, b]) => r + 8 < a || l > b + 8)) {
      ctx.fillText(label, px, barY + barH + 4);
      lastRight = r;
    }
  }

  if (reference && reference.value >= scale.lo * (1 - 1e-9) && reference.value <= scale.hi * (1 + 1e-9)) {
    const px = Math.round(pos(reference.value)) + 0.5;
    ctx.strokeStyle = th.text;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(px, barY - 4);
    ctx.lineTo(px, barY + barH + 2);
    ctx.stroke();
    ctx.fillStyle = th.text;
    ctx.beginPath();
    ctx.moveTo(px - 4, barY - 8);
    ctx.lineTo(px + 4, barY - 8);
    ctx.lineTo(px, barY - 3);
    ctx.fill();
    ctx.font = `11px ${font}`;
    ctx.textAlign = "left";
    ctx.textBaseline = "bottom";
    ctx.fillText(reference.label, px + 7, barY - 1);
  }

  // Special values.
  if (specials) {
    let sx = barX + barW + 28;
    const sy = barY - 1;
    ctx.font = `11px ${font}`;
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    for (const key of ["nan", "inf", "-inf", "zero", "missing"]) {
      const spec = SPECIAL[key];
      if (sx + 70 > x + width) break;
      if (spec.rgb) {
        ctx.fillStyle = cssColor(spec.rgb);
        ctx.fillRect(sx, sy, 14, 14);
      } else {
        drawHatch(ctx, sx, sy, 14, 14, th);
      }
      ctx.strokeStyle = th.muted;
      ctx.lineWidth = 1;
      ctx.strokeRect(sx - 0.5, sy - 0.5, 15, 15);
      ctx.fillStyle = th.text;
      ctx.fillText(spec.label, sx + 19, sy + 7);
      sx += 19 + ctx.measureText(spec.label).width + 14;
    }
  }
  ctx.restore();
  return barY + barH + 18 - y;
}

function drawHatch(ctx, x, y, w, h, th) {
  ctx.save();
  ctx.beginPath();
  ctx.rect(x, y, w, h);
  ctx.clip();
  ctx.fillStyle = th.missing;
  ctx.fillRect(x, y, w, h);
  ctx.strokeStyle = th.hatch;
  ctx.beginPath();
  for (let d = -h; d < w; d += 6) {
    ctx.moveTo(x + d, y + h);
    ctx.lineTo(x + d + h, y);
  }
  ctx.stroke();
  ctx.restore();
}

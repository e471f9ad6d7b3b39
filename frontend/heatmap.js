// One heatmap panel (layers x steps of one grid): a canvas for labels,
// cells and axis, and an overlay canvas for hover and selection marks, so
// hovering never redraws the cells.  The findings' marks are marks.js's.

import { packedLut } from "./colormaps.js";
import { drawHatch, theme } from "./canvas.js";
import { drawFullPath, drawRowLabels, drawStepAxis } from "./axis.js";
import { drawDragRect, drawErrorTicks, drawGuide, drawHighlight, drawRowMarkers } from "./marks.js";
import { computeCodes } from "./scale.js";

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
    this.guide = -1;
    this.bitmap = document.createElement("canvas");
    this.onHover = onHover;
    this.onClick = onClick;
    this.onLeave = onLeave;
    this.overlay.addEventListener("mousemove", (e) => this._move(e));
    this.overlay.addEventListener("mouseleave", () => this._leave());
    this.overlay.addEventListener("click", (e) => {
      if (this.suppressClick) {
        this.suppressClick = false; // the end of a drag (navigate.js)
        return;
      }
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
  // "step" or "wall"; `marks` the findings' (findings.js marksOf) or null.
  // Returns the milliseconds spent.
  draw(grid, scale, cmap, xMode, marks) {
    const t0 = performance.now();
    this.grid = grid;
    this.marks = marks || null;
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

    // Hatched background: what shows through missing cells.
    ctx.lineWidth = 1;
    drawHatch(ctx, x0, y0, this.cellsW, this.cellsH, th);

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

    // Row labels (module names when rows are too thin for each).
    const labels = drawRowLabels(ctx, grid, { x0, y0, rowH: this.rowH, labelWidth: this.labelWidth, fontPx: LABEL_FONT_PX }, this.marks, th);
    this.labelEvery = labels.every;
    this.labelled = labels.rows;
    this.markedRows = drawRowMarkers(ctx, this, y0, this.marks ? this.marks.rows : new Map(), th);
    if (labels.every > 1) {
      ctx.fillStyle = th.muted;
      ctx.textAlign = "left";
      const note = labels.modules ? "labels: the first row of each module" : `every ${labels.every}${ordinalSuffix(labels.every)} row labelled`;
      ctx.fillText(note, 2, y0 + this.cellsH + 28);
    }

    const box = { x0, y: y0 + this.cellsH, cellsW: this.cellsW, width: this.width, fontPx: LABEL_FONT_PX };
    drawStepAxis(ctx, grid, box, this.xMode, th);
    this.ticks = drawErrorTicks(ctx, grid, box, this.marks && this.marks.ticks, th);
    this.lastDrawMs = performance.now() - t0;
    this.drawOverlay();
    return this.lastDrawMs;
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

  // What is under a CSS-pixel position: {region: "cells" | "labels" |
  // "axis", col (fractional, cells and axis), row (fractional, cells and
  // labels)}, or null outside -- for dragging a zoom (navigate.js).
  regionAt(x, y) {
    const grid = this.grid;
    if (!grid || grid.rows === 0 || grid.cols === 0) return null;
    const col = Math.max(0, Math.min(grid.cols - 1e-9, ((x - this.labelWidth) * grid.cols) / this.cellsW));
    const row = Math.max(0, Math.min(grid.rows - 1e-9, (y - TOP_PAD) / this.rowH));
    if (y >= TOP_PAD + this.cellsH && y < this.height && x >= this.labelWidth) return { region: "axis", col, row };
    if (y < TOP_PAD || y >= TOP_PAD + this.cellsH) return null;
    return { region: x < this.labelWidth ? "labels" : "cells", col, row };
  }

  // A drag's rectangle to show ({x0, x1, y0, y1} in CSS pixels), or null.
  setDrag(rect) {
    this.drag = rect;
    this.drawOverlay();
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

  // The selected finding's outline (`marks.highlight`), or none.
  setHighlight(highlight) {
    this.marks = { ...(this.marks || { rows: new Map(), ticks: [] }), highlight };
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
    this.highlighted = drawHighlight(ctx, this, this.marks && this.marks.highlight, th);
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
      ctx.font = `${LABEL_FONT_PX}px ${th.font}`;
      drawFullPath(ctx, grid.layers[row], { x0, y: y + this.rowH / 2, width: this.width, always: this.labelEvery > 1 }, th);
    } else if (this.guide >= 0 && this.guide < grid.cols) {
      drawGuide(ctx, this.cellRect(0, this.guide), TOP_PAD, this.cellsH);
    }
    if (this.drag) drawDragRect(ctx, this.drag, th);
  }

  // A column guide while the scalar strip above is hovered (-1: none).
  setGuide(col) {
    this.guide = col;
    this.drawOverlay();
  }
}

function ordinalSuffix(n) {
  const s = ["th", "st", "nd", "rd"];
  const v = n % 100;
  return s[(v - 20) % 10] || s[v] || s[0];
}

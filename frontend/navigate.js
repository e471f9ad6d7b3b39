// Moving around a big heatmap: the hovered cell (tooltip, strip cursor and
// the readout line), listing a group's members, drag to zoom (across the cells: steps, and
// rows too for a tall drag; on the step axis: steps only; on the labels:
// rows only), double-click to reset, shift+wheel (or a sideways wheel) to
// pan a zoomed step range, and a keyboard cell cursor (arrows, Page
// Up/Down, Home/End; Enter opens the drill-down or a group, Escape closes
// it).  It turns these into selection changes of its `app`; the zoom
// itself is state (`start`, `end`, `rows`), so a Link reproduces it.

import { expandedGroups } from "./state.js";

const DRAG_PX = 5; // less is a click
const ROW_DRAG_PX = 24; // a drag across the cells this tall zooms rows too
const PAN_FRACTION = 0.25;
const PAN_DELAY_MS = 150;

export class Navigator {
  constructor(app) {
    this.app = app;
    this.drag = null;
    this.cursor = null; // {panel, row, col}
    this.pan = { steps: 0, timer: 0 };
    window.addEventListener("mousemove", (e) => this._dragMove(e));
    window.addEventListener("mouseup", (e) => this._dragEnd(e));
    document.addEventListener("keydown", (e) => {
      if (e.key === "Escape" && this.app.drill.open) this.app.closeDrill();
    });
  }

  // Wire a new heatmap panel (HeatmapCard calls this once per panel).
  attach(panel) {
    const o = panel.overlay;
    o.tabIndex = 0;
    o.setAttribute("role", "application");
    o.setAttribute(
      "aria-label",
      "Heatmap: arrow keys move the cell cursor, Enter opens the layer or group, Escape closes it; drag to zoom, double-click to reset"
    );
    o.addEventListener("mousedown", (e) => this._dragStart(panel, e));
    o.addEventListener("dblclick", () => this.resetZoom());
    o.addEventListener("wheel", (e) => this._wheel(e), { passive: false });
    o.addEventListener("keydown", (e) => this._key(panel, e));
    o.addEventListener("focus", () => {
      if (!o.matches(":focus-visible")) return; // focused by a click: the pointer shows the cell
      this._moveCursor(panel, this.cursor && this.cursor.panel === panel ? this.cursor : this._startCell(panel));
    });
    o.addEventListener("blur", () => {
      if (this.cursor && this.cursor.panel === panel) this.leave(panel);
    });
  }

  // The pointer over `cell` of `panel` (a mousemove).
  hover(panel, cell, event) {
    const app = this.app;
    app.tooltip.hoverAt(panel, cell, event);
    app.strip.cursorAtColumn(panel, cell.col);
    app.viewbar.showReadout(app.tooltip.describe(panel.grid, cell, app.state));
  }

  // Show `cell` of `panel` as hovered (the keyboard cursor): its marks, the
  // tooltip at (x, y), the strip's cursor and the readout.
  showCell(panel, cell, x, y) {
    const app = this.app;
    panel.setHover(cell);
    app.tooltip.update(panel, cell, x, y);
    app.strip.cursorAtColumn(panel, cell.col);
    app.viewbar.showReadout(app.tooltip.describe(panel.grid, cell, app.state));
  }

  leave(panel) {
    if (panel) panel.setHover(null);
    this.app.tooltip.hide();
    this.app.strip.setCursor(-1);
    this.app.viewbar.showReadout("");
  }

  // List the members of `group` under its row, or fold them again.
  toggleGroup(group) {
    const open = expandedGroups(this.app.state);
    const expand = open.includes(group) ? open.filter((g) => g !== group) : [...open, group];
    this.app.set({ expand: expand.length ? JSON.stringify(expand) : "" });
  }

  get zoomed() {
    const st = this.app.state;
    return !!(st.start || st.end || st.rows);
  }

  resetZoom() {
    if (this.zoomed) this.app.set({ start: "", end: "", rows: "" }, { refetch: !!(this.app.state.start || this.app.state.end) });
  }

  // ------------------------------------------------------------ zoom by dragging

  _dragStart(panel, e) {
    if (e.button !== 0) return;
    const at = panel.regionAt(e.offsetX, e.offsetY);
    if (!at) return;
    this.drag = { panel, at, x: e.offsetX, y: e.offsetY, dx: 0, dy: 0, clientX: e.clientX, clientY: e.clientY };
  }

  // The drag's zoom: {cols: [c0, c1] | null, rows: [r0, r1] | null} and its rectangle.
  _dragZoom(d) {
    const p = d.panel;
    const end = p.regionAt(d.x + d.dx, d.y + d.dy) || p.regionAt(d.x + d.dx, d.y) || d.at;
    const steps = d.at.region !== "labels" && Math.abs(d.dx) >= DRAG_PX;
    const rows = d.at.region === "labels" || (d.at.region === "cells" && Math.abs(d.dy) >= ROW_DRAG_PX);
    const span = (a, b) => [Math.floor(Math.min(a, b)), Math.floor(Math.max(a, b))];
    const cols = steps ? span(d.at.col, end.col) : null;
    const rowSpan = rows && Math.abs(d.dy) >= DRAG_PX ? span(d.at.row, end.row) : null;
    const c = cols ? p.cellRect(0, cols[0]).x : p.labelWidth;
    const c1 = cols ? p.cellRect(0, cols[1]).x + p.cellRect(0, cols[1]).w : p.labelWidth + p.cellsW;
    const r = rowSpan ? p.cellRect(rowSpan[0], 0).y : p.cellRect(0, 0).y;
    const r1 = rowSpan ? p.cellRect(rowSpan[1], 0).y + p.rowH : p.cellRect(0, 0).y + p.cellsH;
    return { cols, rows: rowSpan, rect: { x0: c, x1: c1, y0: r, y1: r1 } };
  }

  _dragMove(e) {
    const d = this.drag;
    if (!d) return;
    d.dx = e.clientX - d.clientX;
    d.dy = e.clientY - d.clientY;
    if (Math.abs(d.dx) < DRAG_PX && Math.abs(d.dy) < DRAG_PX) return;
    const zoom = this._dragZoom(d);
    d.panel.setDrag(zoom.cols || zoom.rows ? zoom.rect : null);
  }

  _dragEnd() {
    const d = this.drag;
    this.drag = null;
    if (!d) return;
    d.panel.setDrag(null);
    if (Math.abs(d.dx) < DRAG_PX && Math.abs(d.dy) < DRAG_PX) return; // a click
    d.panel.suppressClick = true;
    const { cols, rows } = this._dragZoom(d);
    this.zoomTo(d.panel.grid, cols, rows);
  }

  // Zoom to the columns `cols` ([first, last] of `grid`) and the rows `rows`
  // ([first, last] of those shown), either may be null.
  zoomTo(grid, cols, rows) {
    const changes = {};
    if (cols) Object.assign(changes, { start: String(grid.steps[cols[0]]), end: String(grid.stepEnds[cols[1]]) });
    if (rows) {
      const offset = this.app.rowOffset || 0;
      changes.rows = `${offset + rows[0]}-${offset + rows[1]}`;
    }
    if (Object.keys(changes).length) this.app.set(changes, { refetch: !!cols });
  }

  // ------------------------------------------------------------ pan

  _wheel(e) {
    const st = this.app.state;
    if (!(st.start || st.end) || !(e.shiftKey || Math.abs(e.deltaX) > Math.abs(e.deltaY))) return;
    e.preventDefault();
    const delta = e.shiftKey ? e.deltaY || e.deltaX : e.deltaX;
    this.pan.steps += Math.sign(delta);
    clearTimeout(this.pan.timer);
    this.pan.timer = setTimeout(() => this.panBy(this.pan.steps * PAN_FRACTION, () => (this.pan.steps = 0)), PAN_DELAY_MS);
  }

  // Move the zoomed step range by `fraction` of its width (within the run's steps).
  panBy(fraction, done) {
    if (done) done();
    const grid = this.app.grids[0];
    const entry = this.app.model.tags[this.app.state.run];
    if (!grid || !entry || !grid.cols) return;
    const lo = grid.steps[0];
    const hi = grid.stepEnds[grid.cols - 1];
    const width = hi - lo + 1;
    const shift = Math.round(fraction * width) || Math.sign(fraction);
    const start = Math.max(0, Math.min(lo + shift, entry.max_step - width + 1));
    this.app.set({ start: String(start), end: String(start + width - 1) });
  }

  // ------------------------------------------------------------ keyboard

  _startCell(panel) {
    const grid = panel.grid;
    if (!grid || !grid.rows || !grid.cols) return null;
    return { panel, row: Math.max(0, panel.selectedRow), col: panel.selectedCol >= 0 ? panel.selectedCol : grid.cols - 1 };
  }

  _moveCursor(panel, cell) {
    const grid = panel.grid;
    if (!cell || !grid || !grid.rows) return;
    const row = Math.max(0, Math.min(grid.rows - 1, cell.row));
    const col = Math.max(0, Math.min(grid.cols - 1, cell.col));
    this.cursor = { panel, row, col };
    const r = panel.cellRect(row, col);
    const box = panel.canvas.getBoundingClientRect();
    this.showCell(panel, { row, col }, box.left + r.x + r.w / 2, box.top + r.y + r.h / 2);
  }

  _key(panel, e) {
    const c = this.cursor && this.cursor.panel === panel ? this.cursor : this._startCell(panel);
    if (!c) return;
    const moves = {
      ArrowLeft: [0, -1],
      ArrowRight: [0, 1],
      ArrowUp: [-1, 0],
      ArrowDown: [1, 0],
      PageUp: [-10, 0],
      PageDown: [10, 0],
      Home: [0, -Infinity],
      End: [0, Infinity],
    };
    if (moves[e.key]) {
      e.preventDefault();
      const [dr, dc] = moves[e.key];
      const cols = panel.grid.cols;
      this._moveCursor(panel, { row: c.row + dr, col: Number.isFinite(dc) ? c.col + dc : dc > 0 ? cols - 1 : 0 });
    } else if (e.key === "Enter") {
      e.preventDefault();
      this.app.onCellClick(panel, { row: c.row, col: c.col });
    }
  }
}

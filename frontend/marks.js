// The findings' marks on a heatmap panel (heatmap.js calls these): a
// severity marker at the label of each row with a finding, a tick under the
// step axis at the onset of each error, and the selected finding's rows and
// step range outlined (and the scalar strip's hover guide).  Markers and ticks go on the cell canvas; the
// selected finding on the overlay, so choosing one never redraws the cells
// (and so is a zoom drag's rectangle, `drawDragRect`).
// Each marker has its own shape (the panel's list says it in words): the
// colour is never the only sign.

import { columnSpan } from "./findings.js";

export const MARKER_W = 12; // label room a marked row gives up

function colour(th, severity) {
  return th[severity] || th.muted;
}

// One marker centred at (x, y), `size` px: error a cross, warning a
// triangle, info a dot.
function drawMarker(ctx, severity, x, y, size, th) {
  const r = size / 2;
  ctx.fillStyle = ctx.strokeStyle = colour(th, severity);
  ctx.beginPath();
  if (severity === "error") {
    ctx.lineWidth = Math.max(1.5, size / 4);
    ctx.moveTo(x - r, y - r);
    ctx.lineTo(x + r, y + r);
    ctx.moveTo(x + r, y - r);
    ctx.lineTo(x - r, y + r);
    ctx.stroke();
    return;
  }
  if (severity === "warning") {
    ctx.moveTo(x, y - r);
    ctx.lineTo(x + r, y + r * 0.8);
    ctx.lineTo(x - r, y + r * 0.8);
    ctx.closePath();
  } else {
    ctx.arc(x, y, r * 0.8, 0, 2 * Math.PI);
  }
  ctx.fill();
}

// Markers at the left edge of the label column of `panel` (top `y0`, row
// height `rowH`) for the rows of `rows` (Map layer -> severity).  Returns
// `[{layer, row, severity}]`, what was drawn.
export function drawRowMarkers(ctx, panel, y0, rows, th) {
  const drawn = [];
  if (!rows || !rows.size) return drawn;
  const size = Math.max(2, Math.min(8, panel.rowH - 2));
  panel.grid.layers.forEach((layer, row) => {
    const severity = rows.get(layer);
    if (severity === undefined) return;
    drawMarker(ctx, severity, MARKER_W / 2, y0 + (row + 0.5) * panel.rowH, size, th);
    drawn.push({ layer, row, severity });
  });
  return drawn;
}

// Ticks (small upward triangles in the error colour, outlined in the
// background colour so they read over a label) under the axis at each of
// `steps`.  `box`: {x0, y, cellsW} as for drawStepAxis.  Returns `[{step, x}]`.
export function drawErrorTicks(ctx, grid, box, steps, th) {
  const drawn = [];
  if (!steps || !steps.length || !grid.cols) return drawn;
  const colW = box.cellsW / grid.cols;
  for (const step of steps) {
    const span = columnSpan(grid.steps, grid.stepEnds, step, step);
    if (!span) continue;
    const x = Math.round(box.x0 + (span[0] + 0.5) * colW) + 0.5;
    ctx.beginPath();
    ctx.moveTo(x, box.y);
    ctx.lineTo(x + 5, box.y + 6.5); // above the labels' ink (they start 6 px below the axis)
    ctx.lineTo(x - 5, box.y + 6.5);
    ctx.closePath();
    ctx.fillStyle = colour(th, "error");
    ctx.strokeStyle = th.bg;
    ctx.lineWidth = 1;
    ctx.fill();
    ctx.stroke();
    drawn.push({ step, x });
  }
  return drawn;
}

// The selected finding (`highlight` of findings.js's marksOf) on the
// overlay: its rows' label band tinted, its step range outlined on each of
// its rows (one box over every row for a whole-run finding) and a bar over
// that range along the top.  Returns `{rows, c0, c1}` or null.
export function drawHighlight(ctx, panel, highlight, th) {
  const grid = panel.grid;
  if (!highlight || !grid || !grid.rows || !grid.cols) return null;
  const span = columnSpan(grid.steps, grid.stepEnds, highlight.first, highlight.last);
  const wanted = new Set(highlight.layers);
  const rows = [];
  grid.layers.forEach((layer, row) => wanted.has(layer) && rows.push(row));
  const c = colour(th, highlight.severity);
  ctx.save();
  ctx.globalAlpha = 0.18;
  ctx.fillStyle = c;
  for (const row of rows) {
    const r = panel.cellRect(row, 0);
    ctx.fillRect(0, r.y, panel.labelWidth - 2, r.h);
  }
  ctx.restore();
  if (!span) return { rows, c0: -1, c1: -1 };
  const [c0, c1] = span;
  const boxes = highlight.whole && rows.length ? [[rows[0], rows[rows.length - 1]]] : rows.map((r) => [r, r]);
  for (const [top, bottom] of boxes) {
    const a = panel.cellRect(top, c0);
    const b = panel.cellRect(bottom, c1);
    const x = a.x - 1;
    const y = a.y - 1;
    const w = b.x + b.w - a.x + 2;
    const h = b.y + b.h - a.y + 2;
    ctx.lineWidth = 3;
    ctx.strokeStyle = th.bg;
    ctx.strokeRect(x - 1, y - 1, w + 2, h + 2);
    ctx.lineWidth = 2;
    ctx.strokeStyle = c;
    ctx.strokeRect(x, y, w, h);
  }
  const a = panel.cellRect(0, c0);
  const b = panel.cellRect(0, c1);
  ctx.fillStyle = c;
  ctx.fillRect(a.x, 0, Math.max(2, b.x + b.w - a.x), 3);
  return { rows, c0, c1 };
}

// A dashed vertical guide through the centre of column rectangle `r` (a
// `cellRect`) over the cells (`top`, `height`): where the scalar strip
// above is hovered.
export function drawGuide(ctx, r, top, height) {
  const x = Math.round(r.x + r.w / 2) + 0.5;
  ctx.save();
  ctx.strokeStyle = "rgba(128,128,128,0.8)";
  ctx.lineWidth = 1;
  ctx.setLineDash([3, 3]);
  ctx.beginPath();
  ctx.moveTo(x, top);
  ctx.lineTo(x, top + height);
  ctx.stroke();
  ctx.restore();
}

// A zoom drag's rectangle ({x0, x1, y0, y1}, CSS pixels) on the overlay.
export function drawDragRect(ctx, rect, th) {
  const { x0, x1, y0, y1 } = rect;
  ctx.fillStyle = "rgba(25,118,210,0.15)";
  ctx.fillRect(x0, y0, x1 - x0, y1 - y0);
  ctx.strokeStyle = th.select;
  ctx.lineWidth = 1;
  ctx.strokeRect(x0 + 0.5, y0 + 0.5, x1 - x0 - 1, y1 - y0 - 1);
}

// The heatmap's axes: the step (or wall-time) axis under the cells and the
// layer paths shortened to fit the label column (in full when hovered).

import { formatDuration } from "./format.js";
import { MARKER_W } from "./marks.js";
import { moduleLabels } from "./rows.js";

// A round step (1, 2 or 5 times a power of ten) giving about `count` steps over `span`.
export function niceStep(span, count) {
  const raw = span / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const m of [1, 2, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

// Round durations in seconds, for a wall-time axis.
const TIME_STEPS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400];

// Fractional column position of `x` in the increasing sequence `starts`
// (column j spans [starts[j], starts[j+1]); the last one to `lastEnd`).
export function columnPosition(starts, x, lastEnd) {
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

// The heatmap's horizontal axis under its cells: logged steps, or wall
// time since the first logged step (`xMode` "wall", when every column has
// one).  `box`: {x0, y, cellsW, width, fontPx} in CSS pixels.
export function drawStepAxis(ctx, grid, box, xMode, th) {
  const { x0, y: yAxis, cellsW, width, fontPx } = box;
  ctx.strokeStyle = th.muted;
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(x0, yAxis + 0.5);
  ctx.lineTo(x0 + cellsW, yAxis + 0.5);
  ctx.stroke();
  ctx.fillStyle = th.muted;
  ctx.font = `${fontPx}px ${th.font}`;
  ctx.textBaseline = "top";
  if (!grid || grid.cols === 0) return;
  const colW = cellsW / grid.cols;
  const wall = xMode === "wall" && grid.wallTimes.length === grid.cols;
  const starts = wall ? grid.wallTimes.map((t) => t - grid.wallTimes[0]) : grid.steps;
  const first = starts[0];
  const last = wall ? starts[starts.length - 1] : grid.stepEnds[grid.cols - 1];
  const maxTicks = Math.max(2, Math.floor(cellsW / 80));
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
    const x = x0 + Math.min(grid.cols, pos) * colW;
    const label = wall ? formatDuration(v) : String(v);
    const w = ctx.measureText(label).width;
    ctx.beginPath();
    ctx.moveTo(Math.round(x) + 0.5, yAxis);
    ctx.lineTo(Math.round(x) + 0.5, yAxis + 4);
    ctx.stroke();
    if (x - w / 2 > lastRight + 6 && x + w / 2 <= width) {
      ctx.fillText(label, x, yAxis + 6);
      lastRight = x + w / 2;
    }
  }
  ctx.textAlign = "right";
  ctx.fillText(wall ? "wall time since first logged step" : "step", x0 + cellsW, yAxis + 21);
}

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

// The full `path` of a hovered row over the label column, when its label
// is shortened (or not every row is labelled: `at.always`), on a
// background box.  `at`: {x0 (the label column's right end), y (the row's
// centre), width (the panel's)}; the font is set by the caller.
export function drawFullPath(ctx, path, at, th) {
  const { x0, y, width } = at;
  const w = ctx.measureText(path).width;
  if (w <= x0 - 10 && !at.always) return;
  ctx.fillStyle = th.bg;
  const boxW = Math.min(w + 8, width);
  ctx.fillRect(Math.max(0, x0 - 4 - boxW), y - 8, boxW + 2, 16);
  ctx.fillStyle = th.text;
  ctx.textBaseline = "middle";
  ctx.textAlign = w + 8 > x0 ? "left" : "right";
  ctx.fillText(path, w + 8 > x0 ? 2 : x0 - 6, y);
}

// A group row's label: "▸ block3/* (12)", "▾ ..." when its members are listed below it.
function rowLabel(grid, i) {
  const n = grid.rowMembers[i];
  if (!n) return grid.layers[i];
  const open = i + 1 < grid.rows && grid.rowMembers[i + 1] === 0 && grid.rowGroups[i + 1] === grid.rowGroups[i];
  return `${open ? "\u25be" : "\u25b8"} ${grid.layers[i]} (${n})`;
}

// The row labels right-aligned in the label column, shortened to fit: every
// row's when there is room, else the first row of each module (rows.js
// moduleLabels), else every `every`-th.  `box`: {x0, y0, rowH, labelWidth,
// fontPx}; `marks`: the findings' (a marked row leaves room for its marker).
// Returns {every, modules (module labels used), rows (labelled row indices)}.
export function drawRowLabels(ctx, grid, box, marks, th) {
  const { x0, y0, rowH, labelWidth, fontPx } = box;
  ctx.font = `${fontPx}px ${th.font}`;
  ctx.textBaseline = "middle";
  ctx.textAlign = "right";
  ctx.fillStyle = th.text;
  const every = Math.max(1, Math.ceil((fontPx + 2) / rowH));
  const marked = marks ? marks.rows : new Map();
  const label = (i) => rowLabel(grid, i);
  const { modules, items } =
    every > 1 ? moduleLabels(grid.layers, grid.rowMembers, every, label, grid.rowGroups) : { modules: false, items: grid.layers.map((_, i) => ({ row: i, text: label(i) })) };
  for (const { row, text, top } of items) {
    const room = labelWidth - 10 - (marked.has(grid.layers[row]) ? MARKER_W : 0);
    ctx.fillText(shortenPath(ctx, text, room), x0 - 6, y0 + (top ? row * rowH + fontPx / 2 : (row + 0.5) * rowH));
  }
  return { every, modules, rows: items.map((x) => x.row) };
}

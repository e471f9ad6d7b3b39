// The tooltip over a heatmap cell: the layer, its shape, the column's steps,
// the exact value, and the layer's other statistics in that column, which
// the model fetches once the pointer has rested on the cell for
// REQUEST_DELAY_MS (a sweep across the heatmap asks for nothing; a
// placeholder shows until the answer is in).

import { h } from "./dom.js";
import { describeKind, formatDuration, formatExact, formatValue } from "./format.js";

const REQUEST_DELAY_MS = 80;

export class Tooltip {
  // `selection()`: {run, metric, stat} of the heatmap shown.
  constructor(container, model, selection) {
    this.model = model;
    this.selection = selection;
    this.root = h("div", { class: "ss-tooltip", hidden: true, role: "tooltip" });
    container.append(this.root);
    this.info = null; // {panel, row, col, layer} while shown
    this.args = null;
    this.frame = 0;
    this.timer = 0;
  }

  // From a mousemove: at most one update per animation frame.
  hoverAt(panel, cell, event) {
    this.args = [panel, cell, event.clientX, event.clientY];
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.update(...this.args);
    });
  }

  // Fill and place the tooltip for `cell` of `panel` (synchronous).
  update(panel, cell, clientX, clientY) {
    clearTimeout(this.timer);
    const grid = panel.grid;
    if (!grid || !cell) return this.hide();
    const sel = this.selection();
    const layer = grid.layers[cell.row];
    const runOfPanel = grid.info.ratioOf ? sel.run : grid.info.run;
    const layerInfo = this.model.layerInfo(runOfPanel, layer);
    const lines = [h("div", { class: "ss-tip-layer", text: layer })];
    if (layerInfo) {
      lines.push(
        h("div", { class: "ss-tip-meta", text: `shape [${(layerInfo.shape || []).join(", ")}] \u00b7 ${layerInfo.dtype || ""}` })
      );
    }
    if (cell.col >= 0) lines.push(...this._cellLines(grid, cell, layer, sel));
    else lines.push(h("div", { class: "ss-tip-meta", text: "click to open this layer" }));
    this.root.replaceChildren(...lines);
    this.root.hidden = false;
    const pad = 14;
    const w = this.root.offsetWidth;
    const hgt = this.root.offsetHeight;
    let x = clientX + pad;
    let y = clientY + pad;
    if (x + w > window.innerWidth - 4) x = Math.max(4, clientX - pad - w);
    if (y + hgt > window.innerHeight - 4) y = Math.max(4, clientY - pad - hgt);
    this.root.style.transform = `translate(${Math.round(x)}px, ${Math.round(y)}px)`;
    this.info = { panel: panel.index, row: cell.row, col: cell.col, layer };
  }

  hide() {
    clearTimeout(this.timer);
    this.root.hidden = true;
    this.info = null;
  }

  // One line for the readout over the heatmap: the row's full path (or
  // group), the column's steps and the value shown.
  describe(grid, cell, sel) {
    if (!grid || !cell) return "";
    const parts = [grid.layers[cell.row]];
    if (grid.rowMembers[cell.row] > 0) parts[0] += ` (group of ${grid.rowMembers[cell.row]} variables)`;
    if (cell.col >= 0) {
      const first = grid.steps[cell.col];
      const last = grid.stepEnds[cell.col];
      parts.push(first === last ? `step ${first}` : `steps ${first}\u2013${last}`);
      const v = grid.value(cell.row, cell.col);
      const label = grid.info.ratioOf ? "ratio" : this.model.catalog.statLabel(sel.stat);
      parts.push(`${label} ${typeof v === "number" ? formatValue(v, 4) : describeKind(v)}`);
    }
    return parts.join(" \u00b7 ");
  }

  // Fetch the cell's statistics unless the pointer moves on first; show
  // them if it is still over that layer when they arrive.
  _requestSoon(query) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => {
      this.model.loadCell(query).then(() => {
        if (this.info && this.info.layer === query.layer && this.args) this.update(...this.args);
      });
    }, REQUEST_DELAY_MS);
  }

  _cellLines(grid, cell, layer, sel) {
    const j = cell.col;
    const first = grid.steps[j];
    const last = grid.stepEnds[j];
    let where = first === last ? `step ${first}` : `steps ${first}\u2013${last} (${grid.info.pooling || "pooled"})`;
    if (grid.wallTimes.length > j) where += ` \u00b7 +${formatDuration(grid.wallTimes[j] - grid.wallTimes[0])}`;
    const lines = [h("div", { class: "ss-tip-meta", text: where })];
    const v = grid.value(cell.row, j);
    if (grid.info.ratioOf) {
      const [va, vb] = grid.parts[cell.row * grid.cols + j];
      lines.push(h("div", { class: "ss-tip-value", text: `ratio ${formatValue(describeKind(v), 4)}` }));
      lines.push(h("div", { class: "ss-tip-meta", text: `${grid.info.ratioOf[0]}: ${formatValue(describeKind(va), 4)}` }));
      lines.push(h("div", { class: "ss-tip-meta", text: `${grid.info.ratioOf[1]}: ${formatValue(describeKind(vb), 4)}` }));
      return lines;
    }
    lines.push(
      h(
        "div",
        { class: "ss-tip-value" },
        h("span", { class: "ss-tip-stat", text: this.model.catalog.statLabel(sel.stat) + " " }),
        h("span", { id: "ss-tip-number", text: typeof v === "number" ? formatExact(v) : describeKind(v) })
      )
    );
    if (grid.rowMembers[cell.row] > 0) {
      lines.push(h("div", { class: "ss-tip-meta", text: `${grid.info.pooling || "mean"} over ${grid.rowMembers[cell.row]} variables · click to list them` }));
      return lines;
    }
    const others = this._otherStats(grid.info, layer, first, last, sel);
    if (others) lines.push(others);
    return lines;
  }

  // The layer's other statistics in the column, or a placeholder.
  _otherStats({ run, maxSteps, range }, layer, first, last, sel) {
    // max_steps (and the zoomed range): the server serves a heatmap column from its pooled matrices.
    const query = { run, layer, metric: sel.metric, first, last, max_steps: maxSteps, ...range };
    const cell = this.model.cachedCell(query);
    if (!cell) this._requestSoon(query);
    if (!cell || cell.loading) return h("div", { class: "ss-tip-meta", text: "other statistics: loading\u2026" });
    if (cell.error) return h("div", { class: "ss-tip-meta", text: "other statistics unavailable" });
    const { table, row } = cell;
    if (table.stats.length <= 1) return null;
    const box = h("div", { class: "ss-tip-stats" });
    for (const name of this.model.catalog.ordered(table.stats)) {
      const v = table.get(row, name);
      const text = formatValue(typeof v === "number" ? v : describeKind(v === null ? "missing" : v), 4);
      const current = name === sel.stat ? " ss-current" : "";
      box.append(h("span", { class: "ss-k" + current, text: name }), h("span", { class: "ss-v" + current, text }));
    }
    return box;
  }
}

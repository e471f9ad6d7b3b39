// The scalar strip above the heatmap: one of the run's ordinary TensorBoard
// scalars (the `scalars` route: the loss, the learning rate...) drawn on
// the heatmap's own step axis, so a jump in the step sizes can be read
// against the loss.  Hovering a heatmap cell puts a cursor on the strip at
// that column with the scalar's value there; hovering the strip does the
// same and draws a guide through that column of the heatmap.  The tag (default `stepsize/loss`, else the first) and a
// log scale are chosen in its header and kept in the URL.  A run without
// scalars shows no strip.

import { columnPosition } from "./axis.js";
import { setupCanvas, theme } from "./canvas.js";
import { h, setOptions } from "./dom.js";
import { formatValue } from "./format.js";

const STRIP_H = 60;
const PAD = 6;
export const DEFAULT_TAG = "stepsize/loss";

// Index of the last of the increasing `steps` that is <= `step` (-1 if none).
function lastAtOrBefore(steps, step) {
  let lo = 0;
  let hi = steps.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (steps[mid] <= step) lo = mid + 1;
    else hi = mid;
  }
  return lo - 1;
}

export class ScalarStrip {
  // `app`: the controller (state, model, set); placed above `card`'s panels.
  constructor(app, card) {
    this.app = app;
    this.run = null;
    this.series = null; // {tag: {steps, values}} of `run`
    this.panel = null; // the heatmap panel it is aligned with
    this.tag = h("select", { id: "ss-scalar", onchange: () => this._choose({ scalar: this.tag.value }) });
    this.log = h("input", {
      type: "checkbox",
      id: "ss-scalar-log",
      onchange: () => this._choose({ scalar_scale: this.log.checked ? "log" : "linear" }),
    });
    this.readout = h("span", { class: "ss-strip-value", "aria-live": "polite" });
    this.canvas = h("canvas", { class: "ss-strip-line", role: "img" });
    this.overlay = h("canvas", { class: "ss-strip-overlay" });
    this.root = h(
      "div",
      { class: "ss-strip", hidden: true },
      h(
        "div",
        { class: "ss-strip-head" },
        h("label", { for: "ss-scalar", text: "Scalar" }),
        this.tag,
        h("label", { class: "ss-strip-log" }, this.log, " log scale"),
        this.readout
      ),
      h("div", { class: "ss-strip-stage" }, this.canvas, this.overlay)
    );
    card.panelBox.before(this.root);
    this.overlay.addEventListener("mousemove", (e) => this._hover(e.offsetX));
    this.overlay.addEventListener("mouseleave", () => {
      this.setCursor(-1);
      if (this.panel) this.panel.setGuide(-1);
    });
  }

  // Ask for the scalars of `run` (null: none) and draw them when they arrive.
  async show(run) {
    if (run !== this.run) {
      this.run = run;
      this.series = null;
      this.root.hidden = true;
    }
    if (!run) return;
    let series;
    try {
      series = await this.app.model.scalars(run);
    } catch (e) {
      series = {}; // no strip: the heatmap does not depend on it
    }
    if (run !== this.run || series === this.series) return;
    this.series = series;
    this.draw(this.panel);
  }

  // The tag shown: the chosen one if the run has it, else stepsize/loss, else the first.
  tagName() {
    const tags = Object.keys(this.series || {});
    const wanted = this.app.state.scalar;
    if (tags.includes(wanted)) return wanted;
    return tags.includes(DEFAULT_TAG) ? DEFAULT_TAG : tags[0] || null;
  }

  // Draw the chosen scalar aligned with heatmap panel `panel` (its grid's columns).
  draw(panel) {
    this.panel = panel;
    const tag = this.tagName();
    const grid = panel && panel.grid;
    this.root.hidden = !tag || !grid || !grid.cols || panel.grid.info.run !== this.run;
    this.geometry = null;
    if (this.root.hidden) return;
    const tags = Object.keys(this.series);
    setOptions(this.tag, tags.map((t) => [t, t]), tag);
    this.tag.disabled = tags.length <= 1;
    const th = theme(this.root);
    const ctx = setupCanvas(this.canvas, panel.width, STRIP_H);
    setupCanvas(this.overlay, panel.width, STRIP_H);
    const { steps, values } = this.series[tag];
    const x0 = panel.labelWidth;
    const colW = panel.cellsW / grid.cols;
    const lastEnd = grid.stepEnds[grid.cols - 1];
    const centred = grid.steps.every((s, j) => s === grid.stepEnds[j]) ? 0.5 : 0;
    const xOf = (step) => x0 + (columnPosition(grid.steps, step, lastEnd) + centred) * colW;
    const shown = [];
    for (let i = 0; i < steps.length; i++) if (steps[i] >= grid.steps[0] && steps[i] <= lastEnd) shown.push(i);
    const finite = shown.filter((i) => Number.isFinite(values[i]));
    const log = this.app.state.scalar_scale === "log" && finite.length > 0 && finite.every((i) => values[i] > 0);
    this.log.checked = this.app.state.scalar_scale === "log";
    const f = log ? Math.log10 : (v) => v;
    let lo = Math.min(...finite.map((i) => f(values[i])));
    let hi = Math.max(...finite.map((i) => f(values[i])));
    if (!(hi > lo)) [lo, hi] = [lo - 1, hi + 1];
    const yOf = (v) => STRIP_H - PAD - ((f(v) - lo) / (hi - lo)) * (STRIP_H - 2 * PAD);
    // Frame, range labels in the label column, the line, and the non-finite points.
    ctx.strokeStyle = th.grid;
    ctx.lineWidth = 1;
    ctx.strokeRect(x0 + 0.5, 0.5, panel.cellsW - 1, STRIP_H - 1);
    ctx.fillStyle = th.muted;
    ctx.font = `10px ${th.font}`;
    ctx.textAlign = "right";
    ctx.textBaseline = "top";
    const label = (v) => formatValue(log ? 10 ** v : v, 3);
    if (finite.length) {
      ctx.fillText(label(hi), x0 - 6, 2);
      ctx.textBaseline = "bottom";
      ctx.fillText(label(lo), x0 - 6, STRIP_H - 2);
    }
    ctx.strokeStyle = th.accent;
    ctx.lineWidth = 1.5;
    ctx.beginPath();
    let pen = false;
    for (const i of shown) {
      if (!Number.isFinite(values[i])) {
        pen = false;
        continue;
      }
      const x = xOf(steps[i]);
      if (pen) ctx.lineTo(x, yOf(values[i]));
      else ctx.moveTo(x, yOf(values[i]));
      pen = true;
    }
    ctx.stroke();
    ctx.fillStyle = th.error;
    const bad = shown.filter((i) => !Number.isFinite(values[i]));
    for (const i of bad) ctx.fillRect(Math.round(xOf(steps[i])) - 1, 1, 3, STRIP_H - 2);
    this.geometry = { tag, log, points: shown.length, nonfinite: bad.map((i) => steps[i]), xOf, yOf };
    this.canvas.setAttribute("aria-label", `${tag}${log ? " (log scale)" : ""}, ${shown.length} points`);
    this.readout.textContent = "";
  }

  // A cursor at the heatmap column `col` of `panel` (-1: none), with the
  // scalar's last value in that column (or before it).
  cursorAtColumn(panel, col) {
    if (!this.geometry || panel !== this.panel || col < 0) return this.setCursor(-1);
    const { steps } = this.series[this.geometry.tag];
    this.setCursor(lastAtOrBefore(steps, panel.grid.stepEnds[col]));
  }

  // Mark point `i` of the shown series (-1: clear) and say its value.
  setCursor(i) {
    if (!this.geometry) return;
    const ctx = setupCanvas(this.overlay, this.panel.width, STRIP_H);
    this.cursor = i;
    if (i < 0) {
      this.readout.textContent = "";
      return;
    }
    const { steps, values } = this.series[this.geometry.tag];
    const th = theme(this.root);
    const x = Math.round(this.geometry.xOf(steps[i])) + 0.5;
    ctx.strokeStyle = th.muted;
    ctx.lineWidth = 1;
    ctx.beginPath();
    ctx.moveTo(x, 0);
    ctx.lineTo(x, STRIP_H);
    ctx.stroke();
    if (Number.isFinite(values[i])) {
      ctx.fillStyle = th.accent;
      ctx.beginPath();
      ctx.arc(x, this.geometry.yOf(values[i]), 3, 0, 2 * Math.PI);
      ctx.fill();
    }
    const v = values[i];
    const text = Number.isFinite(v) ? formatValue(v, 4) : Number.isNaN(v) ? "NaN" : v > 0 ? "+Inf" : "\u2212Inf";
    this.readout.textContent = `${this.geometry.tag} at step ${steps[i]}: ${text}`;
  }

  _hover(x) {
    const grid = this.panel && this.panel.grid;
    if (!this.geometry || !grid) return;
    const col = Math.min(grid.cols - 1, Math.floor(((x - this.panel.labelWidth) * grid.cols) / this.panel.cellsW));
    this.cursorAtColumn(this.panel, col);
    this.panel.setGuide(col); // the same column on the heatmap
  }

  _choose(changes) {
    this.app.set(changes, { refetch: false, redraw: false });
    this.draw(this.panel);
  }
}

// The bar over the heatmap for big models: group rows by module (a path
// depth), keep one kind of variable, sort rows, the zoom and its reset --
// and the readout line, where the hovered (or keyboard) cell's full layer
// path and value are always readable, however thin the rows.

import { h, setOptions } from "./dom.js";

const KIND_LABELS = [
  ["", "all variables"],
  ["kernel", "kernels"],
  ["bias", "biases"],
  ["norm", "norm scale / shift (gamma, beta, scale)"],
  ["embedding", "embeddings"],
  ["other", "other"],
];
const SORT_LABELS = [
  ["model", "model order"],
  ["value", "value at the selected step"],
  ["mean", "mean over the visible steps"],
  ["name", "name"],
];
export const READOUT_HINT =
  "Hover a cell, or Tab to the heatmap and use the arrow keys; drag across it to zoom, double-click to reset.";

// `[depth, label]` choices for grouping `layers`: one per path depth that
// leaves at least one group, labelled with an example group.
export function groupChoices(layers) {
  const out = [["", "no grouping"]];
  const deepest = Math.max(0, ...layers.map((p) => p.split("/").length - 1));
  for (let d = 1; d <= Math.min(deepest, 32); d++) {
    const names = new Set(layers.filter((p) => p.split("/").length > d).map((p) => p.split("/").slice(0, d).join("/")));
    const example = names.values().next().value;
    out.push([String(d), `depth ${d}: ${names.size} modules (${example}/*)`]);
  }
  return out;
}

export class ViewBar {
  constructor(app) {
    this.app = app;
    const select = (id, label, onchange) => {
      const s = h("select", { id, onchange: () => onchange(s.value) });
      return [s, h("label", { class: "ss-viewbar-field", for: id }, h("span", { text: label }), s)];
    };
    let groupField, kindField, sortField;
    [this.group, groupField] = select("ss-group", "Group rows", (v) => app.set({ group: v, expand: "", rows: "" }));
    [this.kind, kindField] = select("ss-kind", "Variables", (v) => app.set({ kind: v, rows: "" }));
    [this.sort, sortField] = select("ss-sort", "Sort", (v) => app.set({ sort: v, rows: "" }, { refetch: false }));
    setOptions(this.kind, KIND_LABELS, "");
    setOptions(this.sort, SORT_LABELS, "model");
    this.zoomText = h("span", { class: "ss-zoom-text", id: "ss-zoom-text" });
    this.reset = h("button", {
      type: "button",
      class: "ss-button",
      id: "ss-zoom-reset",
      text: "Reset zoom",
      title: "Show every step and row again (or double-click the heatmap)",
      onclick: () => app.navigator.resetZoom(),
    });
    this.readout = h("div", { class: "ss-readout-line", id: "ss-hover-readout", "aria-live": "polite", text: READOUT_HINT });
    this.root = h(
      "div",
      { class: "ss-viewbar" },
      h("div", { class: "ss-viewbar-row" }, groupField, kindField, sortField, h("span", { class: "ss-zoom" }, this.zoomText, this.reset)),
      this.readout
    );
    this.layersKey = null;
  }

  // Show `state` for the run's `layers`.
  sync(st, layers) {
    const key = layers.join("\n");
    if (key !== this.layersKey) {
      this.layersKey = key;
      setOptions(this.group, groupChoices(layers), st.group);
    }
    this.group.value = st.group;
    this.kind.value = st.kind;
    this.sort.value = st.sort;
  }

  // The zoom shown: `grid` (the first run's, as fetched), `shown` rows of
  // `total` from row `offset`, the run's `entry` (tags).
  showZoom(st, grid, { offset, shown, total }, entry) {
    const parts = [];
    if ((st.start || st.end) && grid && grid.cols) {
      parts.push(`steps ${grid.steps[0]}\u2013${grid.stepEnds[grid.cols - 1]} of ${entry.max_step} (shift+wheel pans)`);
    }
    if (st.rows) parts.push(`rows ${offset + 1}\u2013${offset + shown} of ${total}`);
    this.zoomText.textContent = parts.length ? "Zoomed: " + parts.join(", ") : "";
    this.reset.hidden = !parts.length;
  }

  // The readout line: `text` (a hovered cell), or the hint.
  showReadout(text) {
    this.readout.textContent = text || READOUT_HINT;
  }
}

// The sidebar: run, metric (with its help text), statistic, layer filter,
// horizontal axis, colour map and range, comparison.  It shows a selection
// (`sync`) and reports the user's changes to its `app` (`set(changes,
// options)`); a metric or statistic chosen here also updates the app's
// `preferredStat` (the quantile chosen last).

import { SEQUENTIAL } from "./colormaps.js";
import { h, setOptions } from "./dom.js";
import { formatValue } from "./format.js";
import { pickStat } from "./state.js";

const field = (label, control, forId) => h("label", { class: "ss-field", for: forId }, h("span", { text: label }), control);
const group = (title, ...children) =>
  h("div", { class: "ss-group" }, h("div", { class: "ss-group-title", text: title }), ...children);
const radios = (...labels) => h("div", { class: "ss-radios" }, ...labels.map(([input, text]) => h("label", {}, input, text)));

export class Controls {
  constructor(app) {
    this.app = app;
    this.timer = 0;
    const view = { refetch: false };
    const radio = (name, value, onchange) => h("input", { type: "radio", name, value, onchange });
    this.run = h("select", { id: "ss-run", onchange: () => app.set({ run: this.run.value, layer: "", step: "", finding: "", start: "", end: "", rows: "", expand: "" }) });
    this.metrics = h("div", { class: "ss-metrics", role: "radiogroup", "aria-label": "Metric" });
    this.stat = h("select", { id: "ss-stat", onchange: () => this.chooseStat(this.stat.value) });
    this.filter = h("input", {
      id: "ss-filter",
      type: "search",
      placeholder: "substring or /regex/",
      spellcheck: "false",
      autocomplete: "off",
      oninput: () => {
        clearTimeout(this.timer);
        this.timer = setTimeout(() => app.set({ filter: this.filter.value }, view), 150);
      },
    });
    this.filterNote = h("div", { class: "ss-note", id: "ss-filter-note" });
    this.xStep = radio("ss-x", "step", () => app.set({ x: "step" }, view));
    this.xWall = radio("ss-x", "wall", () => app.set({ x: "wall" }, view));
    this.cmap = h("select", { id: "ss-cmap", onchange: () => app.set({ cmap: this.cmap.value }, view) });
    setOptions(this.cmap, SEQUENTIAL.map((n) => [n, n]), "viridis");
    this.rangeAuto = radio("ss-range", "auto", () => app.set({ range: "auto" }, view));
    this.rangeFixed = radio("ss-range", "fixed", () => this.fixRange());
    const rangeInput = (key) =>
      h("input", {
        id: "ss-range-" + key,
        type: "text",
        inputmode: "decimal",
        size: "8",
        onchange: (e) => app.set({ [key]: e.target.value.trim(), range: "fixed" }, view),
      });
    this.lo = rangeInput("lo");
    this.hi = rangeInput("hi");
    this.rangeNote = h("div", { class: "ss-note" });
    this.compare = h("select", { id: "ss-compare", onchange: () => app.set({ compare: this.compare.value }) });
    const modes = [["off", "off"], ["side", "side by side (one colour scale)"], ["ratio", "ratio run / other run"]];
    setOptions(this.compare, modes, "off");
    this.run2 = h("select", { id: "ss-run2", onchange: () => app.set({ run2: this.run2.value }) });
    this.run2Row = h("label", { class: "ss-field" }, h("span", { text: "Other run" }), this.run2);
    this.root = h(
      "aside",
      { class: "ss-sidebar" },
      group("Run", this.run),
      group("Metric", this.metrics, field("Statistic over elements", this.stat, "ss-stat")),
      group("Layers", field("Filter", this.filter, "ss-filter"), this.filterNote),
      group("Horizontal axis", radios([this.xStep, " step"], [this.xWall, " relative wall time"])),
      group(
        "Colour",
        field("Colour map", this.cmap, "ss-cmap"),
        radios([this.rangeAuto, " auto range"], [this.rangeFixed, " fixed range"]),
        h("div", { class: "ss-range" }, this.lo, h("span", { text: "to" }), this.hi),
        this.rangeNote
      ),
      group("Compare", field("Mode", this.compare, "ss-compare"), this.run2Row)
    );
  }

  chooseStat(stat) {
    const app = this.app;
    if (app.model.catalog.isQuantile(stat)) app.preferredStat = stat;
    app.set({ stat });
  }

  // A metric switch keeps the statistic if the metric has it, else the
  // quantile chosen last.
  chooseMetric(metric) {
    const app = this.app;
    if (app.model.catalog.isQuantile(app.state.stat)) app.preferredStat = app.state.stat;
    const stats = app.model.tags[app.state.run]?.stats[metric] || [];
    app.set({ metric, stat: pickStat(stats, app.state.stat, app.preferredStat) });
  }

  // Switch to a fixed range, starting from the range shown (`app.scale`).
  fixRange() {
    const { scale: sc, state } = this.app;
    const lo = state.lo || (sc ? formatValue(sc.lo, 3) : "1e-6");
    const hi = state.hi || (sc ? formatValue(sc.hi, 3) : "1");
    this.app.set({ range: "fixed", lo, hi }, { refetch: false });
  }

  // Show `state` in the controls (a field being typed in is left alone).
  sync(st) {
    if (this.filter.value !== st.filter && document.activeElement !== this.filter) this.filter.value = st.filter;
    this.xStep.checked = st.x !== "wall";
    this.xWall.checked = st.x === "wall";
    this.cmap.value = SEQUENTIAL.includes(st.cmap) ? st.cmap : "viridis";
    this.rangeAuto.checked = st.range !== "fixed";
    this.rangeFixed.checked = st.range === "fixed";
    if (document.activeElement !== this.lo) this.lo.value = st.lo;
    if (document.activeElement !== this.hi) this.hi.value = st.hi;
    this.lo.disabled = this.hi.disabled = st.compare === "ratio";
    this.compare.value = st.compare;
    this.run2Row.hidden = st.compare === "off";
    for (const input of this.metrics.querySelectorAll("input")) input.checked = input.value === st.metric;
  }

  // The runs to choose from (the other run: any but the first choice).
  setRuns(runs, run, run2) {
    setOptions(this.run, runs.map((r) => [r, r]), run);
    setOptions(this.run2, runs.filter((r) => r !== run).map((r) => [r, r]), run2);
  }

  // The run's statistics, `[name, label]` in order.
  setStats(items, stat) {
    setOptions(this.stat, items, stat);
    this.stat.disabled = items.length <= 1;
  }

  // One radio button per metric of the run, each with its help text
  // (`catalog.metric(name)`) behind a "?" toggle.  Rebuilt only when the
  // list changes, so an open help text stays open.
  setMetrics(metrics, catalog) {
    const key = metrics.join(",");
    if (this.metricKey === key) return;
    this.metricKey = key;
    const rows = metrics.map((m) => {
      const info = catalog.metric(m);
      const input = h("input", { type: "radio", name: "ss-metric", value: m, onchange: () => this.chooseMetric(m) });
      const help = h("p", { class: "ss-help", hidden: true, id: "ss-help-" + m, text: info.help });
      const toggle = h("button", {
        type: "button",
        class: "ss-help-toggle",
        text: "?",
        title: `What is ${info.label}?`,
        "aria-label": `What is ${info.label}?`,
        "aria-expanded": "false",
        "data-metric": m,
        onclick: () => {
          help.hidden = !help.hidden;
          toggle.setAttribute("aria-expanded", String(!help.hidden));
        },
      });
      return h(
        "div",
        { class: "ss-metric" },
        h("div", { class: "ss-metric-row" }, h("label", {}, input, " " + info.label), toggle),
        help
      );
    });
    this.metrics.replaceChildren(...rows);
  }

  // How many layers the filter keeps, or why it is invalid.
  // `variables`: how many the run has when rows are not one per layer (grouped or a kind kept).
  showFilter({ error, shown, total, text, variables }) {
    this.filter.classList.toggle("ss-invalid", !!error);
    const unit = variables ? "rows" : "layers";
    const of = variables ? ` (of ${variables} variables)` : "";
    this.filterNote.textContent = error
      ? `Invalid regular expression: ${error}`
      : text
        ? `${shown} of ${total} ${unit}${of}`
        : `${total} ${unit}${of}`;
  }

  showRangeNote(text) {
    this.rangeNote.textContent = text;
  }
}

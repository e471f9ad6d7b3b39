// The Step Sizes dashboard.  TensorBoard loads this module in the plugin's
// iframe (`data/plugin_entry.html?name=stepsize`, base `plugin/stepsize/`)
// and calls `render()`.
//
// Every run or layer name reaches the page through textContent, a form
// control's value or canvas text -- never as HTML.

import {
  ApiError,
  HostChannel,
  fetchHeatmap,
  fetchHistogram,
  fetchLayer,
  fetchTags,
  hostLink,
  watchHostTheme,
} from "./api.js";
import { LogScale, SEQUENTIAL, LUT_SIZE, formatValue, lut } from "./colormaps.js";
import { DrillDown } from "./drilldown.js";
import { Grid, HeatmapPanel, drawLegend, formatDuration, setupCanvas, theme } from "./heatmap.js";

const PLUGIN = "stepsize";
const RELOAD_FALLBACK_MS = 30000;

const METRICS = {
  step: {
    label: "step",
    unit: "|\u0394w| per element, weight units",
    help:
      "The change the optimizer actually applied to each weight element, |w\u209c \u2212 w\u209c\u208b\u2081|, " +
      "measured after the update was rounded into the weight's dtype. The statistic is taken over the " +
      "layer's elements. Look for layers far faster or slower than their neighbours, the end of " +
      "warm-up, and steps that collapse to zero or explode.",
  },
  effective_lr: {
    label: "effective_lr",
    unit: "learning rate per element",
    help:
      "Adam family only: the learning rate each parameter effectively gets, lr\u209c / (\u221av\u0302 + \u03b5), " +
      "the factor that turns the first moment into a step. Warm-up shows as a ramp; a layer whose " +
      "effective rate is orders of magnitude above the others has a tiny second moment (near-zero " +
      "gradients) and is one large gradient away from a huge step.",
  },
  intended_step: {
    label: "intended_step",
    unit: "|update| per element, weight units",
    help:
      "The magnitude of the update the optimizer computed, before it was added to the weight and rounded " +
      "to the weight's dtype. In float32 it matches step; with bfloat16 or float16 weights an intended " +
      "step far larger than the applied step means updates are being rounded away.",
  },
  update_ratio: {
    label: "update_ratio",
    unit: "rms \u0394w / rms w, unitless",
    reference: { value: 1e-3, label: "healthy \u2248 1e-3" },
    help:
      "Per layer: rms(\u0394w) / rms(w), how large the applied step is relative to the weights. A common rule " +
      "of thumb puts healthy training near 1e-3 (the marker on the legend): far below, the layer barely " +
      "learns; far above (\u2273 1e-2), its weights are being overwritten every few steps.",
  },
  lost_fraction: {
    label: "lost_fraction",
    unit: "fraction of elements",
    help:
      "Per layer: the share of elements whose intended update was non-zero but whose weight did not " +
      "change, because the update was smaller than half a unit in the last place of the weight " +
      "(bfloat16 / float16 weights). Healthy is 0 (shown as the 'exactly 0' colour); large values mean " +
      "low-precision weights silently stop learning.",
  },
  second_moment_rms: {
    label: "second_moment_rms",
    unit: "rms g / \u221av\u0302, unitless",
    reference: { value: 1, label: "1: v tracks g" },
    help:
      "Adam family only: rms of g\u209c / \u221av\u0302\u209c over the layer. Near 1 the second-moment estimate " +
      "keeps up with the gradient. Values \u226b 1 mean v lags a sudden rise of the gradient, so steps " +
      "are oversized; this often precedes loss spikes.",
  },
};

const STAT_LABELS = {
  min: "min",
  p01: "p01",
  p05: "p05",
  p25: "p25",
  p50: "median (p50)",
  p75: "p75",
  p95: "p95",
  p99: "p99",
  max: "max",
  mean: "mean",
  rms: "rms",
  zero_fraction: "zero fraction",
  nonfinite: "non-finite count",
  value: "value",
};
const QUANTILE_STATS = ["min", "p01", "p05", "p25", "p50", "p75", "p95", "p99", "max", "mean", "rms"];

const DEFAULTS = {
  run: "",
  metric: "step",
  stat: "p50",
  filter: "",
  x: "step",
  cmap: "viridis",
  range: "auto",
  lo: "",
  hi: "",
  compare: "off",
  run2: "",
  layer: "",
  step: "",
};

// ------------------------------------------------------------------ DOM

function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function setOptions(select, items, value) {
  select.replaceChildren(...items.map(([v, label]) => h("option", { value: v, text: label })));
  if (items.some(([v]) => v === value)) select.value = value;
}

function safeFilename(text) {
  return text.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 80) || "run";
}

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

function csvField(v) {
  const s = String(v);
  return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

// Layer filter: "/regex/" or a case-insensitive substring.
export function makeFilter(text) {
  const t = text.trim();
  if (!t) return { test: () => true, error: null };
  const m = /^\/(.*)\/([imsu]*)$/.exec(t);
  if (m && m[1]) {
    try {
      const re = new RegExp(m[1], m[2]);
      return { test: (s) => re.test(s), error: null };
    } catch (e) {
      return { test: () => true, error: e.message };
    }
  }
  const needle = t.toLowerCase();
  return { test: (s) => s.toLowerCase().includes(needle), error: null };
}

// ------------------------------------------------------------------ app

class App {
  constructor(root) {
    this.root = root;
    this.state = { ...DEFAULTS };
    this.tags = {};
    this.grids = []; // full (unfiltered) grids of the shown runs
    this.panels = [];
    this.layerCache = new Map();
    this.generation = 0;
    this.timings = {};
    this.drawCount = 0;
    this.host = new HostChannel(PLUGIN);
    this._build();
  }

  // -------------------------------------------------------------- layout

  _build() {
    const s = {};
    this.ui = s;
    s.run = h("select", { id: "ss-run", onchange: () => this.set({ run: s.run.value, layer: "", step: "" }) });
    s.metrics = h("div", { class: "ss-metrics", role: "radiogroup", "aria-label": "Metric" });
    s.stat = h("select", {
      id: "ss-stat",
      onchange: () => {
        if (QUANTILE_STATS.includes(s.stat.value)) this.preferredStat = s.stat.value;
        this.set({ stat: s.stat.value });
      },
    });
    s.filter = h("input", {
      id: "ss-filter",
      type: "search",
      placeholder: "substring or /regex/",
      spellcheck: "false",
      autocomplete: "off",
      oninput: () => this._debounce("filter", 150, () => this.set({ filter: s.filter.value }, { refetch: false })),
    });
    s.filterNote = h("div", { class: "ss-note", id: "ss-filter-note" });
    s.xStep = h("input", { type: "radio", name: "ss-x", value: "step", onchange: () => this.set({ x: "step" }, { refetch: false }) });
    s.xWall = h("input", { type: "radio", name: "ss-x", value: "wall", onchange: () => this.set({ x: "wall" }, { refetch: false }) });
    s.cmap = h("select", { id: "ss-cmap", onchange: () => this.set({ cmap: s.cmap.value }, { refetch: false }) });
    setOptions(s.cmap, SEQUENTIAL.map((n) => [n, n]), "viridis");
    s.rangeAuto = h("input", { type: "radio", name: "ss-range", value: "auto", onchange: () => this.set({ range: "auto" }, { refetch: false }) });
    s.rangeFixed = h("input", {
      type: "radio",
      name: "ss-range",
      value: "fixed",
      onchange: () => {
        const sc = this.scale;
        this.set(
          { range: "fixed", lo: this.state.lo || (sc ? formatValue(sc.lo, 3) : "1e-6"), hi: this.state.hi || (sc ? formatValue(sc.hi, 3) : "1") },
          { refetch: false }
        );
      },
    });
    const rangeInput = (key) =>
      h("input", {
        id: "ss-range-" + key,
        type: "text",
        inputmode: "decimal",
        size: "8",
        onchange: (e) => this.set({ [key]: e.target.value.trim(), range: "fixed" }, { refetch: false }),
      });
    s.lo = rangeInput("lo");
    s.hi = rangeInput("hi");
    s.rangeNote = h("div", { class: "ss-note" });
    s.compare = h("select", { id: "ss-compare", onchange: () => this.set({ compare: s.compare.value }) });
    setOptions(s.compare, [["off", "off"], ["side", "side by side (one colour scale)"], ["ratio", "ratio run / other run"]], "off");
    s.run2 = h("select", { id: "ss-run2", onchange: () => this.set({ run2: s.run2.value }) });
    s.run2Row = h("label", { class: "ss-field" }, h("span", { text: "Other run" }), s.run2);

    const field = (label, control, forId) =>
      h("label", { class: "ss-field", for: forId }, h("span", { text: label }), control);
    const group = (title, ...children) =>
      h("div", { class: "ss-group" }, h("div", { class: "ss-group-title", text: title }), ...children);

    s.sidebar = h(
      "aside",
      { class: "ss-sidebar" },
      group("Run", s.run),
      group("Metric", s.metrics, field("Statistic over elements", s.stat, "ss-stat")),
      group("Layers", field("Filter", s.filter, "ss-filter"), s.filterNote),
      group(
        "Horizontal axis",
        h(
          "div",
          { class: "ss-radios" },
          h("label", {}, s.xStep, " step"),
          h("label", {}, s.xWall, " relative wall time")
        )
      ),
      group(
        "Colour",
        field("Colour map", s.cmap, "ss-cmap"),
        h(
          "div",
          { class: "ss-radios" },
          h("label", {}, s.rangeAuto, " auto range"),
          h("label", {}, s.rangeFixed, " fixed range")
        ),
        h("div", { class: "ss-range" }, s.lo, h("span", { text: "to" }), s.hi),
        s.rangeNote
      ),
      group("Compare", field("Mode", s.compare, "ss-compare"), s.run2Row)
    );

    s.title = h("h2", { class: "ss-title" });
    s.subtitle = h("div", { class: "ss-subtitle" });
    const button = (text, title, onclick, id) => h("button", { type: "button", class: "ss-button", text, title, onclick, id });
    s.exportPng = button("PNG", "Download the heatmap as an image", () => this.exportPng(), "ss-export-png");
    s.exportCsv = button("CSV", "Download the numbers of the heatmap", () => this.exportCsv(), "ss-export-csv");
    s.link = button("Link", "Copy a link to this view", () => this.copyLink(), "ss-link");
    s.reload = button("\u21bb", "Reload now", () => this.reload(), "ss-reload");
    s.status = h("div", { class: "ss-status", role: "status" });
    s.problems = h("div", { class: "ss-problems", hidden: true });
    s.legend = h("canvas", { class: "ss-legend", role: "img" });
    s.panels = h("div", { class: "ss-panels" });
    s.empty = h("div", { class: "ss-empty", hidden: true });
    s.card = h(
      "section",
      { class: "ss-card ss-heat-card" },
      h(
        "div",
        { class: "ss-card-head" },
        h("div", { class: "ss-heading" }, s.title, s.subtitle),
        h("div", { class: "ss-actions" }, s.reload, s.link, s.exportPng, s.exportCsv)
      ),
      s.legend,
      s.panels,
      s.empty
    );
    s.main = h("main", { class: "ss-main" }, s.status, s.problems, s.card);
    s.tooltip = h("div", { class: "ss-tooltip", hidden: true, role: "tooltip" });
    this.root.replaceChildren(s.sidebar, s.main, s.tooltip);
    this.drill = new DrillDown(s.main, {
      fetchLayer: (args, signal) => fetchLayer(args, signal),
      fetchHistogram: (args, signal) => fetchHistogram(args, signal),
      onStep: (step) => this.set({ step: String(step) }, { refetch: false, redraw: false }),
      onClose: () => this.set({ layer: "", step: "" }, { refetch: false }),
    });
  }

  _debounce(key, ms, fn) {
    this._timers = this._timers || {};
    clearTimeout(this._timers[key]);
    this._timers[key] = setTimeout(fn, ms);
  }

  // ---------------------------------------------------------------- state

  _readHash(hash) {
    const params = new URLSearchParams(hash.replace(/^#/, ""));
    const out = {};
    for (const key of Object.keys(DEFAULTS)) if (params.has(key)) out[key] = params.get(key);
    return out;
  }

  // TensorBoard's own URL: `#stepsize&p.stepsize.run=...` entries (the
  // form its plugin host uses for plugin data), so a link to the page
  // reopens this view.  Null when the parent page is out of reach.
  _readParentHash() {
    try {
      if (window.parent === window) return null;
      const out = {};
      const prefix = `p.${PLUGIN}.`;
      for (const part of window.parent.location.hash.replace(/^#/, "").split("&")) {
        const eq = part.indexOf("=");
        if (eq < 0) continue;
        const key = decodeURIComponent(part.slice(0, eq));
        if (key.startsWith(prefix) && key.slice(prefix.length) in DEFAULTS) {
          out[key.slice(prefix.length)] = decodeURIComponent(part.slice(eq + 1).replace(/\+/g, " "));
        }
      }
      return out;
    } catch (e) {
      return null;
    }
  }

  _writeParentHash() {
    try {
      if (window.parent === window) return;
      const loc = window.parent.location;
      const parts = loc.hash.replace(/^#/, "").split("&").filter((p) => p !== "");
      // Only while our tab is the one shown.
      if (parts[0] !== PLUGIN) return;
      const prefix = encodeURIComponent(`p.${PLUGIN}.`);
      const kept = parts.filter((p) => !p.startsWith(`p.${PLUGIN}.`) && !p.startsWith(prefix));
      const ours = Object.entries(this.linkParams()).map(
        ([k, v]) => `p.${PLUGIN}.${encodeURIComponent(k)}=${encodeURIComponent(v)}`
      );
      const hash = "#" + kept.concat(ours).join("&");
      if (hash !== loc.hash) {
        window.parent.history.replaceState(window.parent.history.state, "", loc.pathname + loc.search + hash);
      }
    } catch (e) {
      // cross-origin or sandboxed parent: the iframe's own hash still works
    }
  }

  _writeHash() {
    const params = new URLSearchParams(this.linkParams());
    const hash = params.toString();
    const url = location.pathname + location.search + (hash ? "#" + hash : "");
    history.replaceState(null, "", url);
    this._writeParentHash();
  }

  linkParams() {
    const out = {};
    for (const [k, v] of Object.entries(this.state)) if (v !== DEFAULTS[k] && v !== "") out[k] = v;
    if (this.state.compare === "off") delete out.run2;
    if (this.state.range !== "fixed") delete out.lo, delete out.hi;
    return out;
  }

  // Change the selection.  `refetch`: the data shown changes; `redraw`.
  set(changes, { refetch = true, redraw = true } = {}) {
    Object.assign(this.state, changes);
    if (refetch) this._updateRunControls(); // keeps run / metric / stat valid
    this._writeHash();
    this._syncControls();
    if (refetch) this.loadView();
    else if (redraw) this.draw();
  }

  _syncControls() {
    const s = this.ui;
    const st = this.state;
    if (s.filter.value !== st.filter && document.activeElement !== s.filter) s.filter.value = st.filter;
    s.xStep.checked = st.x !== "wall";
    s.xWall.checked = st.x === "wall";
    s.cmap.value = SEQUENTIAL.includes(st.cmap) ? st.cmap : "viridis";
    s.rangeAuto.checked = st.range !== "fixed";
    s.rangeFixed.checked = st.range === "fixed";
    if (document.activeElement !== s.lo) s.lo.value = st.lo;
    if (document.activeElement !== s.hi) s.hi.value = st.hi;
    s.lo.disabled = s.hi.disabled = st.compare === "ratio";
    s.compare.value = st.compare;
    s.run2Row.hidden = st.compare === "off";
    for (const input of s.metrics.querySelectorAll("input")) input.checked = input.value === st.metric;
  }

  // ----------------------------------------------------------------- data

  async start() {
    // Selection: the iframe's hash, then TensorBoard's URL (a shared link).
    const fromIframe = this._readHash(location.hash);
    const fromParent = this._readParentHash() || {};
    const fromHost = (await this.host.urlData()) || {};
    const hostKeys = {};
    for (const [k, v] of Object.entries(fromHost)) if (k in DEFAULTS && typeof v === "string") hostKeys[k] = v;
    Object.assign(this.state, fromIframe, fromParent, hostKeys);
    this._syncControls();
    // TensorBoard's own dark mode when it can be read, else the browser's preference.
    const prefersDark = matchMedia("(prefers-color-scheme: dark)");
    let hostDark = null;
    const applyTheme = () => {
      const dark = hostDark === null ? prefersDark.matches : hostDark;
      document.documentElement.dataset.theme = dark ? "dark" : "light";
      if (this.grids.length) this.draw();
      if (this.drill.open && this.drill.data) {
        this.drill.drawBands();
        if (this.drill.histogram) this.drill.drawHistogram();
      }
    };
    watchHostTheme((dark) => {
      hostDark = dark;
      applyTheme();
    });
    prefersDark.addEventListener("change", applyTheme);
    this.host.on("experimental.DataReloaded", () => this.reload());
    if (!this.host.connected) {
      setInterval(() => document.visibilityState === "visible" && this.reload(), RELOAD_FALLBACK_MS);
    }
    let lastWidth = 0;
    new ResizeObserver(() => {
      const w = this.ui.panels.clientWidth;
      if (w === lastWidth) return;
      lastWidth = w;
      this._debounce("resize", 120, () => this.onResize());
    }).observe(this.ui.main);
    await this.reload();
  }

  async reload() {
    try {
      this.tags = await fetchTags();
    } catch (e) {
      this.showStatus(`Could not list runs: ${e.message}`, "error");
      return;
    }
    this._updateRunControls();
    await this.loadView();
  }

  runs() {
    return Object.keys(this.tags).sort();
  }

  _updateRunControls() {
    const runs = this.runs();
    const st = this.state;
    if (!runs.includes(st.run)) st.run = runs.find((r) => this.tags[r].num_steps > 0) || runs[0] || "";
    if (!runs.includes(st.run2) || st.run2 === st.run) st.run2 = runs.find((r) => r !== st.run) || "";
    setOptions(this.ui.run, runs.map((r) => [r, r]), st.run);
    setOptions(this.ui.run2, runs.filter((r) => r !== st.run).map((r) => [r, r]), st.run2);
    const entry = this.tags[st.run];
    const metrics = entry ? entry.metrics : [];
    if (metrics.length && !metrics.includes(st.metric)) st.metric = metrics[0];
    this._buildMetricList(metrics);
    const stats = entry && entry.stats[st.metric] ? entry.stats[st.metric] : [];
    this.preferredStat = this.preferredStat || st.stat;
    if (stats.length && !stats.includes(st.stat)) {
      st.stat = stats.includes(this.preferredStat) ? this.preferredStat : stats.includes("p50") ? "p50" : stats[0];
    }
    const ordered = [...QUANTILE_STATS, "zero_fraction", "nonfinite"].filter((x) => stats.includes(x));
    for (const x of stats) if (!ordered.includes(x)) ordered.push(x);
    setOptions(this.ui.stat, ordered.map((x) => [x, STAT_LABELS[x] || x]), st.stat);
    this.ui.stat.disabled = ordered.length <= 1;
    this._writeHash();
    this._syncControls();
    const problems = entry ? entry.problems || [] : [];
    this.ui.problems.hidden = problems.length === 0;
    this.ui.problems.replaceChildren(
      h("strong", { text: `Problems reading run ${st.run}:` }),
      h("ul", {}, ...problems.map((p) => h("li", { text: p })))
    );
  }

  _buildMetricList(metrics) {
    const key = metrics.join(",");
    if (this._metricKey === key) return;
    this._metricKey = key;
    const rows = metrics.map((m) => {
      const info = METRICS[m] || { label: m, unit: "", help: "No description for this metric." };
      const input = h("input", {
        type: "radio",
        name: "ss-metric",
        value: m,
        onchange: () => {
          if (QUANTILE_STATS.includes(this.state.stat)) this.preferredStat = this.state.stat;
          const stats = this.tags[this.state.run]?.stats[m] || [];
          let stat = this.state.stat;
          if (!stats.includes(stat)) stat = stats.includes(this.preferredStat) ? this.preferredStat : stats.includes("p50") ? "p50" : stats[0];
          this.set({ metric: m, stat });
        },
      });
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
    this.ui.metrics.replaceChildren(...rows);
  }

  _layoutWidths() {
    const total = Math.max(200, this.ui.panels.clientWidth);
    const side = this.state.compare === "side" && this.state.run2;
    const panelW = side ? Math.floor((total - 16) / 2) : total;
    const layers = this.tags[this.state.run]?.layers || [];
    const ctx = this._measureCtx || (this._measureCtx = document.createElement("canvas").getContext("2d"));
    ctx.font = `11px ${theme(this.root).font}`;
    let longest = 0;
    for (const p of layers.slice(0, 400)) longest = Math.max(longest, ctx.measureText(p).width);
    const labelW = Math.round(Math.max(90, Math.min(longest + 16, Math.min(280, panelW * 0.36))));
    const cellsW = Math.max(20, panelW - labelW - 10);
    return { panelW, labelW, cellsW };
  }

  async loadView() {
    const st = this.state;
    const gen = ++this.generation;
    if (this.abort) this.abort.abort();
    this.abort = new AbortController();
    const signal = this.abort.signal;
    const runs = this.runs();
    if (!runs.length) {
      this.grids = [];
      this.showEmpty(
        "No step-size data yet. Log some with StepSizeCallback(log_dir) in model.fit; " +
          "this page picks new runs up when TensorBoard reloads."
      );
      return;
    }
    const entry = this.tags[st.run];
    if (!entry || !entry.metrics.length) {
      this.grids = [];
      this.showEmpty(`Run ${st.run} has no readable step-size data.`);
      return;
    }
    const wanted = [st.run];
    if (st.compare !== "off" && st.run2 && this.tags[st.run2]) wanted.push(st.run2);
    const { cellsW } = this._layoutWidths();
    const maxSteps = Math.max(10, Math.floor(cellsW));
    this.showStatus("Loading\u2026", "loading");
    try {
      const t0 = performance.now();
      const responses = await Promise.all(
        wanted.map((run) => fetchHeatmap({ run, metric: st.metric, stat: st.stat, maxSteps }, signal))
      );
      if (gen !== this.generation) return;
      const t1 = performance.now();
      this.grids = responses.map((r) => Grid.fromResponse(r));
      const t2 = performance.now();
      this.requestedMaxSteps = maxSteps;
      this.timings = { fetchMs: t1 - t0, dataArrived: t1, convertMs: t2 - t1 };
      this.showStatus("");
      this.draw();
      this.timings.drawnAt = performance.now();
      this.timings.firstHeatmapMs = this.timings.drawnAt - t1;
      if (st.layer) this.openDrill(st.layer, st.step ? Number(st.step) : null);
      else this.drill.close();
    } catch (e) {
      if (e.name === "AbortError" || gen !== this.generation) return;
      this.showStatus(e instanceof ApiError ? e.message : String(e), "error");
    }
  }

  onResize() {
    if (!this.grids.length) return;
    const { cellsW } = this._layoutWidths();
    const cols = Math.max(...this.grids.map((g) => g.cols));
    const entry = this.tags[this.state.run];
    const pooled = entry && cols < entry.num_steps;
    if (cols > cellsW || (pooled && cols < 0.75 * cellsW)) this.loadView();
    else this.draw();
    if (this.drill.open && this.drill.data) {
      this.drill.width = this.ui.panels.clientWidth;
      this.drill.drawBands();
      if (this.drill.histogram) this.drill.drawHistogram();
    }
  }

  showStatus(text, kind) {
    this.ui.status.textContent = text;
    this.ui.status.className = "ss-status" + (kind ? " ss-" + kind : "");
    this.ui.status.hidden = !text;
  }

  showEmpty(text) {
    this.showStatus("");
    for (const p of this.panels) p.destroy();
    this.panels = [];
    this.ui.empty.hidden = false;
    this.ui.empty.textContent = text;
    this.ui.legend.hidden = true;
    this.ui.title.textContent = "Step sizes";
    this.ui.subtitle.textContent = "";
  }

  // ---------------------------------------------------------------- draw

  // The grids as shown: filtered, and for "ratio" combined into one.
  _shownGrids() {
    const filter = makeFilter(this.state.filter);
    this.ui.filter.classList.toggle("ss-invalid", !!filter.error);
    const filtered = this.grids.map((g) => {
      const rows = [];
      g.layers.forEach((p, i) => filter.test(p) && rows.push(i));
      if (rows.length === g.rows) return g; // no copy when nothing is filtered out
      const key = rows.join(",");
      if (!g._subsets) g._subsets = new Map();
      if (!g._subsets.has(key)) g._subsets.set(key, g.subset(rows));
      return g._subsets.get(key);
    });
    const total = this.grids[0] ? this.grids[0].rows : 0;
    this.ui.filterNote.textContent = filter.error
      ? `Invalid regular expression: ${filter.error}`
      : this.state.filter
        ? `${filtered[0] ? filtered[0].rows : 0} of ${total} layers`
        : `${total} layers`;
    if (this.state.compare === "ratio" && filtered.length === 2) {
      return [Grid.ratio(filtered[0], filtered[1])];
    }
    return filtered;
  }

  _scale(grids) {
    const st = this.state;
    const ratio = st.compare === "ratio" && grids[0] && grids[0].info.ratioOf;
    let lo = Infinity;
    let hi = -Infinity;
    if (ratio) {
      let m = 0;
      const { values, kinds } = grids[0];
      for (let k = 0; k < values.length; k++) {
        if (kinds[k] === 0 && values[k] > 0) m = Math.max(m, Math.abs(Math.log10(values[k])));
      }
      m = Math.max(m, 0.1);
      this.ui.rangeNote.textContent = "Ratios use a symmetric range around 1.";
      return new LogScale(10 ** -m, 10 ** m);
    }
    for (const g of grids) {
      const r = g.range();
      if (r.lo !== null) lo = Math.min(lo, r.lo);
      if (r.hi !== null) hi = Math.max(hi, r.hi);
    }
    if (lo === Infinity) {
      lo = 1e-8;
      hi = 1;
    }
    // Keep a reference level (e.g. 1e-3 for update_ratio) on the scale
    // when the data is within three decades of it.
    const ref = (METRICS[st.metric] || {}).reference;
    if (ref && ref.value >= lo / 1000 && ref.value <= hi * 1000) {
      lo = Math.min(lo, ref.value);
      hi = Math.max(hi, ref.value);
    }
    this.autoRange = { lo, hi };
    if (st.range === "fixed") {
      const flo = parseFloat(st.lo);
      const fhi = parseFloat(st.hi);
      if (flo > 0 && fhi > flo) {
        this.ui.rangeNote.textContent = `Data: ${formatValue(lo)} to ${formatValue(hi)}.`;
        return new LogScale(flo, fhi);
      }
      this.ui.rangeNote.textContent = "Fixed range needs 0 < min < max; using auto.";
      return new LogScale(lo, hi);
    }
    this.ui.rangeNote.textContent = "";
    return new LogScale(lo, hi);
  }

  draw() {
    const t0 = performance.now();
    const st = this.state;
    if (!this.grids.length) return;
    this.hideTooltip();
    this.ui.empty.hidden = true;
    this.ui.legend.hidden = false;
    const grids = this._shownGrids();
    this.shown = grids;
    const scale = this._scale(grids);
    this.scale = scale;
    const ratio = !!(grids[0] && grids[0].info.ratioOf);
    const cmap = ratio ? "ratio" : SEQUENTIAL.includes(st.cmap) ? st.cmap : "viridis";
    this.cmap = cmap;
    const info = METRICS[st.metric] || { label: st.metric, unit: "" };
    const statLabel = STAT_LABELS[st.stat] || st.stat;

    // Title.
    this.ui.title.textContent = `${info.label} \u00b7 ${statLabel}`;
    const entry = this.tags[st.run] || {};
    const g0 = this.grids[0];
    const pooledNote =
      g0 && entry.num_steps > g0.cols
        ? ` \u00b7 ${entry.num_steps} logged steps pooled into ${g0.cols} columns (${g0.info.pooling} per column)`
        : entry.num_steps
          ? ` \u00b7 ${entry.num_steps} logged steps`
          : "";
    this.ui.subtitle.textContent =
      (ratio ? `ratio of run ${st.run} to run ${st.run2}` : `run ${st.run}`) +
      (entry.optimizer ? ` \u00b7 ${entry.optimizer}` : "") +
      pooledNote;

    // Panels.
    while (this.panels.length > grids.length) this.panels.pop().destroy();
    while (this.panels.length < grids.length) {
      this.panels.push(
        new HeatmapPanel(this.ui.panels, {
          onHover: (panel, cell, event) => this.onHover(panel, cell, event),
          onLeave: () => this.hideTooltip(),
          onClick: (panel, cell) => this.onCellClick(panel, cell),
        })
      );
    }
    const { panelW, labelW } = this._layoutWidths();
    const top = this.ui.panels.getBoundingClientRect().top + window.scrollY;
    const avail = Math.max(240, window.innerHeight - Math.min(top, 260) - 24);
    this.ui.panels.classList.toggle("ss-side", grids.length > 1);
    const drawMs = [];
    grids.forEach((g, i) => {
      const p = this.panels[i];
      p.index = i;
      p.layout(panelW, avail, g.rows, labelW);
      drawMs.push(p.draw(g, scale, cmap, st.x));
      p.setTitle(grids.length > 1 ? `run ${g.info.run}` : "");
      p.title.hidden = grids.length === 1;
    });

    // Legend.
    const th = theme(this.root);
    const legendW = this.ui.legend.parentElement.clientWidth - 32;
    const legendTitle = ratio
      ? `ratio ${st.run} / ${st.run2} of ${info.label} (${statLabel}); 1 = equal, log\u2081\u2080 colour scale`
      : st.stat === "value"
        ? `${info.label} (per layer), ${info.unit}; log\u2081\u2080 colour scale`
        : `${info.label} (${statLabel} over elements), ${info.unit}; log\u2081\u2080 colour scale`;
    const c = this.ui.legend;
    const lctx = setupCanvas(c, legendW, 64);
    this.legendArgs = {
      scale,
      cmap,
      title: legendTitle,
      reference: ratio ? { value: 1, label: "equal" } : info.reference || null,
      th,
      specials: true,
    };
    drawLegend(lctx, 0, 4, legendW, this.legendArgs);
    c.setAttribute(
      "aria-label",
      `${legendTitle}. Colours from ${formatValue(scale.lo)} to ${formatValue(scale.hi)}; red NaN, magenta +Inf, cyan \u2212Inf, white exactly 0, hatched not logged.`
    );

    // Selection marks.
    this._markSelection();
    this.drawCount++;
    this.lastDrawMs = performance.now() - t0;
    this.lastCellsMs = drawMs;
  }

  _markSelection() {
    for (const p of this.panels) {
      const row = p.grid ? p.grid.layers.indexOf(this.state.layer) : -1;
      let col = -1;
      if (row >= 0 && this.state.step !== "") {
        const s = Number(this.state.step);
        col = p.grid.steps.findIndex((first, j) => first <= s && s <= p.grid.stepEnds[j]);
      }
      p.select(row, col);
    }
  }

  // --------------------------------------------------------------- hover

  onHover(panel, cell, event) {
    this._hoverArgs = [panel, cell, event.clientX, event.clientY];
    if (this._hoverFrame) return;
    this._hoverFrame = requestAnimationFrame(() => {
      this._hoverFrame = 0;
      this.updateTooltip(...this._hoverArgs);
    });
  }

  // Fill and place the tooltip for `cell` of `panel` (synchronous).
  updateTooltip(panel, cell, clientX, clientY) {
    const grid = panel.grid;
    if (!grid || !cell) return this.hideTooltip();
    const tip = this.ui.tooltip;
    const st = this.state;
    const layer = grid.layers[cell.row];
    const runOfPanel = grid.info.ratioOf ? st.run : grid.info.run;
    const layerInfo = (this.tags[runOfPanel]?.layer_info || []).find((l) => l.path === layer);
    const lines = [h("div", { class: "ss-tip-layer", text: layer })];
    if (layerInfo) {
      lines.push(
        h("div", { class: "ss-tip-meta", text: `shape [${(layerInfo.shape || []).join(", ")}] \u00b7 ${layerInfo.dtype || ""}` })
      );
    }
    if (cell.col >= 0) {
      const j = cell.col;
      const first = grid.steps[j];
      const last = grid.stepEnds[j];
      let where = first === last ? `step ${first}` : `steps ${first}\u2013${last} (${grid.info.pooling || "pooled"})`;
      if (grid.wallTimes.length > j) where += ` \u00b7 +${formatDuration(grid.wallTimes[j] - grid.wallTimes[0])}`;
      lines.push(h("div", { class: "ss-tip-meta", text: where }));
      const statLabel = STAT_LABELS[st.stat] || st.stat;
      const v = grid.value(cell.row, j);
      if (grid.info.ratioOf) {
        const [va, vb] = grid.parts[cell.row * grid.cols + j];
        lines.push(h("div", { class: "ss-tip-value", text: `ratio ${formatValue(typeof v === "number" ? v : describe(v), 4)}` }));
        lines.push(h("div", { class: "ss-tip-meta", text: `${grid.info.ratioOf[0]}: ${formatValue(describe(va), 4)}` }));
        lines.push(h("div", { class: "ss-tip-meta", text: `${grid.info.ratioOf[1]}: ${formatValue(describe(vb), 4)}` }));
      } else {
        lines.push(
          h(
            "div",
            { class: "ss-tip-value" },
            h("span", { class: "ss-tip-stat", text: statLabel + " " }),
            h("span", { id: "ss-tip-number", text: typeof v === "number" ? exact(v) : describe(v) })
          )
        );
        const quantiles = this._quantilesAt(grid.info.run, layer, first);
        if (quantiles) lines.push(quantiles);
      }
    } else {
      lines.push(h("div", { class: "ss-tip-meta", text: "click to open this layer" }));
    }
    tip.replaceChildren(...lines);
    tip.hidden = false;
    const pad = 14;
    const w = tip.offsetWidth;
    const hgt = tip.offsetHeight;
    let x = clientX + pad;
    let y = clientY + pad;
    if (x + w > window.innerWidth - 4) x = Math.max(4, clientX - pad - w);
    if (y + hgt > window.innerHeight - 4) y = Math.max(4, clientY - pad - hgt);
    tip.style.transform = `translate(${Math.round(x)}px, ${Math.round(y)}px)`;
    this.hoverInfo = { panel: panel.index, row: cell.row, col: cell.col, layer };
  }

  hideTooltip() {
    this.ui.tooltip.hidden = true;
    this.hoverInfo = null;
  }

  // The other statistics at (layer, column), from the lazily fetched layer
  // data; a placeholder while it loads.
  _quantilesAt(run, layer, step) {
    const st = this.state;
    const key = `${run}\u0000${st.metric}\u0000${this.requestedMaxSteps}\u0000${layer}`;
    let entry = this.layerCache.get(key);
    if (!entry) {
      entry = { data: null, error: null };
      this.layerCache.set(key, entry);
      if (this.layerCache.size > 400) this.layerCache.delete(this.layerCache.keys().next().value);
      entry.promise = fetchLayer({ run, layer, metric: st.metric, maxSteps: this.requestedMaxSteps })
        .then((d) => (entry.data = d))
        .catch((e) => (entry.error = e.message))
        .then(() => {
          if (this.hoverInfo && this.hoverInfo.layer === layer && this._hoverArgs) this.updateTooltip(...this._hoverArgs);
        });
    }
    if (entry.error) return h("div", { class: "ss-tip-meta", text: "other statistics unavailable" });
    if (!entry.data) return h("div", { class: "ss-tip-meta", text: "other statistics: loading\u2026" });
    const d = entry.data;
    const j = d.steps.indexOf(step);
    if (j < 0 || d.stats.length <= 1) return null;
    const kinds = new Map((d.nonfinite || []).map(([c, s, k]) => [c + "," + s, k]));
    const table = h("div", { class: "ss-tip-stats" });
    for (const name of QUANTILE_STATS.concat(["zero_fraction", "nonfinite"])) {
      const s = d.stats.indexOf(name);
      if (s < 0) continue;
      let v = d.values[j][s];
      if (v === null) v = describe(kinds.get(j + "," + s) || "missing");
      table.append(
        h("span", { class: name === st.stat ? "ss-k ss-current" : "ss-k", text: name }),
        h("span", { class: name === st.stat ? "ss-v ss-current" : "ss-v", text: formatValue(v, 4) })
      );
    }
    return table;
  }

  // ------------------------------------------------------------ drill-down

  onCellClick(panel, cell) {
    const grid = panel.grid;
    const layer = grid.layers[cell.row];
    const step = cell.col >= 0 ? grid.steps[cell.col] : null;
    this.state.layer = layer;
    this.state.step = step === null ? "" : String(step);
    this._writeHash();
    this._markSelection();
    this.openDrill(layer, step, { scroll: true });
  }

  openDrill(layer, step, { scroll = false } = {}) {
    const st = this.state;
    const entry = this.tags[st.run];
    if (!entry || !entry.layers.includes(layer)) {
      this.drill.close();
      return;
    }
    const info = METRICS[st.metric] || { label: st.metric, unit: "" };
    this.drill.show({
      run: st.run,
      layer,
      info: (entry.layer_info || []).find((l) => l.path === layer),
      metric: st.metric,
      metricLabel: info.label,
      unit: info.unit,
      step: step === null ? undefined : step,
      width: this.ui.panels.clientWidth,
    });
    if (scroll) this.drill.root.scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  // ---------------------------------------------------------------- export

  _baseName() {
    const st = this.state;
    const runs = st.compare !== "off" && st.run2 ? `${st.run}_vs_${st.run2}` : st.run;
    return `stepsize_${safeFilename(runs)}_${st.metric}_${st.stat}`;
  }

  // The heatmap(s) with title and legend as one image.
  exportCanvas() {
    const th = theme(this.root);
    const dpr = window.devicePixelRatio || 1;
    const pad = 16;
    const panels = this.panels.filter((p) => p.grid);
    const width = panels.reduce((a, p) => a + p.width, 0) + (panels.length - 1) * 16 + 2 * pad;
    const panelH = Math.max(...panels.map((p) => p.height));
    const titleH = 44;
    const legendH = 66;
    const panelTitleH = panels.length > 1 ? 18 : 0;
    const height = pad + titleH + legendH + panelTitleH + panelH + pad;
    const c = document.createElement("canvas");
    c.width = Math.round(width * dpr);
    c.height = Math.round(height * dpr);
    const ctx = c.getContext("2d");
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.fillStyle = th.bg;
    ctx.fillRect(0, 0, width, height);
    ctx.fillStyle = th.text;
    ctx.textBaseline = "top";
    ctx.font = `500 15px ${th.font}`;
    ctx.fillText(this.ui.title.textContent, pad, pad);
    ctx.font = `12px ${th.font}`;
    ctx.fillStyle = th.muted;
    ctx.fillText(this.ui.subtitle.textContent, pad, pad + 22);
    drawLegend(ctx, pad, pad + titleH, width - 2 * pad, { ...this.legendArgs, th });
    let x = pad;
    for (const p of panels) {
      if (panelTitleH) {
        ctx.fillStyle = th.text;
        ctx.font = `500 12px ${th.font}`;
        ctx.fillText(p.title.textContent, x + p.labelWidth, pad + titleH + legendH);
      }
      ctx.drawImage(p.canvas, x, pad + titleH + legendH + panelTitleH, p.width, p.height);
      x += p.width + 16;
    }
    return c;
  }

  exportPng() {
    if (!this.panels.length) return;
    this.exportCanvas().toBlob((blob) => blob && download(blob, this._baseName() + ".png"), "image/png");
  }

  // Long format: one line per cell.
  csvText() {
    const st = this.state;
    const lines = [["run", "layer", "step_first", "step_last", "wall_time", "metric", "stat", "value"].join(",")];
    for (const g of this.shown || []) {
      const run = g.info.ratioOf ? `${g.info.ratioOf[0]}/${g.info.ratioOf[1]}` : g.info.run;
      const stat = g.info.ratioOf ? st.stat + "_ratio" : st.stat;
      for (let i = 0; i < g.rows; i++) {
        const layer = csvField(g.layers[i]);
        const prefix = csvField(run) + "," + layer + ",";
        for (let j = 0; j < g.cols; j++) {
          const v = g.value(i, j);
          const text = typeof v === "number" ? String(v) : v === "missing" ? "" : v;
          const wall = g.wallTimes.length > j ? g.wallTimes[j] : "";
          lines.push(`${prefix}${g.steps[j]},${g.stepEnds[j]},${wall},${st.metric},${stat},${text}`);
        }
      }
    }
    return lines.join("\n") + "\n";
  }

  exportCsv() {
    if (!this.shown) return;
    download(new Blob([this.csvText()], { type: "text/csv" }), this._baseName() + ".csv");
  }

  async copyLink() {
    const link = hostLink(PLUGIN, this.linkParams());
    let copied = false;
    try {
      await navigator.clipboard.writeText(link);
      copied = true;
    } catch (e) {
      copied = false;
    }
    this.lastLink = link;
    this.showStatus(copied ? "Link copied." : `Link: ${link}`, "info");
    if (copied) setTimeout(() => this.ui.status.textContent === "Link copied." && this.showStatus(""), 2500);
  }
}

function describe(kind) {
  if (typeof kind === "number") return kind;
  return { nan: "NaN", inf: "+Inf", "-inf": "\u2212Inf", missing: "not logged", finite: "?" }[kind] || String(kind);
}

// Enough digits to recognise a float32 value exactly.
function exact(v) {
  if (v === 0) return "0 (exactly)";
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e5 ? String(Number(v.toPrecision(6))) : v.toExponential(5).replace(/\.?0+e/, "e");
}

// ---------------------------------------------------------- test hooks

function testHooks(app) {
  return {
    get app() {
      return app;
    },
    get state() {
      return { ...app.state };
    },
    get drawCount() {
      return app.drawCount;
    },
    get timings() {
      return { ...app.timings, lastDrawMs: app.lastDrawMs, cellsMs: app.lastCellsMs };
    },
    // Geometry of panel `p`: layers shown and cell centres in viewport px.
    panel(p = 0) {
      const panel = app.panels[p];
      if (!panel || !panel.grid) return null;
      const rect = panel.canvas.getBoundingClientRect();
      return {
        layers: panel.grid.layers.slice(),
        rows: panel.grid.rows,
        cols: panel.grid.cols,
        steps: panel.grid.steps.slice(),
        canvas: { x: rect.left, y: rect.top, width: rect.width, height: rect.height },
      };
    },
    cellCenter(p, row, col) {
      const panel = app.panels[p];
      const r = panel.cellRect(row, col);
      const rect = panel.canvas.getBoundingClientRect();
      return { x: rect.left + r.x + r.w / 2, y: rect.top + r.y + r.h / 2, canvasX: r.x + r.w / 2, canvasY: r.y + r.h / 2 };
    },
    // The rendered pixel at a cell's centre, read back from the canvas.
    pixel(p, row, col) {
      const panel = app.panels[p];
      const r = panel.cellRect(row, col);
      const dpr = panel.dpr || 1;
      const d = panel.canvas.getContext("2d").getImageData(Math.floor((r.x + r.w / 2) * dpr), Math.floor((r.y + r.h / 2) * dpr), 1, 1).data;
      return [d[0], d[1], d[2], d[3]];
    },
    // The value a colour stands for on the current scale (nearest LUT entry).
    colorToValue(rgb) {
      const table = lut(app.cmap);
      let best = 0;
      let bestD = Infinity;
      table.forEach((c, i) => {
        const d = (c[0] - rgb[0]) ** 2 + (c[1] - rgb[1]) ** 2 + (c[2] - rgb[2]) ** 2;
        if (d < bestD) {
          bestD = d;
          best = i;
        }
      });
      return { value: app.scale.value((best + 0.5) / LUT_SIZE), distance: Math.sqrt(bestD) };
    },
    scale() {
      return { lo: app.scale.lo, hi: app.scale.hi };
    },
    // Synchronous hover update (for the benchmark): ms spent.
    hover(p, row, col) {
      const panel = app.panels[p];
      const c = this.cellCenter(p, row, col);
      const t0 = performance.now();
      panel.setHover({ row, col });
      app.updateTooltip(panel, { row, col }, c.x, c.y);
      return performance.now() - t0;
    },
    redraw() {
      const t0 = performance.now();
      app.draw();
      return performance.now() - t0;
    },
    csv: () => app.csvText(),
    link: () => hostLink(PLUGIN, app.linkParams()),
    drill: () => ({
      open: app.drill.open,
      layer: app.drill.layer,
      step: app.drill.step,
      hasData: !!app.drill.data,
      histogramStep: app.drill.histogram ? app.drill.histogram.step : null,
    }),
  };
}

let started = null;

export function render() {
  if (started) return started;
  document.title = "Step Sizes";
  const head = document.head || document.documentElement.appendChild(document.createElement("head"));
  let styled = Promise.resolve();
  if (!document.querySelector("link[data-ss]")) {
    const link = h("link", { rel: "stylesheet", href: new URL("./style.css", import.meta.url).href, "data-ss": "1" });
    styled = new Promise((resolve) => {
      link.addEventListener("load", resolve);
      link.addEventListener("error", resolve);
      setTimeout(resolve, 3000);
    });
    head.append(link);
  }
  const viewport = h("meta", { name: "viewport", content: "width=device-width, initial-scale=1" });
  head.append(viewport);
  const root = h("div", { class: "ss-app" });
  document.body.append(root);
  const app = new App(root);
  window.__stepsize = testHooks(app);
  started = styled.then(() => (document.fonts ? document.fonts.ready : null)).then(() => app.start());
  return started;
}

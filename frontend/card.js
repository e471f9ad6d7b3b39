// The main column: the status line, a run's reading problems, and the
// heatmap card -- title, actions, legend, one HeatmapPanel per shown grid
// (two side by side when comparing), or a message when there is nothing to show.

import { h } from "./dom.js";
import { setupCanvas, theme } from "./canvas.js";
import { HeatmapPanel } from "./heatmap.js";
import { drawLegend, legendDescription, legendTitle } from "./legend.js";
import { MARKER_W } from "./marks.js";

const GAP = 16; // between side-by-side panels, also in the exported image

// Title and subtitle of the card for the grids of a `tags` entry.
function headings({ ratio, run, run2, metric, statLabel, entry, first }) {
  const cols = first ? first.cols : 0;
  const zoomed = first && first.info.range && (first.info.range.start_step || first.info.range.end_step) && cols;
  const logged = zoomed ? `logged steps ${first.steps[0]}\u2013${first.stepEnds[cols - 1]}` : `${entry.num_steps} logged steps`;
  const isPooled = first && first.stepEnds.some((end, j) => end !== first.steps[j]);
  const pooled = isPooled
    ? ` \u00b7 ${logged} pooled into ${cols} columns (${first.info.pooling} per column)`
    : entry.num_steps
      ? ` \u00b7 ${zoomed ? logged + ", one column each" : logged}`
      : "";
  return {
    title: `${metric.label} \u00b7 ${statLabel}`,
    subtitle:
      (ratio ? `ratio of run ${run} to run ${run2}` : `run ${run}`) +
      (entry.optimizer ? ` \u00b7 ${entry.optimizer}` : "") +
      pooled,
  };
}

export class HeatmapCard {
  // `panelEvents`: {onHover, onLeave, onClick, attach(panel)} of every panel; `actions`:
  // {reload, link, png, csv} button handlers.
  constructor(main, panelEvents, actions) {
    this.panelEvents = panelEvents;
    this.panels = [];
    this.legendArgs = null;
    const button = (text, title, onclick, id) => h("button", { type: "button", class: "ss-button", text, title, onclick, id });
    this.title = h("h2", { class: "ss-title" });
    this.subtitle = h("div", { class: "ss-subtitle" });
    this.status = h("div", { class: "ss-status", role: "status" });
    this.problems = h("div", { class: "ss-problems", hidden: true });
    this.legend = h("canvas", { class: "ss-legend", role: "img" });
    this.panelBox = h("div", { class: "ss-panels" });
    this.toolbar = h("div", { class: "ss-toolbar" }); // the app puts its view bar here
    this.empty = h("div", { class: "ss-empty", hidden: true });
    this.root = h(
      "section",
      { class: "ss-card ss-heat-card" },
      h(
        "div",
        { class: "ss-card-head" },
        h("div", { class: "ss-heading" }, this.title, this.subtitle),
        h(
          "div",
          { class: "ss-actions" },
          button("\u21bb", "Reload now", actions.reload, "ss-reload"),
          button("Link", "Copy a link to this view", actions.link, "ss-link"),
          button("PNG", "Download the heatmap as an image", actions.png, "ss-export-png"),
          button("CSV", "Download the numbers of the heatmap", actions.csv, "ss-export-csv")
        )
      ),
      this.legend,
      this.toolbar,
      this.panelBox,
      this.empty
    );
    main.append(this.status, this.problems, this.root);
  }

  // Width of the cell area (what the heatmap asks the server for).
  get width() {
    return this.panelBox.clientWidth;
  }

  // Call `onChange()` (debounced) when the width of the panels changes.
  watchWidth(onChange) {
    let lastWidth = 0;
    let timer = 0;
    new ResizeObserver(() => {
      const w = this.width;
      if (w === lastWidth) return;
      lastWidth = w;
      clearTimeout(timer);
      timer = setTimeout(onChange, 120);
    }).observe(this.root.parentElement);
  }

  showStatus(text, kind) {
    this.status.textContent = text;
    this.status.className = "ss-status" + (kind ? " ss-" + kind : "");
    this.status.hidden = !text;
  }

  showProblems(run, problems) {
    this.problems.hidden = problems.length === 0;
    this.problems.replaceChildren(
      h("strong", { text: `Problems reading run ${run}:` }),
      h("ul", {}, ...problems.map((p) => h("li", { text: p })))
    );
  }

  showEmpty(text) {
    this.showStatus("");
    for (const p of this.panels) p.destroy();
    this.panels = [];
    this.empty.hidden = false;
    this.empty.textContent = text;
    this.legend.hidden = true;
    this.title.textContent = "Step sizes";
    this.subtitle.textContent = "";
  }

  // Panel, label and cell widths for the run's `layers` (labels as wide as
  // the longest path needs, within limits); `side`: two panels.
  layoutWidths(layers, side) {
    const total = Math.max(200, this.panelBox.clientWidth);
    const panelW = side ? Math.floor((total - GAP) / 2) : total;
    const ctx = this._measureCtx || (this._measureCtx = document.createElement("canvas").getContext("2d"));
    ctx.font = `11px ${theme(this.root).font}`;
    let longest = 0;
    for (const p of layers.slice(0, 400)) longest = Math.max(longest, ctx.measureText(p).width);
    // Room for the longest path and a findings marker beside it.
    const labelW = Math.round(Math.max(90, Math.min(longest + 16 + MARKER_W, Math.min(280, panelW * 0.36))));
    const cellsW = Math.max(20, panelW - labelW - 10);
    return { panelW, labelW, cellsW };
  }

  // Draw `grids` (one panel each).  `view`: {scale, cmap, xMode, ratio, run,
  // run2, metric (catalog entry), stat, statLabel, entry (the run's tags),
  // first (its unfiltered grid), side, marks (the findings of `run`, drawn
  // on its panel)}.  Returns each panel's cell-drawing ms.
  draw(grids, view) {
    const { scale, cmap } = view;
    this.empty.hidden = true;
    this.legend.hidden = false;
    const head = headings(view);
    this.title.textContent = head.title;
    this.subtitle.textContent = head.subtitle;
    while (this.panels.length > grids.length) this.panels.pop().destroy();
    while (this.panels.length < grids.length) {
      const panel = new HeatmapPanel(this.panelBox, this.panelEvents);
      this.panels.push(panel);
      if (this.panelEvents.attach) this.panelEvents.attach(panel);
    }
    const { panelW, labelW } = this.layoutWidths(view.entry.layers || [], view.side);
    const top = this.panelBox.getBoundingClientRect().top + window.scrollY;
    const avail = Math.max(240, window.innerHeight - Math.min(top, 260) - 24);
    this.panelBox.classList.toggle("ss-side", grids.length > 1);
    const drawMs = grids.map((g, i) => {
      const p = this.panels[i];
      p.index = i;
      p.layout(panelW, avail, g.rows, labelW);
      const ms = p.draw(g, scale, cmap, view.xMode, g.info.run === view.run ? view.marks : null);
      p.setTitle(grids.length > 1 ? `run ${g.info.run}` : "");
      p.title.hidden = grids.length === 1;
      return ms;
    });
    const th = theme(this.root);
    const legendW = this.legend.parentElement.clientWidth - 32;
    const ctx = setupCanvas(this.legend, legendW, 64);
    const title = legendTitle(view);
    const reference = view.ratio ? { value: 1, label: "equal" } : view.metric.reference || null;
    this.legendArgs = { scale, cmap, title, reference, th, specials: true };
    drawLegend(ctx, 0, 4, legendW, this.legendArgs);
    this.legend.setAttribute("aria-label", legendDescription(title, scale));
    return drawMs;
  }

  // Mark the row of `layer` and the column holding `step` ("" for none).
  markSelection(layer, step) {
    for (const p of this.panels) {
      const row = p.grid ? p.grid.layers.indexOf(layer) : -1;
      let col = -1;
      if (row >= 0 && step !== "") {
        const s = Number(step);
        col = p.grid.steps.findIndex((first, j) => first <= s && s <= p.grid.stepEnds[j]);
      }
      p.select(row, col);
    }
  }

  // Draw the run's panel again with the findings' `marks` (same data and layout).
  redrawMarks(run, marks) {
    for (const p of this.panels) if (p.grid && p.grid.info.run === run) p.draw(p.grid, p.scale, p.cmap, p.xMode, marks);
  }

  // Outline the selected finding (`highlight` of findings.js marksOf) on the run's panel.
  markFinding(run, highlight) {
    for (const p of this.panels) if (p.grid && p.grid.info.run === run) p.setHighlight(highlight);
  }

  // The panel(s) with title and legend as one image (a canvas).
  image() {
    const th = theme(this.root);
    const dpr = window.devicePixelRatio || 1;
    const pad = 16;
    const panels = this.panels.filter((p) => p.grid);
    const width = panels.reduce((a, p) => a + p.width, 0) + (panels.length - 1) * GAP + 2 * pad;
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
    ctx.fillText(this.title.textContent, pad, pad);
    ctx.font = `12px ${th.font}`;
    ctx.fillStyle = th.muted;
    ctx.fillText(this.subtitle.textContent, pad, pad + 22);
    drawLegend(ctx, pad, pad + titleH, width - 2 * pad, { ...this.legendArgs, th });
    let x = pad;
    for (const p of panels) {
      if (panelTitleH) {
        ctx.fillStyle = th.text;
        ctx.font = `500 12px ${th.font}`;
        ctx.fillText(p.title.textContent, x + p.labelWidth, pad + titleH + legendH);
      }
      ctx.drawImage(p.canvas, x, pad + titleH + legendH + panelTitleH, p.width, p.height);
      x += p.width + GAP;
    }
    return c;
  }
}

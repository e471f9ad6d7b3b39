// The dashboard's controller: holds the selection (state.js), asks the
// model for data and hands it to the views (sidebar, findings panel,
// heatmap card with its view bar and scalar strip, tooltip, drill-downs --
// one per run when comparing).  Zoom, pan and the keyboard cursor are
// navigate.js's; the rows' order rows.js's.  No drawing and no HTTP of its own.

import { Controls } from "./controls.js";
import { HeatmapCard } from "./card.js";
import { DrillDowns } from "./drills.js";
import { copyLink, saveCsv, savePng } from "./export.js";
import { FindingsPanel } from "./findingspanel.js";
import { HostChannel, followTheme, hostLink, readHostHash, writeHostHash } from "./host.js";
import { ApiError, Model } from "./model.js";
import { colourScale } from "./scale.js";
import { Navigator } from "./navigate.js";
import { arrangeRows } from "./rows.js";
import { ScalarStrip } from "./strip.js";
import { DEFAULTS, PLUGIN, fromHash, linkParams, parseEntries, resolve, toHash } from "./state.js";
import { Tooltip } from "./tooltip.js";
import { ViewBar } from "./viewbar.js";
import { h } from "./dom.js";

const RELOAD_FALLBACK_MS = 30000;

export class App {
  constructor(root) {
    this.state = { ...DEFAULTS };
    this.model = new Model();
    this.grids = []; // full (unfiltered) grids of the shown runs
    this.shown = []; // as drawn: filtered, or their ratio
    this.generation = 0;
    this.timings = {};
    this.drawCount = 0;
    this.host = new HostChannel(PLUGIN);
    this.controls = new Controls(this);
    this.navigator = new Navigator(this);
    this.viewbar = new ViewBar(this);
    const main = h("main", { class: "ss-main" });
    this.card = new HeatmapCard(
      main,
      {
        onHover: (panel, cell, event) => this.navigator.hover(panel, cell, event),
        onLeave: (panel) => this.navigator.leave(panel),
        onClick: (panel, cell) => this.onCellClick(panel, cell),
        attach: (panel) => this.navigator.attach(panel),
      },
      {
        reload: () => this.reload(),
        link: () => copyLink(this.link(), this.card),
        png: () => savePng(this.card, this.state),
        csv: () => saveCsv(this.shown, this.state),
      }
    );
    this.card.toolbar.append(this.viewbar.root);
    this.findings = new FindingsPanel(this, main, this.card.root);
    this.strip = new ScalarStrip(this, this.card);
    root.replaceChildren(this.controls.root, main);
    this.tooltip = new Tooltip(root, this.model, () => this.state);
    this.drills = new DrillDowns(main, {
      model: this.model,
      onStep: (step) => this.set({ step: String(step) }, { refetch: false, redraw: false }),
      onClose: () => this.closeDrill(),
    });
  }

  // The run's drill-down (the other run's is `drills.other`).
  get drill() {
    return this.drills.main;
  }

  // Change the selection.  `refetch`: the data shown changes; `redraw`.
  set(changes, { refetch = true, redraw = true } = {}) {
    Object.assign(this.state, changes);
    if (refetch) this._resolve(); // keeps run / metric / stat valid
    this._writeHash();
    this.controls.sync(this.state);
    this.viewbar.sync(this.state, this.model.tags[this.state.run]?.layers || []);
    if (refetch) this.loadView();
    else if (redraw) this.draw();
  }

  _writeHash() {
    const hash = toHash(this.state);
    history.replaceState(null, "", location.pathname + location.search + (hash ? "#" + hash : ""));
    writeHostHash(linkParams(this.state));
  }

  async start() {
    // Selection: the iframe's hash, then TensorBoard's URL (a shared link).
    const fromIframe = fromHash(location.hash);
    const fromParent = readHostHash() || {};
    const fromHost = parseEntries(Object.entries((await this.host.urlData()) || {}));
    Object.assign(this.state, fromIframe, fromParent, fromHost);
    this.controls.sync(this.state);
    followTheme(() => {
      if (this.grids.length) this.draw();
      this.drills.redraw();
    });
    this.host.on("experimental.DataReloaded", () => this.reload());
    if (!this.host.connected) {
      setInterval(() => document.visibilityState === "visible" && this.reload(), RELOAD_FALLBACK_MS);
    }
    this.card.watchWidth(() => this.onResize());
    await this.reload();
  }

  async reload() {
    try {
      await this.model.reload();
    } catch (e) {
      this.card.showStatus(`Could not list runs: ${e.message}`, "error");
      return;
    }
    this._resolve();
    await this.loadView();
  }

  // Make the selection valid for the listed runs and show their choices.
  _resolve() {
    const { tags, catalog } = this.model;
    this.preferredStat = this.preferredStat || this.state.stat;
    Object.assign(this.state, resolve(this.state, tags, this.preferredStat));
    const st = this.state;
    this.controls.setRuns(this.model.runs(), st.run, st.run2);
    const entry = tags[st.run];
    this.controls.setMetrics(entry ? entry.metrics : [], catalog);
    const stats = entry && entry.stats[st.metric] ? entry.stats[st.metric] : [];
    this.controls.setStats(catalog.ordered(stats).map((x) => [x, catalog.statLabel(x)]), st.stat);
    this._writeHash();
    this.controls.sync(st);
    this.viewbar.sync(st, entry ? entry.layers : []);
    this.card.showProblems(st.run, entry ? entry.problems || [] : []);
  }

  _layoutWidths() {
    const side = this.state.compare === "side" && !!this.state.run2;
    return this.card.layoutWidths(this.model.tags[this.state.run]?.layers || [], side);
  }

  async loadView() {
    const st = this.state;
    const gen = ++this.generation;
    if (this.abort) this.abort.abort();
    this.abort = new AbortController();
    const tags = this.model.tags;
    const entry = tags[st.run];
    for (const view of [this.findings, this.strip]) view.show(entry && entry.metrics.length ? st.run : null);
    if (!entry || !entry.metrics.length) {
      this.grids = [];
      this.card.showEmpty(
        this.model.runs().length
          ? `Run ${st.run} has no readable step-size data.`
          : "No step-size data yet. Log some with StepSizeCallback(log_dir) in model.fit; " +
              "this page picks new runs up when TensorBoard reloads."
      );
      return;
    }
    const wanted = [st.run];
    if (st.compare !== "off" && st.run2 && tags[st.run2]) wanted.push(st.run2);
    const maxSteps = Math.max(10, Math.floor(this._layoutWidths().cellsW));
    this.card.showStatus("Loading\u2026", "loading");
    try {
      const { grids, timings } = await this.model.heatmaps(wanted, { ...st, maxSteps }, this.abort.signal);
      if (gen !== this.generation) return;
      this.grids = grids;
      this.timings = timings;
      this.card.showStatus("");
      this.draw();
      this.timings.drawnAt = performance.now();
      this.timings.firstHeatmapMs = this.timings.drawnAt - timings.dataArrived;
      if (st.layer) this.openDrill(st.layer, st.step ? Number(st.step) : null);
      else this.drills.close();
    } catch (e) {
      if (e.name === "AbortError" || gen !== this.generation) return;
      this.card.showStatus(e instanceof ApiError ? e.message : String(e), "error");
    }
  }

  // Fetch again when the columns no longer fit (or a pooled heatmap could show more).
  onResize() {
    if (!this.grids.length) return;
    const { cellsW } = this._layoutWidths();
    const cols = Math.max(...this.grids.map((g) => g.cols));
    const g = this.grids[0];
    const pooled = g.stepEnds.some((end, j) => end !== g.steps[j]);
    if (cols > cellsW || (pooled && cols < 0.75 * cellsW)) this.loadView();
    else this.draw();
    this.drills.redraw(this.card.width);
  }

  // The grids as shown (rows.js arrangeRows: filtered, ratio, sorted, zoomed rows).
  _shownGrids() {
    const { grids, filter, rows } = arrangeRows(this.grids, this.state);
    const variables = this.state.group || this.state.kind ? this.grids[0].info.numLayers : 0;
    this.controls.showFilter({ ...filter, text: this.state.filter, variables });
    this.rowOffset = rows.offset;
    this.viewbar.showZoom(this.state, this.grids[0], rows, this.model.tags[this.state.run] || {});
    return grids;
  }

  draw() {
    const t0 = performance.now();
    const st = this.state;
    if (!this.grids.length) return;
    this.tooltip.hide();
    const grids = this._shownGrids();
    this.shown = grids;
    const metric = this.model.catalog.metric(st.metric);
    const { scale, note } = colourScale(grids, { range: st.range, lo: st.lo, hi: st.hi, reference: metric.reference });
    this.controls.showRangeNote(note);
    this.scale = scale;
    const ratio = !!(grids[0] && grids[0].info.ratioOf);
    this.cmap = ratio ? "ratio" : st.cmap;
    this.lastCellsMs = this.card.draw(grids, {
      scale,
      cmap: this.cmap,
      xMode: st.x,
      ratio,
      run: st.run,
      run2: st.run2,
      metric,
      stat: st.stat,
      statLabel: this.model.catalog.statLabel(st.stat),
      entry: this.model.tags[st.run] || {},
      first: this.grids[0],
      side: st.compare === "side" && !!st.run2,
      marks: this.findings.marks(st.run),
    });
    this.card.markSelection(st.layer, st.step);
    this.strip.draw(this.card.panels[0]);
    this.drawCount++;
    this.lastDrawMs = performance.now() - t0;
  }

  // A click (or Enter) on a group row lists or folds its members; on a layer, opens its drill-down.
  onCellClick(panel, cell) {
    const grid = panel.grid;
    if (grid.rowMembers[cell.row] > 0) return this.navigator.toggleGroup(grid.rowGroups[cell.row]);
    const layer = grid.layers[cell.row];
    const step = cell.col >= 0 ? grid.steps[cell.col] : null;
    this.state.layer = layer;
    this.state.step = step === null ? "" : String(step);
    this._writeHash();
    this.card.markSelection(this.state.layer, this.state.step);
    this.openDrill(layer, step, { scroll: true });
  }

  openDrill(layer, step, { scroll = false } = {}) {
    this.drills.open(this.state, layer, step, this.card.width);
    if (scroll && this.drill.open) this.drill.root.scrollIntoView({ behavior: "smooth", block: "nearest" });
  }

  closeDrill() {
    this.set({ layer: "", step: "" }, { refetch: false });
    this.drills.close();
  }

  link() {
    return hostLink(linkParams(this.state));
  }
}

// Hooks for the browser tests and bench/bench_browser.py, as
// `window.__stepsize`: the selection, draw counts and timings, panel
// geometry, pixels read back from the canvas and their value on the colour
// scale, a synchronous hover, the CSV, the link, the drill-down's state and
// the findings panel and marks, the numbers drawn, the view bar and the keyboard cursor.

import { LUT_SIZE, lut } from "./colormaps.js";
import { csvText } from "./export.js";

export function testHooks(app) {
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
      const panel = app.card.panels[p];
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
    // The numbers panel `p` draws: {layers, rowMembers, rowGroups, steps,
    // stepEnds, values (row-major; null for a missing cell, "nan" | "inf" | "-inf")}.
    cells(p = 0) {
      const g = app.card.panels[p] && app.card.panels[p].grid;
      if (!g) return null;
      const values = [];
      for (let i = 0; i < g.rows; i++) {
        for (let j = 0; j < g.cols; j++) {
          const v = g.value(i, j);
          values.push(v === "missing" ? null : v);
        }
      }
      return { layers: g.layers.slice(), rowMembers: g.rowMembers.slice(), rowGroups: g.rowGroups.slice(), steps: g.steps.slice(), stepEnds: g.stepEnds.slice(), values };
    },
    // The view bar: its readout line and zoom text; the keyboard cursor.
    viewbar: () => ({
      readout: app.viewbar.readout.textContent,
      zoom: app.viewbar.zoomText.textContent,
      resetHidden: app.viewbar.reset.hidden,
      cursor: app.navigator.cursor ? { row: app.navigator.cursor.row, col: app.navigator.cursor.col } : null,
    }),
    cellCenter(p, row, col) {
      const panel = app.card.panels[p];
      const r = panel.cellRect(row, col);
      const rect = panel.canvas.getBoundingClientRect();
      return { x: rect.left + r.x + r.w / 2, y: rect.top + r.y + r.h / 2, canvasX: r.x + r.w / 2, canvasY: r.y + r.h / 2 };
    },
    // The rendered pixel at a cell's centre, read back from the canvas.
    pixel(p, row, col) {
      const panel = app.card.panels[p];
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
      const panel = app.card.panels[p];
      const c = this.cellCenter(p, row, col);
      const t0 = performance.now();
      panel.setHover({ row, col });
      app.tooltip.update(panel, { row, col }, c.x, c.y);
      return performance.now() - t0;
    },
    redraw() {
      const t0 = performance.now();
      app.draw();
      return performance.now() - t0;
    },
    csv: () => csvText(app.shown, app.state),
    link: () => app.link(),
    // What the legend shows: {scale, cmap, title, reference}.
    legend: () => app.card.legendArgs,
    findings: () => app.findings.snapshot(),
    // The scalar strip: hidden, the tag and scale drawn, its points and the readout.
    strip: () => ({
      hidden: app.strip.root.hidden,
      tag: app.strip.geometry ? app.strip.geometry.tag : null,
      log: app.strip.geometry ? app.strip.geometry.log : null,
      points: app.strip.geometry ? app.strip.geometry.points : 0,
      nonfinite: app.strip.geometry ? app.strip.geometry.nonfinite : [],
      readout: app.strip.readout.textContent,
    }),
    // The findings' marks drawn on panel `p`: marked rows, error ticks, the outlined finding.
    marks(p = 0) {
      const panel = app.card.panels[p];
      if (!panel) return null;
      return { rows: panel.markedRows || [], ticks: panel.ticks || [], highlight: panel.highlighted || null };
    },
    drill: () => ({
      open: app.drill.open,
      layer: app.drill.layer,
      step: app.drill.step,
      hasData: !!app.drill.data,
      histogramStep: app.drill.histogram ? app.drill.histogram.step : null,
    }),
    // Both drill-downs (the other run's when comparing): open, run, layer, data loaded.
    drills: () => app.drills.all.map((d) => ({ open: d.open, run: d.run, layer: d.layer, hasData: !!d.data, meta: d.meta.textContent })),
  };
}

// Downloads of the heatmap: the numbers as CSV (one line per cell, long
// format) and the card's image as PNG (HeatmapCard.image()), named after
// the selection.

import { h } from "./dom.js";

function safeFilename(text) {
  return text.replace(/[^A-Za-z0-9._-]+/g, "_").replace(/^_+|_+$/g, "").slice(0, 80) || "run";
}

function csvField(v) {
  const s = String(v);
  return /[",\n\r]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

// `stepsize_<runs>_<metric>_<stat>`, safe as a file name.
function baseName(state) {
  const runs = state.compare !== "off" && state.run2 ? `${state.run}_vs_${state.run2}` : state.run;
  return `stepsize_${safeFilename(runs)}_${state.metric}_${state.stat}`;
}

// The shown `grids` as CSV: run, layer, first and last step, wall time,
// metric, statistic, value ("nan", "inf", "-inf"; empty when not logged).
export function csvText(grids, { metric, stat }) {
  const lines = [["run", "layer", "step_first", "step_last", "wall_time", "metric", "stat", "value"].join(",")];
  for (const g of grids) {
    const run = g.info.ratioOf ? `${g.info.ratioOf[0]}/${g.info.ratioOf[1]}` : g.info.run;
    const statName = g.info.ratioOf ? stat + "_ratio" : stat;
    for (let i = 0; i < g.rows; i++) {
      const prefix = csvField(run) + "," + csvField(g.layers[i]) + ",";
      for (let j = 0; j < g.cols; j++) {
        const v = g.value(i, j);
        const text = typeof v === "number" ? String(v) : v === "missing" ? "" : v;
        const wall = g.wallTimes.length > j ? g.wallTimes[j] : "";
        lines.push(`${prefix}${g.steps[j]},${g.stepEnds[j]},${wall},${metric},${statName},${text}`);
      }
    }
  }
  return lines.join("\n") + "\n";
}

function download(blob, name) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10000);
}

// Download the card's image (HeatmapCard.image()) as PNG.
export function savePng(card, state) {
  if (!card.panels.length) return;
  card.image().toBlob((blob) => blob && download(blob, baseName(state) + ".png"), "image/png");
}

// Download the shown grids as CSV.
export function saveCsv(grids, state) {
  if (!grids.length) return;
  download(new Blob([csvText(grids, state)], { type: "text/csv" }), baseName(state) + ".csv");
}

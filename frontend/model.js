// The dashboard's data: the one place that asks the plugin's routes and
// decodes their answers (through grid.js), with the tooltip's cache of
// per-cell statistics.  Views get decoded objects, never raw JSON grids.
// What the metrics and statistics are (labels, help texts, order) comes
// from the server's `info` route, as a Catalog.
//
// Every URL is relative: the iframe's <base> is `<prefix>/data/plugin/stepsize/`,
// so "tags" resolves under it whatever `--path_prefix` TensorBoard runs with.

import { Catalog } from "./catalog.js";
import { Grid, StatTable } from "./grid.js";

export class ApiError extends Error {
  constructor(message, status) {
    super(message);
    this.status = status;
  }
}

async function getJson(route, params, signal) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null) query.set(k, String(v));
  }
  const qs = query.toString();
  const url = "./" + route + (qs ? "?" + qs : "");
  let response;
  try {
    response = await fetch(url, { signal, headers: { Accept: "application/json" } });
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(`cannot reach TensorBoard (${e.message})`, 0);
  }
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    if (e.name === "AbortError") throw e;
    throw new ApiError(`${route}: HTTP ${response.status}, not JSON`, response.status);
  }
  if (!response.ok || (body && typeof body === "object" && "error" in body && !Array.isArray(body))) {
    const message = body && body.error ? String(body.error) : `HTTP ${response.status}`;
    throw new ApiError(message, response.status);
  }
  return body;
}

const CELL_CACHE_SIZE = 400;

function cellKey({ run, layer, metric, first, last }) {
  return [run, layer, metric, first, last].join("\u0000");
}

export class Model {
  constructor() {
    this.tags = {};
    this.catalog = null; // until the first reload
    this.cells = new Map();
  }

  // The run listing (`tags`), and the first time the server's `info`; the
  // cell cache is kept (its keys name the run).
  async reload() {
    const [tags, info] = await Promise.all([getJson("tags"), this.catalog ? null : getJson("info")]);
    if (info) this.catalog = new Catalog(info);
    this.tags = tags;
  }

  runs() {
    return Object.keys(this.tags).sort();
  }

  layerInfo(run, layer) {
    return (this.tags[run]?.layer_info || []).find((l) => l.path === layer);
  }

  // One heatmap Grid per run of `runs`, and how long fetching and decoding took.
  async heatmaps(runs, { metric, stat, maxSteps }, signal) {
    const t0 = performance.now();
    const answers = await Promise.all(
      runs.map((run) => getJson("heatmap", { run, metric, stat, max_steps: maxSteps }, signal))
    );
    const t1 = performance.now();
    const grids = answers.map((a) => Grid.fromHeatmap(a));
    return { grids, timings: { fetchMs: t1 - t0, dataArrived: t1, convertMs: performance.now() - t1 } };
  }

  // One layer's statistics over the logged steps (pooled to `maxSteps`
  // columns) and the steps that have a histogram, for the drill-down:
  // `{steps, stepEnds, table, histogramSteps}`.
  async series({ run, layer, metric, maxSteps }, signal) {
    const [d, h] = await Promise.all([
      getJson("layer", { run, layer, metric, max_steps: maxSteps }, signal),
      getJson("histogram_steps", { run, layer, metric }, signal),
    ]);
    return {
      steps: d.steps,
      stepEnds: d.step_ends || d.steps,
      table: new StatTable(d.stats, d.values, d.nonfinite),
      histogramSteps: h.steps,
    };
  }

  // The kept histogram nearest to `step`: `{step, bins}`.
  histogram({ run, layer, metric, step }, signal) {
    return getJson("histogram", { run, layer, metric, step }, signal);
  }

  // What is known of the cell `{run, layer, metric, first, last}` -- all
  // statistics of a layer pooled over the logged steps first..last (a
  // heatmap column), for the tooltip: `{table, row}` (a one-row StatTable),
  // `{loading: true}`, `{error}`, or null when it was never asked for.
  cachedCell(query) {
    const entry = this.cells.get(cellKey(query));
    if (!entry) return null;
    if (entry.error) return { error: entry.error };
    if (!entry.table) return { loading: true };
    return { table: entry.table, row: 0 };
  }

  // Ask the server for the cell (once); resolves when it has answered.
  loadCell(query) {
    const key = cellKey(query);
    let entry = this.cells.get(key);
    if (!entry) {
      entry = { table: null, error: null };
      this.cells.set(key, entry);
      if (this.cells.size > CELL_CACHE_SIZE) this.cells.delete(this.cells.keys().next().value);
      entry.promise = getJson("cell", query)
        .then((d) => (entry.table = StatTable.ofRow(d.stats, d.values, d.nonfinite)))
        .catch((e) => (entry.error = e.message));
    }
    return entry.promise;
  }
}

// The dashboard's data: the one place that asks the plugin's routes and
// decodes their answers (through grid.js), with the tooltip's cache of
// per-cell statistics.  Views get decoded objects, never raw JSON grids.
//
// Every URL is relative: the iframe's <base> is `<prefix>/data/plugin/stepsize/`,
// so "tags" resolves under it whatever `--path_prefix` TensorBoard runs with.

import { Catalog, LOCAL_INFO } from "./catalog.js";
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

export class Model {
  constructor() {
    this.tags = {};
    this.catalog = new Catalog(LOCAL_INFO);
    this.cells = new Map();
  }

  // The run listing (`tags`); the cell cache is kept (its keys name the run).
  async reload() {
    this.tags = await getJson("tags");
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
  // columns) for the drill-down: `{steps, stepEnds, table, histogramSteps}`.
  async series({ run, layer, metric, maxSteps }, signal) {
    const d = await getJson("layer", { run, layer, metric, max_steps: maxSteps }, signal);
    return {
      steps: d.steps,
      stepEnds: d.step_ends || d.steps,
      table: new StatTable(d.stats, d.values, d.nonfinite),
      histogramSteps: d.histogram_steps || [],
    };
  }

  // The kept histogram nearest to `step`: `{step, bins}`.
  histogram({ run, layer, metric, step }, signal) {
    return getJson("histogram", { run, layer, metric, step }, signal);
  }

  // All statistics of `layer` in the heatmap column of steps first..last
  // (grouped as for `maxSteps` columns), for the tooltip: `{table, row}`
  // once known (table null when the server has no such column),
  // `{loading: true}` while it loads -- `onLoad` runs when it arrives --
  // or `{error}`.
  cellStats({ run, layer, metric, first, maxSteps }, onLoad) {
    const key = `${run}\u0000${metric}\u0000${maxSteps}\u0000${layer}`;
    let entry = this.cells.get(key);
    if (!entry) {
      entry = { series: null, error: null };
      this.cells.set(key, entry);
      if (this.cells.size > CELL_CACHE_SIZE) this.cells.delete(this.cells.keys().next().value);
      this.series({ run, layer, metric, maxSteps })
        .then((s) => (entry.series = s))
        .catch((e) => (entry.error = e.message))
        .then(() => onLoad());
    }
    if (entry.error) return { error: entry.error };
    if (!entry.series) return { loading: true };
    const row = entry.series.steps.indexOf(first);
    return row < 0 ? { table: null } : { table: entry.series.table, row };
  }
}

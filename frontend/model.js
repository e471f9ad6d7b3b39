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
    this.perRun = new Map(); // route + run -> promise of its answer (findings, scalars)
  }

  // The run listing (`tags`), and the first time the server's `info`; the
  // cell cache is kept (its keys name the run), findings and scalars are asked again.
  async reload() {
    const [tags, info] = await Promise.all([getJson("tags"), this.catalog ? null : getJson("info")]);
    if (info) this.catalog = new Catalog(info);
    this.tags = tags;
    this.perRun = new Map();
  }

  // `route`'s answer for `run` (decoded by `decode`), asked once per run
  // until the next reload; a failure is asked again next time.
  _perRun(route, run, decode = (x) => x) {
    const key = route + "\u0000" + run;
    if (!this.perRun.has(key)) {
      const answer = getJson(route, { run }).then(decode);
      answer.catch(() => this.perRun.get(key) === answer && this.perRun.delete(key));
      this.perRun.set(key, answer);
    }
    return this.perRun.get(key);
  }

  // The `findings` answer of `run` ({run, findings, thresholds, views}).
  findings(run) {
    return this._perRun("findings", run);
  }

  // The run's ordinary scalars: `{tag: {steps, values}}`, values a
  // Float64Array (NaN / +-Infinity where the value is not finite).
  scalars(run) {
    return this._perRun("scalars", run, (answer) => {
      const out = {};
      for (const [tag, s] of Object.entries(answer.tags || {})) {
        const values = Float64Array.from(s.values, (v) => (v === null ? NaN : v));
        for (const [j, kind] of s.nonfinite || []) values[j] = kind === "inf" ? Infinity : kind === "-inf" ? -Infinity : NaN;
        out[tag] = { steps: s.steps, values };
      }
      return out;
    });
  }

  runs() {
    return Object.keys(this.tags).sort();
  }

  layerInfo(run, layer) {
    return (this.tags[run]?.layer_info || []).find((l) => l.path === layer);
  }

  // One heatmap Grid per run of `runs`, and how long fetching and decoding took.
  // `start` / `end`: the zoomed step range ("" for none); `group`, `expand`,
  // `kind`: the rows (state.js).
  async heatmaps(runs, { metric, stat, maxSteps, start, end, group, expand, kind }, signal) {
    const t0 = performance.now();
    const range = { start_step: start || null, end_step: end || null };
    const rows = { group_depth: group || null, expand: group && expand ? expand : null, kind: kind || null };
    const answers = await Promise.all(
      runs.map((run) => getJson("heatmap", { run, metric, stat, max_steps: maxSteps, ...range, ...rows }, signal))
    );
    const t1 = performance.now();
    const grids = answers.map((a) => Grid.fromHeatmap(a));
    for (const grid of grids) Object.assign(grid.info, { maxSteps, range }); // the tooltip's cells are columns of this grid
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

// The order and labels of a heatmap's rows: sorting (model order, by the
// value in one column, by the mean over the columns shown, by name) and,
// when rows are too thin to label each, which rows get a label (their
// module's).  Pure: no DOM (tests/browser/test_frontend_units.py).

import { Grid, KIND } from "./grid.js";
import { layerFilter, rowRange } from "./state.js";

// Sort key of row i for `mode`; larger first, NaN (no value) last.
function rowKey(grid, i, mode, col) {
  const { cols, values, kinds } = grid;
  if (mode === "value") {
    const k = i * cols + col;
    return kinds[k] === KIND.finite || kinds[k] === KIND.inf ? values[k] : NaN;
  }
  let sum = 0;
  let n = 0;
  for (let k = i * cols; k < (i + 1) * cols; k++) {
    if (kinds[k] !== KIND.finite) continue;
    sum += values[k];
    n++;
  }
  return n ? sum / n : NaN;
}

// Row indices of `grid` in `mode`'s order ("model", "value" -- the value in
// column `col` --, "mean" -- over all columns shown --, "name").  A group
// row keeps its listed members right after it (sorted the same way among
// themselves), so sorting moves whole modules.  Ties keep model order.
export function sortRows(grid, mode, col = grid.cols - 1) {
  const n = grid.rows;
  const order = Array.from({ length: n }, (_, i) => i);
  if (mode === "model" || !SORT_MODES.includes(mode) || n === 0) return order;
  const keys = mode === "name" ? grid.layers : order.map((i) => rowKey(grid, i, mode, Math.max(0, Math.min(col, grid.cols - 1))));
  const compare = (a, b) => {
    if (mode === "name") return keys[a] < keys[b] ? -1 : keys[a] > keys[b] ? 1 : a - b;
    const ka = keys[a];
    const kb = keys[b];
    if (Number.isNaN(ka) || Number.isNaN(kb)) return Number.isNaN(ka) - Number.isNaN(kb) || a - b;
    return kb - ka || a - b;
  };
  // Units: a group row with its members, or one row.
  const units = [];
  for (let i = 0; i < n; i++) {
    const isMember = grid.rowMembers[i] === 0 && grid.rowGroups[i] !== "" && units.length && units[units.length - 1].group === grid.rowGroups[i];
    if (isMember) units[units.length - 1].members.push(i);
    else units.push({ head: i, group: grid.rowMembers[i] > 0 ? grid.rowGroups[i] : null, members: [] });
  }
  units.sort((a, b) => compare(a.head, b.head));
  return units.flatMap((u) => [u.head, ...u.members.sort(compare)]);
}

export const SORT_MODES = ["model", "value", "mean", "name"];

// The module of `path` at `depth` components ("" if the path is not deeper).
function moduleOf(path, depth) {
  const parts = path.split("/");
  return parts.length > depth ? parts.slice(0, depth).join("/") : "";
}

// Which rows to label when only every `every`-th row has room.  Group rows
// (`rowMembers[i] > 0`) are labelled by `label(i)`; the other rows by their
// module (`a/b/*`) at the deepest path depth whose modules each take one
// run of rows and leave `every` rows per label -- in model order, the
// first row of each module with room for it; a group's listed members (`rowGroups[i]`) by a
// module deeper than their group.  When no depth does (rows sorted across
// modules), every `every`-th row by `label(i)`.  Returns {modules (module
// labels used), items: [{row, text, top (the label marks the rows from
// here down)}]}, labels at least `every` rows apart.
export function moduleLabels(layers, rowMembers, every, label = (i) => layers[i], rowGroups = null) {
  const n = layers.length;
  const groupDepth = (i) => (rowGroups && rowGroups[i] && rowMembers[i] === 0 ? rowGroups[i].split("/").length : 0);
  const keyAt = (i, d) => {
    if (rowMembers[i] > 0) return label(i);
    if (d <= groupDepth(i)) return null; // no deeper than the group labelled above
    const m = moduleOf(layers[i], d);
    return m && m + "/*";
  };
  const keysAt = (d) => {
    const keys = layers.map((_, i) => keyAt(i, d));
    return keys.includes(null) ? null : keys;
  };
  const fits = (keys) => {
    const seen = new Set();
    let runs = 0;
    for (let i = 0; i < n; i++) {
      if (!keys[i] || (i > 0 && keys[i] === keys[i - 1])) continue;
      runs++;
      if (seen.has(keys[i])) return false; // a module split by sorting
      seen.add(keys[i]);
    }
    return runs > 1 && runs <= Math.ceil(n / every); // one module for all is no label
  };
  let keys = null;
  const deepest = Math.max(0, ...layers.slice(0, 2000).map((p) => p.split("/").length - 1));
  for (let d = deepest; d >= 1 && !keys; d--) {
    const candidate = keysAt(d);
    if (candidate && fits(candidate)) keys = candidate;
  }
  const items = [];
  let last = -Infinity;
  for (let i = 0; i < n; i++) {
    // a module's label goes on its first row with room (modules are runs of rows here)
    const start = keys ? keys[i] && (!items.length || keys[i] !== items[items.length - 1].text) : i % every === 0 || rowMembers[i] > 0;
    if (!start || i - last < every) continue;
    items.push({ row: i, text: keys ? keys[i] : label(i), top: !!keys && rowMembers[i] === 0 });
    last = i;
  }
  return { modules: !!keys, items };
}

// The column of `grid` holding logged step `step` ("" or none: the last).
function columnOf(grid, step) {
  if (step === "" || step === undefined) return grid.cols - 1;
  const s = Number(step);
  const j = grid.steps.findIndex((first, k) => first <= s && s <= grid.stepEnds[k]);
  return j >= 0 ? j : grid.cols - 1;
}

// The grids as drawn from the fetched `grids` and the selection `st`:
// filtered (st.filter), for "ratio" combined into one, sorted (st.sort; the
// other run's rows in the first one's order), then the zoomed rows
// (st.rows).  Returns {grids, filter: {error, shown, total}, rows: {offset,
// shown, total}}.
export function arrangeRows(grids, st) {
  const filter = layerFilter(st.filter);
  let shown = grids.map((g) => g.filtered(filter.test));
  const filterInfo = { error: filter.error, shown: shown[0] ? shown[0].rows : 0, total: grids[0] ? grids[0].rows : 0 };
  if (st.compare === "ratio" && shown.length === 2) shown = [Grid.ratio(shown[0], shown[1])];
  const first = shown[0];
  let order = first ? sortRows(first, st.sort, columnOf(first, st.step)) : [];
  const total = order.length;
  const range = rowRange(st.rows, total);
  if (range) order = order.slice(range[0], range[1] + 1);
  const identity = order.length === total && order.every((r, i) => r === i);
  if (!identity) {
    const names = order.map((r) => first.layers[r]);
    shown = shown.map((g, k) => {
      if (k === 0) return g.rowsOf(order);
      const rowOf = new Map(g.layers.map((p, i) => [p, i]));
      return g.rowsOf(names.map((p) => rowOf.get(p)).filter((r) => r !== undefined));
    });
  }
  return { grids: shown, filter: filterInfo, rows: { offset: range ? range[0] : 0, shown: order.length, total } };
}

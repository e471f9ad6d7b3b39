// The decoded data the views draw: the one decoder of the server's grid
// encoding, the heatmap `Grid` and the per-layer `StatTable`.  Pure (no DOM;
// tests/browser/test_frontend_units.py checks it).
//
// The server sends a grid as nested lists `values` with null where a cell
// is not logged *or* not finite, plus `nonfinite`, the `[index..., kind]` of
// the non-finite cells (kind "nan" | "inf" | "-inf"): JSON has no NaN.  Here
// that becomes a Float64Array of values and a Uint8Array of KIND per cell.

export const KIND = { finite: 0, nan: 1, inf: 2, "-inf": 3, missing: 4 };
const KIND_NAMES = ["finite", "nan", "inf", "-inf", "missing"];

// `rows` x `cols` cells of the nested lists `nested` and the `[row, col, kind]`
// entries of `nonfinite`, row-major.  Short or absent rows are missing cells;
// entries outside the table are ignored.
function decodeTable(nested, nonfinite, rows, cols) {
  const values = new Float64Array(rows * cols);
  const kinds = new Uint8Array(rows * cols);
  for (let i = 0; i < rows; i++) {
    const row = (nested && nested[i]) || [];
    const base = i * cols;
    for (let j = 0; j < cols; j++) {
      const v = row[j];
      if (v === null || v === undefined) {
        values[base + j] = NaN;
        kinds[base + j] = KIND.missing;
      } else {
        values[base + j] = v;
      }
    }
  }
  for (const [i, j, kind] of nonfinite || []) {
    if (i < rows && j < cols) {
      kinds[i * cols + j] = KIND[kind] ?? KIND.nan;
      values[i * cols + j] = kind === "inf" ? Infinity : kind === "-inf" ? -Infinity : NaN;
    }
  }
  return { values, kinds };
}

function cellValue(values, kinds, k) {
  const kind = kinds[k];
  return kind === KIND.finite ? values[k] : KIND_NAMES[kind];
}

// A grid of one run (or a ratio of two) ready to draw.  `values` is
// row-major Float64Array (rows x cols), `kinds` a Uint8Array of KIND.
// `rowMembers[i]`: how many layers row i pools (0: a layer's own row),
// `rowGroups[i]`: its group ("" for none) -- the server's row grouping.
export class Grid {
  constructor({ layers, steps, stepEnds, wallTimes, values, kinds, info, rowMembers, rowGroups }) {
    this.layers = layers;
    this.rowMembers = rowMembers || layers.map(() => 0);
    this.rowGroups = rowGroups || layers.map(() => "");
    this.steps = steps;
    this.stepEnds = stepEnds;
    this.wallTimes = wallTimes;
    this.values = values;
    this.kinds = kinds;
    this.info = info || {};
    this.rows = layers.length;
    this.cols = steps.length;
  }

  // From a `heatmap` answer.
  static fromHeatmap(answer) {
    const { values, kinds } = decodeTable(answer.values, answer.nonfinite, answer.layers.length, answer.steps.length);
    return new Grid({
      layers: answer.layers,
      steps: answer.steps,
      stepEnds: answer.step_ends || answer.steps,
      wallTimes: answer.wall_times || [],
      values,
      kinds,
      rowMembers: answer.row_members,
      rowGroups: answer.row_groups,
      info: { run: answer.run, metric: answer.metric, stat: answer.stat, pooling: answer.pooling, numLayers: answer.num_layers },
    });
  }

  // The rows whose path passes `test` (this grid itself when all do); each
  // subset is made once, so redrawing with the same filter costs nothing.
  filtered(test) {
    const rows = [];
    this.layers.forEach((p, i) => test(p) && rows.push(i));
    if (rows.length === this.rows) return this;
    return this.rowsOf(rows);
  }

  // `subset(rowIndices)`, made once per list of rows (a redraw with the same
  // filter or row order costs nothing; the last few lists are kept).
  rowsOf(rowIndices) {
    const key = rowIndices.join(",");
    if (!this._subsets) this._subsets = new Map();
    if (!this._subsets.has(key)) {
      this._subsets.set(key, this.subset(rowIndices));
      if (this._subsets.size > 8) this._subsets.delete(this._subsets.keys().next().value);
    }
    return this._subsets.get(key);
  }

  // The rows whose index is in `rowIndices` (filtering keeps model order).
  subset(rowIndices) {
    const cols = this.cols;
    const values = new Float64Array(rowIndices.length * cols);
    const kinds = new Uint8Array(rowIndices.length * cols);
    rowIndices.forEach((r, i) => {
      values.set(this.values.subarray(r * cols, (r + 1) * cols), i * cols);
      kinds.set(this.kinds.subarray(r * cols, (r + 1) * cols), i * cols);
    });
    const pick = (list) => rowIndices.map((r) => list[r]);
    const g = new Grid({
      ...this,
      layers: pick(this.layers),
      rowMembers: pick(this.rowMembers),
      rowGroups: pick(this.rowGroups),
      values,
      kinds,
    });
    g.sourceRows = rowIndices;
    // Every row in another order (a sort): the same values, so the same range
    // (computed once for all the orders a user sorts by).
    if (rowIndices.length === this.rows && new Set(rowIndices).size === this.rows) g._range = this.range();
    return g;
  }

  // A number, or "nan" | "inf" | "-inf" | "missing".
  value(row, col) {
    return cellValue(this.values, this.kinds, row * this.cols + col);
  }

  // Smallest positive and largest finite value (computed once).
  range() {
    if (!this._range) this._range = this._computeRange();
    return this._range;
  }

  _computeRange() {
    let lo = Infinity;
    let hi = -Infinity;
    const { values, kinds } = this;
    for (let k = 0; k < values.length; k++) {
      if (kinds[k] !== KIND.finite) continue;
      const v = values[k];
      if (v > 0 && v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return { lo: lo === Infinity ? null : lo, hi: hi === -Infinity || hi <= 0 ? null : hi };
  }

  // Column j of the ratio grid a / b: rows matched by layer path, columns by
  // the b column whose step range holds a's first step.
  static ratio(a, b) {
    const rowOfB = new Map(b.layers.map((p, i) => [p, i]));
    const rows = a.layers.map((p, i) => [i, rowOfB.get(p)]).filter(([, rb]) => rb !== undefined);
    const colOfB = a.steps.map((s) => {
      let lo = 0;
      let hi = b.cols - 1;
      let found = -1;
      while (lo <= hi) {
        const mid = (lo + hi) >> 1;
        if (b.steps[mid] <= s) {
          found = mid;
          lo = mid + 1;
        } else hi = mid - 1;
      }
      return found >= 0 && s <= b.stepEnds[found] ? found : -1;
    });
    const cols = a.cols;
    const values = new Float64Array(rows.length * cols);
    const kinds = new Uint8Array(rows.length * cols);
    const parts = new Array(rows.length * cols);
    rows.forEach(([ra, rb], i) => {
      for (let j = 0; j < cols; j++) {
        const k = i * cols + j;
        const va = a.value(ra, j);
        const jb = colOfB[j];
        const vb = jb >= 0 ? b.value(rb, jb) : "missing";
        parts[k] = [va, vb];
        if (va === "missing" || vb === "missing") {
          kinds[k] = KIND.missing;
          values[k] = NaN;
        } else if (typeof va === "string") {
          kinds[k] = KIND[va]; // a non-finite numerator stays what it was
          values[k] = va === "inf" ? Infinity : va === "-inf" ? -Infinity : NaN;
        } else if (typeof vb === "string" || (va === 0 && vb === 0)) {
          kinds[k] = KIND.nan;
          values[k] = NaN;
        } else if (vb === 0) {
          kinds[k] = KIND.inf;
          values[k] = Infinity;
        } else {
          values[k] = va / vb;
        }
      }
    });
    const g = new Grid({
      layers: rows.map(([ra]) => a.layers[ra]),
      rowMembers: rows.map(([ra]) => a.rowMembers[ra]),
      rowGroups: rows.map(([ra]) => a.rowGroups[ra]),
      steps: a.steps,
      stepEnds: a.stepEnds,
      wallTimes: a.wallTimes,
      values,
      kinds,
      info: { ...a.info, ratioOf: [a.info.run, b.info.run] },
    });
    g.parts = parts;
    return g;
  }
}

// Statistics (columns, named `stats`) of one layer at a series of logged
// steps (rows): the drill-down's series, or the tooltip's one cell.
export class StatTable {
  constructor(stats, nested, nonfinite) {
    this.stats = stats;
    this.rows = nested ? nested.length : 0;
    this.index = new Map(stats.map((s, i) => [s, i]));
    Object.assign(this, decodeTable(nested, nonfinite, this.rows, stats.length));
  }

  // One row: `values` a list per statistic, `nonfinite` its `[stat, kind]` entries.
  static ofRow(stats, values, nonfinite) {
    return new StatTable(stats, [values], (nonfinite || []).map(([s, kind]) => [0, s, kind]));
  }

  has(stat) {
    return this.index.has(stat);
  }

  // A number, "nan" | "inf" | "-inf", null where not logged, undefined for
  // a statistic the table does not have.
  get(row, stat) {
    const s = this.index.get(stat);
    if (s === undefined || row < 0 || row >= this.rows) return undefined;
    const v = cellValue(this.values, this.kinds, row * this.stats.length + s);
    return v === "missing" ? null : v;
  }
}

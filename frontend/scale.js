// The colour scale: which values the colours stand for.  Pure (no DOM):
// the heatmap, the legend and the drill-down draw with it, and
// tests/browser/test_frontend_units.py checks it.

import { CODE, LUT_SIZE } from "./colormaps.js";
import { formatValue } from "./format.js";
import { KIND } from "./grid.js";

// A log10 scale from [lo, hi] (both > 0) onto [0, 1]; an invalid domain
// falls back to [1e-8, 1], an empty one is widened by sqrt(2) each way.
export class LogScale {
  constructor(lo, hi) {
    if (!(lo > 0) || !(hi > 0) || !isFinite(lo) || !isFinite(hi)) {
      lo = 1e-8;
      hi = 1;
    }
    if (hi < lo) [lo, hi] = [hi, lo];
    if (hi === lo) {
      lo = lo / Math.SQRT2;
      hi = hi * Math.SQRT2;
    }
    this.lo = lo;
    this.hi = hi;
    this.l0 = Math.log10(lo);
    this.l1 = Math.log10(hi);
  }

  // Position of v in [0, 1] (clamped); NaN for v <= 0.
  t(v) {
    if (!(v > 0)) return NaN;
    const t = (Math.log10(v) - this.l0) / (this.l1 - this.l0);
    return t < 0 ? 0 : t > 1 ? 1 : t;
  }

  value(t) {
    return 10 ** (this.l0 + t * (this.l1 - this.l0));
  }

  // Tick values for an axis or legend: decades, plus 2 and 5 when few.
  ticks(maxTicks = 8) {
    const d0 = Math.ceil(this.l0 - 1e-9);
    const d1 = Math.floor(this.l1 + 1e-9);
    const decades = d1 - d0 + 1;
    let out = [];
    if (decades >= 2) {
      const every = Math.max(1, Math.ceil(decades / maxTicks));
      for (let d = d0; d <= d1; d++) if ((d - d0) % every === 0) out.push(10 ** d);
      if (decades * 3 <= maxTicks) {
        out = [];
        for (let d = Math.floor(this.l0); d <= d1; d++) {
          for (const m of [1, 2, 5]) {
            const v = m * 10 ** d;
            if (v >= this.lo * 0.999 && v <= this.hi * 1.001) out.push(v);
          }
        }
      }
    } else {
      // Less than two decades: 1-2-5 or finer mantissas.
      const ms = [1, 1.5, 2, 3, 4, 5, 6, 7, 8, 9];
      for (let d = Math.floor(this.l0); d <= Math.ceil(this.l1); d++) {
        for (const m of ms) {
          const v = m * 10 ** d;
          if (v >= this.lo * 0.999 && v <= this.hi * 1.001) out.push(v);
        }
      }
      while (out.length > maxTicks) out = out.filter((_, i) => i % 2 === 0);
    }
    return out;
  }
}

// The scale of the shown `grids` (grid.js), and the note the sidebar shows
// under the range controls.  Auto: smallest positive to largest finite value
// of all grids (one scale for side-by-side runs), widened to keep the
// metric's `reference` level on it when the data is within three decades of
// it.  `range: "fixed"` uses `lo`..`hi` (strings, as typed) when
// 0 < lo < hi.  A ratio grid gets a range symmetric around 1.
export function colourScale(grids, { range = "auto", lo: fixedLo = "", hi: fixedHi = "", reference = null } = {}) {
  if (grids[0] && grids[0].info.ratioOf) {
    let m = 0;
    const { values, kinds } = grids[0];
    for (let k = 0; k < values.length; k++) {
      if (kinds[k] === KIND.finite && values[k] > 0) m = Math.max(m, Math.abs(Math.log10(values[k])));
    }
    m = Math.max(m, 0.1);
    return { scale: new LogScale(10 ** -m, 10 ** m), note: "Ratios use a symmetric range around 1." };
  }
  let lo = Infinity;
  let hi = -Infinity;
  for (const g of grids) {
    const r = g.range();
    if (r.lo !== null) lo = Math.min(lo, r.lo);
    if (r.hi !== null) hi = Math.max(hi, r.hi);
  }
  if (lo === Infinity) {
    lo = 1e-8;
    hi = 1;
  }
  if (reference && reference.value >= lo / 1000 && reference.value <= hi * 1000) {
    lo = Math.min(lo, reference.value);
    hi = Math.max(hi, reference.value);
  }
  if (range === "fixed") {
    const flo = parseFloat(fixedLo);
    const fhi = parseFloat(fixedHi);
    if (flo > 0 && fhi > flo) {
      return { scale: new LogScale(flo, fhi), note: `Data: ${formatValue(lo)} to ${formatValue(hi)}.` };
    }
    return { scale: new LogScale(lo, hi), note: "Fixed range needs 0 < min < max; using auto." };
  }
  return { scale: new LogScale(lo, hi), note: "" };
}

// Uint16 cell codes (LUT index, or a special colour of CODE) of a whole grid.
export function computeCodes(grid, scale) {
  const { values, kinds } = grid;
  const codes = new Uint16Array(values.length);
  const l0 = scale.l0;
  const inv = LUT_SIZE / (scale.l1 - scale.l0);
  const LOG10E = Math.LOG10E;
  const kindCode = new Uint16Array(KIND.missing + 1);
  for (const name of ["nan", "inf", "-inf", "missing"]) kindCode[KIND[name]] = CODE[name];
  const finite = KIND.finite;
  for (let k = 0; k < values.length; k++) {
    const kind = kinds[k];
    if (kind !== finite) {
      codes[k] = kindCode[kind];
      continue;
    }
    const v = values[k];
    if (v === 0) {
      codes[k] = CODE.zero;
    } else if (v < 0) {
      codes[k] = 0;
    } else {
      const i = Math.floor((Math.log(v) * LOG10E - l0) * inv);
      codes[k] = i < 0 ? 0 : i >= LUT_SIZE ? LUT_SIZE - 1 : i;
    }
  }
  return codes;
}

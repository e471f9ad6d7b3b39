// How numbers read on the page.  Pure functions (no DOM), shared by every
// view so that a value looks the same in the legend, the tooltip, the
// drill-down and the axes.

// Compact, exact-enough numbers: 1.23e-4, 0.0123, 12.3, 1.2e+6.
export function formatValue(v, digits = 3) {
  if (v === null || v === undefined) return "missing";
  if (typeof v === "string") return v;
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "\u2212Inf";
  if (v === 0) return "0";
  const a = Math.abs(v);
  if (a >= 1e-2 && a < 1e4) return String(Number(v.toPrecision(digits)));
  return v.toExponential(digits - 1).replace(/\.?0+e/, "e");
}

// Tick labels: "1e-3", "2e-3", "0.01", "1".
export function formatTick(v) {
  const e = Math.floor(Math.log10(v) + 1e-9);
  const m = Math.round(v / 10 ** e);
  if (e >= -2 && e <= 3) return String(Number(v.toPrecision(2)));
  return `${m}e${e}`;
}

// Seconds as "4.5s", "12s", "3m05s", "2h10m".
export function formatDuration(seconds) {
  const s = Math.round(seconds);
  if (Math.abs(seconds) < 10 && seconds !== s) return seconds.toFixed(1) + "s";
  if (s < 60) return s + "s";
  if (s < 3600) return Math.floor(s / 60) + "m" + (s % 60 ? String(s % 60).padStart(2, "0") + "s" : "");
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return h + "h" + (m ? String(m).padStart(2, "0") + "m" : "");
}

// Enough digits to recognise a float32 value exactly (the tooltip's number).
export function formatExact(v) {
  if (v === 0) return "0 (exactly)";
  const a = Math.abs(v);
  return a >= 1e-3 && a < 1e5 ? String(Number(v.toPrecision(6))) : v.toExponential(5).replace(/\.?0+e/, "e");
}

// A cell that holds no number, in words: a kind of grid.js ("nan", "inf",
// "-inf", "missing"); numbers pass through.
export function describeKind(kind) {
  if (typeof kind === "number") return kind;
  return { nan: "NaN", inf: "+Inf", "-inf": "\u2212Inf", missing: "not logged", finite: "?" }[kind] || String(kind);
}

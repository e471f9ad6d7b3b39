// The selection (what the dashboard shows) and its two URL forms.  Pure: no
// DOM, no window, so tests/browser/test_frontend_units.py checks it alone.
//
// The iframe's own hash holds the selection as `run=a&metric=step&...`;
// TensorBoard's URL holds it as `#stepsize&p.stepsize.run=a&...` (the form
// TensorBoard's plugin host uses for plugin data), so a link to the page
// reopens this view.  Only values that differ from DEFAULTS are written.

import { SEQUENTIAL } from "./colormaps.js";

export const PLUGIN = "stepsize";

export const DEFAULTS = Object.freeze({
  run: "",
  metric: "step",
  stat: "p50",
  filter: "",
  x: "step",
  cmap: "viridis",
  range: "auto",
  lo: "",
  hi: "",
  compare: "off",
  run2: "",
  layer: "",
  step: "",
  finding: "", // the id of the finding shown (findings.js findingId)
  scalar: "", // the scalar tag on the strip ("": stepsize/loss or the first)
  scalar_scale: "linear",
  // Big models (viewbar.js, navigate.js): the zoomed step range (logged steps,
  // inclusive), the zoomed rows ("first-last" indices of the rows shown),
  // rows grouped at a path depth, the groups listed (a JSON list), a
  // variable kind, the row order.
  start: "",
  end: "",
  rows: "",
  group: "",
  expand: "",
  kind: "",
  sort: "model",
});

export const SORTS = ["model", "value", "mean", "name"];
export const KINDS = ["", "kernel", "bias", "norm", "embedding", "other"];

// Keys whose value must be one of a few; anything else in a URL is ignored.
const CHOICES = {
  x: ["step", "wall"],
  cmap: SEQUENTIAL,
  range: ["auto", "fixed"],
  compare: ["off", "side", "ratio"],
  scalar_scale: ["linear", "log"],
  sort: SORTS,
  kind: KINDS,
};

// Keys whose value must match a pattern.
const PATTERNS = {
  start: /^[0-9]{1,15}$/,
  end: /^[0-9]{1,15}$/,
  rows: /^[0-9]{1,7}-[0-9]{1,7}$/,
  group: /^([1-9]|[12][0-9]|3[0-2])$/,
  expand: /^\[.*\]$/s,
};

// The known keys of `entries` (`[key, value]` pairs) with valid string
// values; the first of repeated keys wins.
export function parseEntries(entries) {
  const out = {};
  for (const [key, value] of entries) {
    if (!Object.hasOwn(DEFAULTS, key) || Object.hasOwn(out, key) || typeof value !== "string") continue;
    if (CHOICES[key] && !CHOICES[key].includes(value)) continue;
    if (PATTERNS[key] && value !== "" && !PATTERNS[key].test(value)) continue;
    out[key] = value;
  }
  return out;
}

// The iframe's hash (`#run=a&x=wall`).
export function fromHash(hash) {
  return parseEntries(new URLSearchParams(String(hash).replace(/^#/, "")));
}

// The decoded key of a TensorBoard hash entry `key=value`; null when it has
// no "=" or a malformed %-escape.
function hostKey(part) {
  const eq = part.indexOf("=");
  if (eq < 0) return null;
  try {
    return decodeURIComponent(part.slice(0, eq));
  } catch (e) {
    return null;
  }
}

// TensorBoard's hash: only its `p.stepsize.*` entries count.
export function fromHostHash(hash) {
  const prefix = `p.${PLUGIN}.`;
  const entries = [];
  for (const part of String(hash).replace(/^#/, "").split("&")) {
    const key = hostKey(part);
    if (key === null || !key.startsWith(prefix)) continue;
    try {
      entries.push([key.slice(prefix.length), decodeURIComponent(part.slice(part.indexOf("=") + 1).replace(/\+/g, " "))]);
    } catch (e) {
      // a malformed %-escape: skip that entry
    }
  }
  return parseEntries(entries);
}

// The entries worth a URL: what differs from DEFAULTS and is not empty; the
// other run only when comparing, the fixed range only when it is used.
export function linkParams(state) {
  const out = {};
  for (const [k, v] of Object.entries(state)) {
    if (Object.hasOwn(DEFAULTS, k) && v !== DEFAULTS[k] && v !== "") out[k] = v;
  }
  if (state.compare === "off") delete out.run2;
  if (!state.group) delete out.expand;
  if (state.range !== "fixed") {
    delete out.lo;
    delete out.hi;
  }
  return out;
}

// The iframe's hash of `state`, without "#".
export function toHash(state) {
  return new URLSearchParams(linkParams(state)).toString();
}

// `params` as TensorBoard hash entries `p.stepsize.key=value`.
export function hostEntries(params) {
  const out = [];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    out.push(`p.${PLUGIN}.${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  }
  return out;
}

// TensorBoard's `hash` with our entries replaced by `params`'; null while
// another tab is shown (its hash is not ours to change).
export function withHostEntries(hash, params) {
  const parts = String(hash).replace(/^#/, "").split("&").filter((p) => p !== "");
  if (parts[0] !== PLUGIN) return null;
  const ours = (p) => (hostKey(p) || "").startsWith(`p.${PLUGIN}.`);
  const kept = parts.filter((p) => !ours(p));
  return "#" + kept.concat(hostEntries(params)).join("&");
}

// The statistic to show of `stats`: the current one if there, else the one
// chosen last among the quantiles (`preferred`), else the median, else the first.
export function pickStat(stats, current, preferred) {
  if (stats.includes(current)) return current;
  if (stats.includes(preferred)) return preferred;
  return stats.includes("p50") ? "p50" : stats[0];
}

// `state` made valid for the runs of a `tags` answer: a listed run (the
// first with data when the chosen one is gone), another run to compare
// with, a metric and a statistic the run has.  Returns a new object.
export function resolve(state, tags, preferredStat) {
  const out = { ...state };
  const runs = Object.keys(tags).sort();
  if (!runs.includes(out.run)) out.run = runs.find((r) => tags[r].num_steps > 0) || runs[0] || "";
  if (!runs.includes(out.run2) || out.run2 === out.run) out.run2 = runs.find((r) => r !== out.run) || "";
  const entry = tags[out.run];
  const metrics = entry ? entry.metrics : [];
  if (metrics.length && !metrics.includes(out.metric)) out.metric = metrics[0];
  const stats = entry && entry.stats[out.metric] ? entry.stats[out.metric] : [];
  if (stats.length) out.stat = pickStat(stats, out.stat, preferredStat);
  return out;
}

// The layer filter typed in the sidebar: "/regex/flags" or a
// case-insensitive substring.  `{test(path), error}`; an invalid regex
// keeps every layer and says why.
export function layerFilter(text) {
  const t = String(text).trim();
  if (!t) return { test: () => true, error: null };
  const m = /^\/(.*)\/([imsu]*)$/.exec(t);
  if (m && m[1]) {
    try {
      const re = new RegExp(m[1], m[2]);
      return { test: (s) => re.test(s), error: null };
    } catch (e) {
      return { test: () => true, error: e.message };
    }
  }
  const needle = t.toLowerCase();
  return { test: (s) => s.toLowerCase().includes(needle), error: null };
}

// The groups listed (`state.expand`, a JSON list of names) as an array.
export function expandedGroups(state) {
  try {
    const names = JSON.parse(state.expand || "[]");
    return Array.isArray(names) ? names.filter((n) => typeof n === "string") : [];
  } catch (e) {
    return [];
  }
}

// `state.rows` ("first-last") as [first, last] within `count` rows, or null.
export function rowRange(text, count) {
  const m = /^([0-9]+)-([0-9]+)$/.exec(String(text));
  if (!m || count <= 0) return null;
  const first = Math.min(Number(m[1]), count - 1);
  const last = Math.min(Math.max(first, Number(m[2])), count - 1);
  return first === 0 && last === count - 1 ? null : [first, last];
}

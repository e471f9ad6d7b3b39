// What the dashboard makes of a run's findings (the `findings` route): the
// panel's texts, where a finding is seen (metric, statistic, rows, step
// columns) and the heatmap's marks.  Pure: no DOM, so
// tests/browser/test_frontend_units.py checks it alone.  Which heatmap
// shows which kind is the server's table (`views`, from findings.py), not
// decided here.

import { pickStat } from "./state.js";

export const SEVERITIES = ["error", "warning", "info"];
const NOUNS = { error: ["error", "errors"], warning: ["warning", "warnings"], info: ["info", "info"] };
// Text and a shape for each severity: the colour is never the only sign.
export const SEVERITY_LABEL = { error: "\u2716 Error", warning: "\u25b2 Warning", info: "\u25cf Info" };

// A severity the page knows (anything else is shown as info).
export function severityOf(finding) {
  return SEVERITIES.includes(finding.severity) ? finding.severity : "info";
}

// A finding's name in the URL: kind, layer ("" for the whole run), first step.
export function findingId(finding) {
  return [finding.kind, finding.layer ?? "", finding.first_step].join(":");
}

// Most severe first, then by first step; otherwise the server's order.
export function ordered(findings) {
  const rank = (f) => SEVERITIES.indexOf(severityOf(f));
  return findings
    .map((f, i) => [f, i])
    .sort(([a, i], [b, j]) => rank(a) - rank(b) || a.first_step - b.first_step || i - j)
    .map(([f]) => f);
}

// The panel's one-line count: "No findings", "3 findings: 1 error, 2 warnings".
export function summaryText(findings) {
  if (!findings.length) return "No findings";
  const parts = [];
  for (const s of SEVERITIES) {
    const n = findings.filter((f) => severityOf(f) === s).length;
    if (n) parts.push(`${n} ${NOUNS[s][n === 1 ? 0 : 1]}`);
  }
  return `${findings.length} finding${findings.length === 1 ? "" : "s"}: ${parts.join(", ")}`;
}

// "step 240" or "steps 240\u2013600".
export function stepRangeText(finding) {
  const { first_step: a, last_step: b } = finding;
  return a === b ? `step ${a}` : `steps ${a}\u2013${b}`;
}

// Where a finding shows: `{metric, stat}` of the run (`stats`: its
// `{metric: [stat names]}`) from the served `views` table, else the
// finding's own metric with the statistic `current` or a median; null if
// the run has neither metric.
export function viewOf(finding, views, stats, current) {
  const view = (views || {})[finding.kind];
  if (view && stats[view.metric] && stats[view.metric].includes(view.stat)) return { metric: view.metric, stat: view.stat };
  for (const metric of [view && view.metric, finding.metric]) {
    if (metric && stats[metric] && stats[metric].length) return { metric, stat: pickStat(stats[metric], current, current) };
  }
  return null;
}

// The layers a finding concerns (every layer it names; for a whole-run
// finding, the layers it lists -- all of them).
export function layersOf(finding) {
  if (finding.layers && finding.layers.length) return finding.layers;
  return finding.layer ? [finding.layer] : [];
}

// Per layer, the most severe of its findings' severities (the row markers).
export function rowMarkers(findings) {
  const out = new Map();
  for (const f of findings) {
    const s = severityOf(f);
    for (const layer of layersOf(f)) {
      const had = out.get(layer);
      if (had === undefined || SEVERITIES.indexOf(s) < SEVERITIES.indexOf(had)) out.set(layer, s);
    }
  }
  return out;
}

// The onset steps of the errors (ticks on the step axis), sorted, once each.
export function errorOnsets(findings) {
  const steps = new Set(findings.filter((f) => severityOf(f) === "error").map((f) => f.first_step));
  return [...steps].sort((a, b) => a - b);
}

// The columns `[c0, c1]` of a (possibly pooled) step axis -- column j holds
// the logged steps `firsts[j]..ends[j]`, increasing -- that overlap the
// steps `first..last`; null if none does.
export function columnSpan(firsts, ends, first, last) {
  const n = firsts.length;
  let lo = 0;
  let hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (ends[mid] < first) lo = mid + 1;
    else hi = mid;
  }
  const c0 = lo;
  lo = 0;
  hi = n;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (firsts[mid] <= last) lo = mid + 1;
    else hi = mid;
  }
  const c1 = lo - 1;
  return c0 <= c1 ? [c0, c1] : null;
}

// The heatmap's marks for `findings` with `selected` (an id or ""):
// `{rows: Map layer -> severity, ticks: [steps], highlight: {layers, first,
// last, severity, whole} | null}`.
export function marksOf(findings, selected) {
  const chosen = selected ? findings.find((f) => findingId(f) === selected) : null;
  return {
    rows: rowMarkers(findings),
    ticks: errorOnsets(findings),
    highlight: chosen
      ? {
          layers: layersOf(chosen),
          first: chosen.first_step,
          last: chosen.last_step,
          severity: severityOf(chosen),
          whole: chosen.layer === null || chosen.layer === undefined,
        }
      : null,
  };
}

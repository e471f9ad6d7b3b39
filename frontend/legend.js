// The colour legend: the map's bar with its ticks, the reference level of
// the metric (e.g. 1e-3 for update_ratio) and the special colours; drawn on
// the page and again into the exported PNG.

import { LUT_SIZE, SPECIAL, cssColor, lut } from "./colormaps.js";
import { drawHatch } from "./canvas.js";
import { formatTick, formatValue } from "./format.js";

// The legend's title: what the colours are of.
export function legendTitle({ ratio, run, run2, metric, stat, statLabel }) {
  if (ratio) return `ratio ${run} / ${run2} of ${metric.label} (${statLabel}); 1 = equal, log\u2081\u2080 colour scale`;
  if (stat === "value") return `${metric.label} (per layer), ${metric.unit}; log\u2081\u2080 colour scale`;
  return `${metric.label} (${statLabel} over elements), ${metric.unit}; log\u2081\u2080 colour scale`;
}

// The same for screen readers, with the range and the special colours.
export function legendDescription(title, scale) {
  return `${title}. Colours from ${formatValue(scale.lo)} to ${formatValue(scale.hi)}; red NaN, magenta +Inf, cyan \u2212Inf, white exactly 0, hatched not logged.`;
}

// Draws the legend into `ctx` at (x, y), `width` wide; returns its height.
// `opts`: {scale, cmap, title, reference: {value, label} | null, th}.
export function drawLegend(ctx, x, y, width, opts) {
  const { scale, cmap, title, reference, th, specials } = opts;
  const font = th.font;
  ctx.save();
  ctx.textBaseline = "top";
  ctx.textAlign = "left";
  ctx.font = `500 12px ${font}`;
  ctx.fillStyle = th.text;
  ctx.fillText(title, x, y);

  const barY = y + 30;
  const barH = 12;
  const swatchW = specials ? 380 : 0;
  const barW = Math.max(120, Math.min(width - swatchW - 70, 520));
  const barX = x + 34;
  const table = lut(cmap);
  for (let i = 0; i < barW; i++) {
    ctx.fillStyle = cssColor(table[Math.min(LUT_SIZE - 1, Math.floor((i / barW) * LUT_SIZE))]);
    ctx.fillRect(barX + i, barY, 1.5, barH);
  }
  ctx.strokeStyle = th.muted;
  ctx.lineWidth = 1;
  ctx.strokeRect(barX - 0.5, barY - 0.5, barW + 1, barH + 1);

  // min / max at the ends, ticks between.
  ctx.font = `11px ${font}`;
  ctx.fillStyle = th.muted;
  ctx.textAlign = "right";
  ctx.textBaseline = "middle";
  ctx.fillText("\u2264", barX - 4, barY + barH / 2);
  ctx.textAlign = "left";
  ctx.fillText("\u2265", barX + barW + 4, barY + barH / 2);
  ctx.textBaseline = "top";
  const ticks = scale.ticks(Math.max(3, Math.floor(barW / 55)));
  const pos = (v) => barX + scale.t(v) * barW;
  ctx.textAlign = "center";
  let lastRight = -Infinity;
  const placed = [];
  const endLabels = [
    [scale.lo, "left"],
    [scale.hi, "right"],
  ];
  ctx.fillStyle = th.text;
  for (const [v, align] of endLabels) {
    const label = formatValue(v, 3);
    const w = ctx.measureText(label).width;
    const px = align === "left" ? barX : barX + barW;
    ctx.textAlign = align;
    ctx.fillText(label, px, barY + barH + 4);
    placed.push(align === "left" ? [px, px + w] : [px - w, px]);
  }
  ctx.fillStyle = th.muted;
  ctx.textAlign = "center";
  for (const v of ticks) {
    const px = pos(v);
    ctx.beginPath();
    ctx.moveTo(Math.round(px) + 0.5, barY + barH);
    ctx.lineTo(Math.round(px) + 0.5, barY + barH + 3);
    ctx.stroke();
    const label = formatTick(v);
    const w = ctx.measureText(label).width;
    const l = px - w / 2;
    const r = px + w / 2;
    if (l > lastRight + 4 && placed.every(([a, b]) => r + 8 < a || l > b + 8)) {
      ctx.fillText(label, px, barY + barH + 4);
      lastRight = r;
    }
  }

  if (reference && reference.value >= scale.lo * (1 - 1e-9) && reference.value <= scale.hi * (1 + 1e-9)) {
    const px = Math.round(pos(reference.value)) + 0.5;
    ctx.strokeStyle = th.text;
    ctx.lineWidth = 2;
    ctx.beginPath();
    ctx.moveTo(px, barY - 4);
    ctx.lineTo(px, barY + barH + 2);
    ctx.stroke();
    ctx.fillStyle = th.text;
    ctx.beginPath();
    ctx.moveTo(px - 4, barY - 8);
    ctx.lineTo(px + 4, barY - 8);
    ctx.lineTo(px, barY - 3);
    ctx.fill();
    ctx.font = `11px ${font}`;
    ctx.textAlign = "left";
    ctx.textBaseline = "bottom";
    ctx.fillText(reference.label, px + 7, barY - 1);
  }

  // Special values.
  if (specials) {
    let sx = barX + barW + 28;
    const sy = barY - 1;
    ctx.font = `11px ${font}`;
    ctx.textBaseline = "middle";
    ctx.textAlign = "left";
    for (const key of ["nan", "inf", "-inf", "zero", "missing"]) {
      const spec = SPECIAL[key];
      if (sx + 70 > x + width) break;
      if (spec.rgb) {
        ctx.fillStyle = cssColor(spec.rgb);
        ctx.fillRect(sx, sy, 14, 14);
      } else {
        drawHatch(ctx, sx, sy, 14, 14, th);
      }
      ctx.strokeStyle = th.muted;
      ctx.lineWidth = 1;
      ctx.strokeRect(sx - 0.5, sy - 0.5, 15, 15);
      ctx.fillStyle = th.text;
      ctx.fillText(spec.label, sx + 19, sy + 7);
      sx += 19 + ctx.measureText(spec.label).width + 14;
    }
  }
  ctx.restore();
  return barY + barH + 18 - y;
}

// Canvas helpers shared by the heatmap, the legend and the drill-down's
// charts: sizing for the device pixel ratio, the theme's colours (CSS
// variables of style.css, light or dark), the "not logged" hatching.

// Size a canvas for the device pixel ratio; returns its cleared 2-D context in CSS pixels.
export function setupCanvas(canvas, width, height) {
  const dpr = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * dpr);
  canvas.height = Math.round(height * dpr);
  canvas.style.width = width + "px";
  canvas.style.height = height + "px";
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return ctx;
}

export function theme(el) {
  const style = getComputedStyle(el || document.documentElement);
  const v = (name, fallback) => style.getPropertyValue(name).trim() || fallback;
  return {
    text: v("--ss-text", "#212121"),
    muted: v("--ss-muted", "#616161"),
    grid: v("--ss-grid", "#e0e0e0"),
    bg: v("--ss-card", "#ffffff"),
    hatch: v("--ss-hatch", "#bdbdbd"),
    missing: v("--ss-missing", "#e9e9e9"),
    accent: v("--ss-accent", "#f57c00"),
    select: v("--ss-select", "#1976d2"),
    font: v("--ss-font", "Roboto, sans-serif"),
  };
}

// The hatched "not logged" pattern over a rectangle.
export function drawHatch(ctx, x, y, w, h, th) {
  ctx.save();
  ctx.beginPath();
  ctx.rect(x, y, w, h);
  ctx.clip();
  ctx.fillStyle = th.missing;
  ctx.fillRect(x, y, w, h);
  ctx.strokeStyle = th.hatch;
  ctx.beginPath();
  for (let d = -h; d < w; d += 6) {
    ctx.moveTo(x + d, y + h);
    ctx.lineTo(x + d + h, y);
  }
  ctx.stroke();
  ctx.restore();
}

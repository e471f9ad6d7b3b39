// The colour maps of the Step Sizes dashboard: lookup tables and the colours
// of the special cells (the scale that maps values onto them is scale.js).
//
// Each sequential map is stored as 33 sRGB control points, sampled evenly
// from the map's public-domain (CC0) definition, and expanded here into a
// 256-entry lookup table by linear interpolation (worst error < 5/255 per
// channel).  All three are perceptually uniform and readable with the common
// forms of colour blindness.  The diverging map used for run ratios is our
// own: blue -> light grey -> orange, interpolated in linear light.

const CONTROL_POINTS = {
  viridis:
    "440154470d6048186a482374472d7b4537814240863e49893b528b375b8d33638d2f6b8e2c728e297a8e26828e23898e" +
    "21918c1f988b1fa08822a78528ae8032b67a3fbc734ec36b5ec96270cf5784d44b98d83eaddc30c2df23d8e219ece51bfde725",
  magma:
    "0000040303120a0822130d341d114729115a36106b440f7651127c5d177f6a1c81762181832681902a819c2e7faa337d" +
    "b73779c43c75d0416fdc4869e75263ef5d5ef56b5cf9795dfc8961fd9869fea772feb67cfec488fed395fde2a3fcf0b2fcfdbf",
  cividis:
    "00224e00285b002e6a0533711a386f273e6e32436d3b496c434e6c4b546c535a6d5a5f6e61656f686a716f70737676767d7c78" +
    "8482798c8878938e789b9476a39a74aba072b4a76fbcae6cc4b468cdbb63d5c25edec958e7d150f0d846f9e03afee838",
};

export const SEQUENTIAL = ["viridis", "magma", "cividis"];
export const LUT_SIZE = 256;

// Colours of cells that the scale cannot place.  Chosen far (CIELAB distance
// > 30) from every colour of the three sequential maps.
export const SPECIAL = {
  nan: { rgb: [255, 0, 0], label: "NaN" },
  inf: { rgb: [255, 0, 255], label: "+Inf" },
  "-inf": { rgb: [0, 255, 255], label: "\u2212Inf" },
  zero: { rgb: [255, 255, 255], label: "exactly 0" },
  missing: { rgb: null, label: "not logged" }, // transparent: the hatched background shows
};

function parseHex(hex) {
  const out = [];
  for (let i = 0; i < hex.length; i += 6) {
    out.push([0, 2, 4].map((k) => parseInt(hex.slice(i + k, i + k + 2), 16)));
  }
  return out;
}

function interpolate(points, n, space = "srgb") {
  const toLin = (c) => {
    c /= 255;
    return c <= 0.04045 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4;
  };
  const toSrgb = (c) => 255 * (c <= 0.0031308 ? 12.92 * c : 1.055 * c ** (1 / 2.4) - 0.055);
  const pts = space === "linear" ? points.map((p) => p.map(toLin)) : points;
  const lut = new Array(n);
  for (let i = 0; i < n; i++) {
    const x = (i / (n - 1)) * (pts.length - 1);
    const k = Math.min(pts.length - 2, Math.floor(x));
    const f = x - k;
    const c = [0, 1, 2].map((ch) => pts[k][ch] * (1 - f) + pts[k + 1][ch] * f);
    lut[i] = (space === "linear" ? c.map(toSrgb) : c).map((v) => Math.max(0, Math.min(255, Math.round(v))));
  }
  return lut;
}

const cache = new Map();

// `[r, g, b]` triples, LUT_SIZE of them, for the map `name`.
export function lut(name) {
  if (!cache.has(name)) {
    let table;
    if (name === "ratio") {
      table = interpolate([[40, 90, 190], [236, 236, 236], [200, 95, 10]], LUT_SIZE, "linear");
    } else {
      table = interpolate(parseHex(CONTROL_POINTS[name] || CONTROL_POINTS.viridis), LUT_SIZE);
    }
    cache.set(name, table);
  }
  return cache.get(name);
}

// The same table packed as little-endian RGBA words for a Uint32Array view of
// ImageData (index LUT_SIZE.. hold the special colours, see CODE).
export function packedLut(name) {
  const key = "packed:" + name;
  if (!cache.has(key)) {
    const words = new Uint32Array(LUT_SIZE + 5);
    const pack = (rgb) => (rgb ? ((255 << 24) | (rgb[2] << 16) | (rgb[1] << 8) | rgb[0]) >>> 0 : 0);
    lut(name).forEach((rgb, i) => (words[i] = pack(rgb)));
    words[CODE.nan] = pack(SPECIAL.nan.rgb);
    words[CODE.inf] = pack(SPECIAL.inf.rgb);
    words[CODE["-inf"]] = pack(SPECIAL["-inf"].rgb);
    words[CODE.zero] = pack(SPECIAL.zero.rgb);
    words[CODE.missing] = 0;
    cache.set(key, words);
  }
  return cache.get(key);
}

// Cell codes: 0..LUT_SIZE-1 are colour-map indices, then the special cases.
export const CODE = {
  nan: LUT_SIZE,
  inf: LUT_SIZE + 1,
  "-inf": LUT_SIZE + 2,
  zero: LUT_SIZE + 3,
  missing: LUT_SIZE + 4,
};

export function cssColor(rgb) {
  return rgb ? `rgb(${rgb[0]}, ${rgb[1]}, ${rgb[2]})` : "transparent";
}

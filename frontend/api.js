// Talking to the plugin backend and to the TensorBoard page around us.
//
// Every URL is relative: the iframe's <base> is `<prefix>/data/plugin/stepsize/`,
// so "tags" resolves under it whatever `--path_prefix` TensorBoard runs with.

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

export function fetchTags(signal) {
  return getJson("tags", {}, signal);
}

export function fetchHeatmap({ run, metric, stat, maxSteps }, signal) {
  return getJson("heatmap", { run, metric, stat, max_steps: maxSteps }, signal);
}

export function fetchLayer({ run, layer, metric, maxSteps }, signal) {
  return getJson("layer", { run, layer, metric, max_steps: maxSteps }, signal);
}

export function fetchHistogram({ run, layer, metric, step }, signal) {
  return getJson("histogram", { run, layer, metric, step }, signal);
}

// A map of non-finite cells "row,col" -> kind, from a response's `nonfinite`.
export function nonfiniteIndex(list) {
  const map = new Map();
  for (const entry of list || []) {
    map.set(entry[0] + "," + entry[1], entry[2]);
  }
  return map;
}

// ---------------------------------------------------------------------------
// TensorBoard's plugin host.  An iframed (es_module_path) plugin opens a
// MessageChannel by posting "experimental.bootstrap" with one port to its
// parent; messages are JSON `{type, id, payload, error, isReply}`.  The host
// broadcasts "experimental.DataReloaded" after every reload (button or
// auto-reload) and answers "experimental.GetURLPluginData" with the
// `p.<plugin>.*` entries of the dashboard's own URL hash.

export class HostChannel {
  constructor(pluginName) {
    this.pluginName = pluginName;
    this.listeners = new Map();
    this.pending = new Map();
    this.nextId = 0;
    this.port = null;
    if (window.parent === window) return; // opened on its own, not in TensorBoard
    try {
      const channel = new MessageChannel();
      this.port = channel.port1;
      this.port.addEventListener("message", (event) => this._onMessage(event));
      this.port.start();
      window.parent.postMessage("experimental.bootstrap", "*", [channel.port2]);
    } catch (e) {
      this.port = null;
    }
  }

  get connected() {
    return this.port !== null;
  }

  on(type, callback) {
    this.listeners.set(type, callback);
  }

  _post(message) {
    this.port.postMessage(JSON.stringify(message));
  }

  async _onMessage(event) {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch (e) {
      return;
    }
    if (message.isReply) {
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.error) waiter.reject(new Error(String(message.error)));
      else waiter.resolve(message.payload);
      return;
    }
    let payload = null;
    let error = null;
    const callback = this.listeners.get(message.type);
    if (callback) {
      try {
        payload = (await callback(message.payload)) ?? null;
      } catch (e) {
        error = String(e);
      }
    }
    this._post({ type: message.type, id: message.id, payload, error, isReply: true });
  }

  // Resolves to the reply, or to `fallback` after `timeoutMs`.
  request(type, payload, timeoutMs = 1500, fallback = null) {
    if (!this.port) return Promise.resolve(fallback);
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve(fallback);
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (v) => (clearTimeout(timer), resolve(v)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      this._post({ type, id, payload, error: null, isReply: false });
    });
  }

  // The `p.<plugin>.*` parameters of TensorBoard's URL, as an object.
  urlData() {
    return this.request("experimental.GetURLPluginData", { pluginName: this.pluginName }, 1500, {}).catch(
      () => ({})
    );
  }
}

// TensorBoard's own dark mode (its settings menu) shows as `dark-mode` on the
// parent page's body.  Calls `callback(dark | null)` now and on every change;
// null when the parent is not reachable (the caller then follows prefers-color-scheme).
export function watchHostTheme(callback) {
  let body = null;
  try {
    if (window.parent !== window) body = window.parent.document.body;
  } catch (e) {
    body = null; // cross-origin: not TensorBoard's page
  }
  if (!body) {
    callback(null);
    return;
  }
  const report = () => callback(body.classList.contains("dark-mode"));
  report();
  new window.parent.MutationObserver(report).observe(body, { attributes: true, attributeFilter: ["class"] });
}

// The TensorBoard page's URL with our selection as `p.stepsize.*` hash
// entries: a link that reopens this dashboard in the same state.
export function hostLink(pluginName, params) {
  let base;
  try {
    base = window.parent.location.href.split("#")[0];
  } catch (e) {
    base = new URL("../../../", document.baseURI).href;
  }
  const parts = [encodeURIComponent(pluginName)];
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === "") continue;
    parts.push(`p.${pluginName}.${encodeURIComponent(k)}=${encodeURIComponent(v)}`);
  }
  return base + "#" + parts.join("&");
}

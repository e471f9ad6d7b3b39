// The TensorBoard page around our iframe: its plugin-host channel, its dark
// mode, its URL (which carries our selection) and links to it.
//
// An iframed (es_module_path) plugin opens a MessageChannel by posting
// "experimental.bootstrap" with one port to its parent; messages are JSON `{type, id, payload, error, isReply}`.  The host
// broadcasts "experimental.DataReloaded" after every reload (button or
// auto-reload) and answers "experimental.GetURLPluginData" with the
// `p.<plugin>.*` entries of the dashboard's own URL hash.

import { PLUGIN, fromHostHash, hostEntries, withHostEntries } from "./state.js";

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

// Follow TensorBoard's own dark mode (its settings menu shows as `dark-mode`
// on the parent page's body) when the parent page can be read, else the
// browser's preference: sets `data-theme` on our root element and calls
// `onChange()` now and on every change.
export function followTheme(onChange) {
  const prefersDark = matchMedia("(prefers-color-scheme: dark)");
  let hostDark = null;
  const apply = () => {
    const dark = hostDark === null ? prefersDark.matches : hostDark;
    document.documentElement.dataset.theme = dark ? "dark" : "light";
    onChange();
  };
  prefersDark.addEventListener("change", apply);
  let body = null;
  try {
    if (window.parent !== window) body = window.parent.document.body;
  } catch (e) {
    body = null; // cross-origin: not TensorBoard's page
  }
  if (!body) {
    apply();
    return;
  }
  const report = () => {
    hostDark = body.classList.contains("dark-mode");
    apply();
  };
  report();
  new window.parent.MutationObserver(report).observe(body, { attributes: true, attributeFilter: ["class"] });
}

// The selection in TensorBoard's URL (a shared link); null when the parent
// page is out of reach.
export function readHostHash() {
  try {
    return window.parent === window ? null : fromHostHash(window.parent.location.hash);
  } catch (e) {
    return null;
  }
}

// Put `params` into TensorBoard's URL, while our tab is the one shown.
export function writeHostHash(params) {
  try {
    if (window.parent === window) return;
    const loc = window.parent.location;
    const hash = withHostEntries(loc.hash, params);
    if (hash !== null && hash !== loc.hash) {
      window.parent.history.replaceState(window.parent.history.state, "", loc.pathname + loc.search + hash);
    }
  } catch (e) {
    // cross-origin or sandboxed parent: the iframe's own hash still works
  }
}

// The TensorBoard page's URL with our selection as `p.stepsize.*` hash
// entries: a link that reopens this dashboard in the same state.
export function hostLink(params) {
  let base;
  try {
    base = window.parent.location.href.split("#")[0];
  } catch (e) {
    base = new URL("../../../", document.baseURI).href;
  }
  return base + "#" + [encodeURIComponent(PLUGIN), ...hostEntries(params)].join("&");
}

// The Step Sizes dashboard's entry point.  TensorBoard loads this module in
// the plugin's iframe (`data/plugin_entry.html?name=stepsize`, base
// `plugin/stepsize/`) and calls `render()`.
//
// The parts: state.js (the selection and its URLs, pure), model.js (the
// one place that fetches and decodes), app.js (the controller) and the
// views it drives (controls, card + heatmap + legend, tooltip, drill-down
// + charts, export).  Every run or layer name reaches the page through
// textContent, a form control's value or canvas text -- never as HTML.

import { App } from "./app.js";
import { h } from "./dom.js";
import { testHooks } from "./hooks.js";

let started = null;

// Our stylesheet; resolves once it is in (or has failed, or after 3 s).
function addStylesheet(head) {
  if (document.querySelector("link[data-ss]")) return Promise.resolve();
  const link = h("link", { rel: "stylesheet", href: new URL("./style.css", import.meta.url).href, "data-ss": "1" });
  const loaded = new Promise((resolve) => {
    link.addEventListener("load", resolve);
    link.addEventListener("error", resolve);
    setTimeout(resolve, 3000);
  });
  head.append(link);
  return loaded;
}

export function render() {
  if (started) return started;
  document.title = "Step Sizes";
  const head = document.head || document.documentElement.appendChild(document.createElement("head"));
  const styled = addStylesheet(head);
  head.append(h("meta", { name: "viewport", content: "width=device-width, initial-scale=1" }));
  const root = h("div", { class: "ss-app" });
  document.body.append(root);
  const app = new App(root);
  window.__stepsize = testHooks(app);
  started = styled.then(() => (document.fonts ? document.fonts.ready : null)).then(() => app.start());
  return started;
}

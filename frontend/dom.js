// Building DOM nodes.  Text goes in as textContent or a property, never as
// HTML: every run or layer name reaches the page as text.

// `h("div", {class: "x", text: "hi", onclick: f}, child, ...)`.
export function h(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (v === undefined || v === null) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k in node && typeof v !== "string") node[k] = v;
    else node.setAttribute(k, v);
  }
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Replace a <select>'s options by `items` ([value, label] pairs); keeps
// `value` selected when it is one of them.
export function setOptions(select, items, value) {
  select.replaceChildren(...items.map(([v, label]) => h("option", { value: v, text: label })));
  if (items.some(([v]) => v === value)) select.value = value;
}

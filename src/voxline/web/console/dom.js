// Small DOM and formatting helpers. Text always goes in as text nodes, never as HTML.

/** `el("div", {class: "x", dataset: {a: 1}, onclick: fn}, "text", child, …)` */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

const SVG_NS = "http://www.w3.org/2000/svg";

export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  setAttrs(node, attrs);
  append(node, children);
  return node;
}

function setAttrs(node, attrs) {
  for (const [name, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "dataset") {
      for (const [key, item] of Object.entries(value)) {
        if (item !== undefined && item !== null) node.dataset[key] = item;
      }
    }
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (name === "text") node.textContent = String(value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
}

function append(node, children) {
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(node) {
  node.replaceChildren();
  return node;
}

const pad = (n) => String(n).padStart(2, "0");

export function formatTime(ms) {
  if (ms === undefined || ms === null) return "–";
  const d = new Date(ms);
  const date = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
  return `${date} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function formatDuration(ms) {
  if (ms === undefined || ms === null) return "–";
  const total = Math.round(ms / 1000);
  return `${Math.floor(total / 60)}:${pad(total % 60)}`;
}

export function formatMs(value) {
  return value === undefined || value === null ? "–" : `${Math.round(value)} ms`;
}

export function formatBool(value) {
  if (value === undefined || value === null) return "–";
  return value ? "yes" : "no";
}

/** A section with a heading; returns [section, body]. */
export function section(title, className) {
  const body = el("div", { class: "section-body" });
  const node = el("section", { class: `card ${className ?? ""}` }, el("h2", { text: title }), body);
  return [node, body];
}

export function note(text, className = "note") {
  return el("p", { class: className, text });
}

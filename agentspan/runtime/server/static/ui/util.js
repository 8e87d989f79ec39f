// Small helpers shared by the pages: building elements, formatting numbers, times and JSON.

/** Build an element: h("a.link", {href: "/x", onclick}, "text", child). */
export function h(tag, attrs, ...children) {
  const [name, ...classes] = tag.split(".");
  const el = document.createElement(name || "div");
  if (classes.length) el.className = classes.join(" ");
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "testid") el.dataset.testid = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** Milliseconds as "850 ms", "1.2 s", "3 m 12 s", "2 h 5 m". */
export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "–";
  if (ms < 1) return "<1 ms";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  const s = ms / 1000;
  if (s < 60) return `${s < 10 ? s.toFixed(1) : Math.round(s)} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} m ${Math.round(s - m * 60)} s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs} h ${m - hrs * 60} m`;
  return `${Math.floor(hrs / 24)} d ${hrs % 24} h`;
}

export function tokens(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1000) return String(n);
  if (n < 1e6) return `${(n / 1000).toFixed(n < 10000 ? 1 : 0)}k`;
  return `${(n / 1e6).toFixed(1)}M`;
}

export function cost(usd) {
  if (usd === null || usd === undefined) return "–";
  if (usd === 0) return "$0";
  if (usd < 0.0001) return "<$0.0001";
  if (usd < 0.01) return `$${usd.toFixed(4)}`;
  return `$${usd.toFixed(2)}`;
}

export function ms(iso) {
  return iso ? Date.parse(iso) : null;
}

/** A time as "14:03:22" today, "Dec 3 14:03" otherwise; the full time in the title. */
export function when(iso) {
  if (!iso) return h("span.muted", {}, "–");
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  const text = today
    ? d.toLocaleTimeString([], { hour12: false })
    : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", hour12: false });
  return h("time", { datetime: iso, title: d.toISOString() }, text);
}

export function ago(iso) {
  const s = (Date.now() - Date.parse(iso)) / 1000;
  if (s < 60) return `${Math.max(0, Math.round(s))} s ago`;
  if (s < 3600) return `${Math.round(s / 60)} m ago`;
  if (s < 86400) return `${Math.round(s / 3600)} h ago`;
  return `${Math.round(s / 86400)} d ago`;
}

export function badge(status, extra) {
  return h(`span.badge.s-${status}`, { testid: "status" }, extra || status);
}

const LIMIT = 20000;

/** Pretty JSON with a copy button; over LIMIT characters it is cut, with a button to show it all. */
export function jsonView(value, label) {
  const text = typeof value === "string" ? value : JSON.stringify(value, null, 2);
  const full = text === undefined ? "null" : text;
  const pre = h("pre.json", { testid: `json-${label || "value"}` });
  const cut = full.length > LIMIT;
  pre.textContent = cut ? full.slice(0, LIMIT) : full;
  const tools = h("div.json-tools", {},
    h("button.small", {
      type: "button", title: "Copy to the clipboard", onclick: async (e) => {
        try { await navigator.clipboard.writeText(full); toast("Copied"); } catch { selectText(pre); toast("Selected: press Ctrl+C to copy"); }
        e.stopPropagation();
      },
    }, "Copy"),
  );
  if (cut) {
    const more = h("button.small", {
      type: "button", testid: "show-all", onclick: () => { pre.textContent = full; more.remove(); note.remove(); },
    }, `Show all (${Math.round(full.length / 1024)} KB)`);
    const note = h("span.muted", {}, ` showing ${Math.round(LIMIT / 1024)} KB of ${Math.round(full.length / 1024)} KB`);
    tools.append(more, note);
  }
  return h("div.json-box", {}, tools, pre);
}

function selectText(el) {
  const range = document.createRange();
  range.selectNodeContents(el);
  const sel = window.getSelection();
  sel.removeAllRanges();
  sel.addRange(range);
}

let toastTimer;
export function toast(message, kind) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.className = `toast ${kind || ""}`;
  el.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { el.hidden = true; }, kind === "error" ? 8000 : 2500);
}

export function short(id) {
  return id ? id.slice(0, 8) : "";
}

export function debounce(fn, wait) {
  let timer = null;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
}

// The single-page app: a router over /ui/... paths, each page a module with render(root, params).
import { api } from "./api.js";
import { clear, h } from "./util.js";
import * as list from "./list.js";
import * as inbox from "./inbox.js";
import * as execution from "./execution.js";

const routes = [
  [/^\/(?:ui\/?)?$/, list, () => ({})],
  [/^\/ui\/executions\/?$/, list, () => ({})],
  [/^\/ui\/executions\/([^/]+)\/?$/, execution, (m) => ({ id: decodeURIComponent(m[1]) })],
  [/^\/ui\/approvals\/?$/, inbox, () => ({})],
];

let current = null;

function route() {
  const root = document.getElementById("app");
  if (current && current.leave) current.leave();
  current = null;
  clear(root);
  const path = window.location.pathname;
  for (const [pattern, page, params] of routes) {
    const m = path.match(pattern);
    if (m) {
      current = page;
      for (const a of document.querySelectorAll("[data-nav]")) {
        a.classList.toggle("active", a.dataset.nav === (page === inbox ? "approvals" : "executions"));
      }
      page.render(root, params(m), new URLSearchParams(window.location.search));
      return;
    }
  }
  root.append(h("div.empty", {}, h("h2", {}, "Nothing here"), h("p", {}, "No page at ", h("code", {}, path), ". ",
    h("a", { href: "/ui/executions", "data-link": true }, "See the executions"), ".")));
}

export function navigate(url, replace) {
  if (replace) window.history.replaceState(null, "", url);
  else window.history.pushState(null, "", url);
  route();
}

document.addEventListener("click", (event) => {
  const a = event.target.closest("a[data-link]");
  if (!a || event.ctrlKey || event.metaKey || event.shiftKey || event.button !== 0) return;
  event.preventDefault();
  navigate(a.getAttribute("href"));
});
window.addEventListener("popstate", route);

async function refreshApprovalCount() {
  const el = document.getElementById("approval-count");
  try {
    const page = await api.approvals({ limit: 1000 });
    const n = page.items.length;
    el.textContent = n >= 1000 ? "999+" : String(n);
    el.hidden = n === 0;
  } catch {
    el.hidden = true;
  }
}

window.addEventListener("agentspan:approvals-changed", refreshApprovalCount);
setInterval(refreshApprovalCount, 5000);
refreshApprovalCount();
route();

// The approvals inbox: every pending wait for a person across executions, decided in place.
import { api } from "./api.js";
import { ago, clear, h, short, when } from "./util.js";
import { decisionForm } from "./decide.js";
import { frameworkLabel } from "./list.js";

const TYPES = { tool_approval: "Tool approval", human_input: "Human input", interrupt: "Interrupt" };
let timer = null;
let stopped = false;

export function leave() {
  stopped = true;
  clearTimeout(timer);
}

export function render(root) {
  stopped = false;
  const list = h("div.cards", { testid: "approvals" });
  const error = h("p.error", { hidden: true });
  const summary = h("span.muted", { testid: "approvals-summary" });
  root.append(h("section.page", {}, h("div.page-head", {}, h("h1", {}, "Approvals"), summary),
    h("p.muted", {}, "Tool calls waiting for approval, requests for input and LangGraph interrupts, across every execution. No process is held while they wait."),
    error, list));
  const shown = new Map(); // id -> card, kept while pending so a half-typed reason survives a refresh

  async function load() {
    clearTimeout(timer);
    try {
      const page = await api.approvals({ limit: 200 });
      if (stopped) return;
      error.hidden = true;
      const ids = new Set(page.items.map((i) => i.id));
      for (const [id, card] of shown) if (!ids.has(id) && !card.dataset.decided) { card.remove(); shown.delete(id); }
      for (const item of page.items) if (!shown.has(item.id)) { const c = card(item); shown.set(item.id, c); list.append(c); }
      summary.textContent = page.items.length ? `${page.items.length} pending` : "";
      if (!list.children.length) list.append(h("div.empty", { testid: "approvals-empty" }, "Nothing waits for a person."));
      else for (const e of list.querySelectorAll("[data-testid=approvals-empty]")) e.remove();
    } catch (err) {
      if (stopped) return;
      error.textContent = err.message;
      error.hidden = false;
    }
    if (!stopped) timer = setTimeout(load, 2000);
  }

  function card(item) {
    const c = h("article.card", { testid: "approval", dataset: { id: item.id, execution: item.execution_id } },
      h("header", {},
        h("strong", {}, TYPES[item.type] || item.type), " ",
        item.tool ? h("code", {}, item.tool) : null,
        h("span.spacer"),
        h("span.muted", { title: item.created_at }, "waiting ", ago(item.created_at))),
      h("div.meta", {},
        h("span", {}, "Agent ", h("strong", {}, item.agent)), " · ",
        h("span", {}, frameworkLabel(item.framework)), " · ",
        h("a", { href: `/ui/executions/${item.execution_id}`, "data-link": true }, "execution ", short(item.execution_id)), " · ",
        h("span.muted", {}, "id ", h("code", {}, item.id)), " · ", when(item.created_at)),
    );
    c.append(decisionForm(item, (decided) => {
      c.dataset.decided = "1";
      c.classList.add("decided");
      clear(c.querySelector("[data-testid=decision]")).append(h("p", { testid: "decided" }, `Decided: ${decided.status}. The execution is queued to go on.`));
    }));
    return c;
  }
  load();
}

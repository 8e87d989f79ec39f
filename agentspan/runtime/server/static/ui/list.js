// The executions list: filters in the URL, cursor paging, refreshed every two seconds.
import { api } from "./api.js";
import { badge, clear, cost, duration, h, ms, short, tokens, when } from "./util.js";
import { navigate } from "./app.js";

const STATUSES = ["queued", "running", "waiting", "completed", "failed", "cancelled"];
const FRAMEWORKS = [
  ["native", "Agentspan"], ["langgraph", "LangGraph"], ["openai_agents", "OpenAI Agents SDK"],
  ["crewai", "CrewAI"], ["google_adk", "Google ADK"],
];
const RANGES = [["", "Any time"], ["15m", "Last 15 minutes"], ["1h", "Last hour"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"], ["custom", "Between…"]];
const RANGE_MS = { "15m": 9e5, "1h": 3.6e6, "24h": 8.64e7, "7d": 6.048e8 };
export const PAGE_SIZE = 50;

let timer = null;
let stopped = false;

export function leave() {
  stopped = true;
  clearTimeout(timer);
}

export function frameworkLabel(value) {
  const found = FRAMEWORKS.find(([v]) => v === value);
  return found ? found[1] : value || "function";
}

export function render(root, _params, query) {
  stopped = false;
  const state = {
    status: query.get("status") || "",
    framework: query.get("framework") || "",
    name: query.get("name") || "",
    q: query.get("q") || "",
    range: query.get("range") || "",
    from: query.get("from") || "",
    to: query.get("to") || "",
    cursors: [null], // the cursor of each page seen, so "Previous" goes back
  };
  const body = h("tbody", { testid: "executions-body" });
  const summary = h("span.muted", { testid: "list-summary" });
  const prev = h("button", { type: "button", testid: "page-prev", onclick: () => { state.cursors.pop(); load(); } }, "← Newer");
  const next = h("button", { type: "button", testid: "page-next", onclick: () => { state.cursors.push(state.next); load(); } }, "Older →");
  const error = h("p.error", { hidden: true, testid: "list-error" });

  const select = (key, options, label) => h("label", {}, h("span", {}, label),
    h("select", { testid: `filter-${key}`, onchange: (e) => update(key, e.target.value) },
      options.map(([v, text]) => h("option", { value: v, selected: state[key] === v }, text))));
  const text = (key, placeholder, label) => h("label", {}, h("span", {}, label),
    h("input", { type: "search", value: state[key], placeholder, testid: `filter-${key}`, onchange: (e) => update(key, e.target.value.trim()) }));

  root.append(
    h("section.page", {},
      h("div.page-head", {}, h("h1", {}, "Executions"), summary),
      h("form.filters", { onsubmit: (e) => e.preventDefault() },
        text("q", "Execution id or name…", "Search"),
        select("status", [["", "Any status"], ...STATUSES.map((s) => [s, s])], "Status"),
        select("framework", [["", "Any framework"], ...FRAMEWORKS], "Framework"),
        text("name", "exact agent name", "Agent"),
        select("range", RANGES, "Started"),
        h("label", { class: "between", hidden: state.range !== "custom" }, h("span", {}, "From"),
          h("input", { type: "datetime-local", value: state.from, testid: "filter-from", onchange: (e) => update("from", e.target.value) })),
        h("label", { class: "between", hidden: state.range !== "custom" }, h("span", {}, "To"),
          h("input", { type: "datetime-local", value: state.to, testid: "filter-to", onchange: (e) => update("to", e.target.value) })),
      ),
      error,
      h("table.grid", { testid: "executions" },
        h("thead", {}, h("tr", {}, ["Execution", "Agent", "Framework", "Status", "Started", "Duration", "Steps", "Tokens", "Cost"].map((c) => h("th", {}, c)))),
        body),
      h("div.pager", {}, prev, next),
    ),
  );

  function update(key, value) {
    state[key] = value;
    for (const el of root.querySelectorAll("label.between")) el.hidden = state.range !== "custom";
    state.cursors = [null];
    const s = new URLSearchParams();
    for (const k of ["q", "status", "framework", "name", "range", "from", "to"]) if (state[k]) s.set(k, state[k]);
    window.history.replaceState(null, "", `/ui/executions${s.toString() ? `?${s}` : ""}`);
    load();
  }

  async function load() {
    clearTimeout(timer);
    const cursor = state.cursors[state.cursors.length - 1];
    const params = { limit: PAGE_SIZE, cursor, status: state.status, framework: state.framework, name: state.name, q: state.q };
    if (state.range === "custom") {
      // datetime-local is the browser's local time: Date reads it so, and the API gets UTC.
      if (state.from) params.created_after = new Date(state.from).toISOString();
      if (state.to) params.created_before = new Date(state.to).toISOString();
    } else if (state.range) params.created_after = new Date(Date.now() - RANGE_MS[state.range]).toISOString();
    try {
      const page = await api.executions(params);
      if (stopped) return;
      error.hidden = true;
      state.next = page.next_cursor;
      fill(page);
    } catch (err) {
      if (stopped) return;
      error.textContent = err.message;
      error.hidden = false;
    }
    if (!stopped) timer = setTimeout(load, 2000);
  }

  function fill(page) {
    clear(body);
    const first = (state.cursors.length - 1) * PAGE_SIZE;
    if (!page.items.length) {
      body.append(h("tr", {}, h("td.empty", { colspan: 9 }, state.cursors.length > 1 ? "No older executions." :
        "No executions match. Start one with runtime.run(...), or agentspan run.")));
    }
    for (const e of page.items) body.append(row(e));
    const total = page.total;
    summary.textContent = page.items.length
      ? `${first + 1}–${first + page.items.length}${total !== null && total !== undefined ? ` of ${total.toLocaleString()}` : ""}`
      : "";
    prev.disabled = state.cursors.length <= 1;
    next.disabled = !page.next_cursor;
  }

  function row(e) {
    const s = e.summary || {};
    const started = s.started_at || e.created_at;
    const end = s.ended_at || (["completed", "failed", "cancelled"].includes(e.status) ? e.updated_at : null);
    const took = end ? ms(end) - ms(started) : Date.now() - ms(started);
    const href = `/ui/executions/${encodeURIComponent(e.id)}`;
    const status = e.status === "waiting" && s.waiting_for ? `waiting · ${s.waiting_for}` : e.status;
    const tr = h("tr.clickable", { testid: "execution-row", dataset: { id: e.id, status: e.status }, onclick: (ev) => {
      if (!ev.target.closest("a")) navigate(href);
    } },
      h("td.mono", {}, h("a", { href, "data-link": true, title: e.id }, short(e.id)), e.forked_from ? h("span.tag", { title: `forked from ${e.forked_from.execution_id}` }, "fork") : null),
      h("td", {}, e.name),
      h("td", {}, frameworkLabel(e.framework)),
      h("td", {}, badge(e.status, status)),
      h("td", {}, when(started)),
      h("td.num", {}, end ? duration(took) : h("span.muted", {}, duration(took))),
      h("td.num", {}, s.steps ?? "–"),
      h("td.num", {}, tokens(s.tokens)),
      h("td.num", { title: s.cost_note || "" }, cost(s.cost_usd)),
    );
    return tr;
  }

  load();
}

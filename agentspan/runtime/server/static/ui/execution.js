// One execution, live: header and actions, pending decisions, and the graph, timeline, conversation
// and event views of its journal, with the step inspector beside them.
import { api } from "./api.js";
import { navigate } from "./app.js";
import { drawConversation } from "./conversation.js";
import { decisionForm } from "./decide.js";
import { drawGraph } from "./graph.js";
import { drawInspector } from "./inspector.js";
import { frameworkLabel } from "./list.js";
import { buildModel } from "./model.js";
import { drawTimeline } from "./timeline.js";
import { badge, clear, cost, debounce, duration, h, jsonView, ms, short, toast, tokens, when } from "./util.js";

const TABS = [["graph", "Graph"], ["timeline", "Timeline"], ["conversation", "Conversation"], ["events", "Events"]];
const TERMINAL = new Set(["completed", "failed", "cancelled"]);
let prices = null;
let page = null;

export function leave() {
  if (page) page.stop();
  page = null;
}

export function render(root, params, query) {
  page = new ExecutionPage(root, params.id, query);
  page.start();
}

class ExecutionPage {
  constructor(root, id, query) {
    this.root = root;
    this.id = id;
    this.tab = query.get("tab") || "graph";
    this.selected = query.get("step") || null;
    this.graphState = { collapsed: new Set(), viewport: null, redraw: () => this.drawTab() };
    this.events = [];
    this.stopped = false;
    this.source = null;
    this.graph = null;
    this.reload = debounce(() => this.load(), 120);
  }

  async start() {
    this.root.append(h("p.muted", {}, "Loading execution ", h("code", {}, this.id), "…"));
    if (prices === null) prices = await api.prices().catch(() => ({}));
    await this.load();
    this.follow();
  }

  stop() {
    this.stopped = true;
    if (this.source) this.source.close();
    if (this.graph) this.graph.destroy();
  }

  follow() {
    if (this.stopped || (this.execution && TERMINAL.has(this.execution.status))) return;
    const last = this.events.length ? this.events[this.events.length - 1].id : 0;
    const source = new EventSource(api.streamUrl(this.id, last));
    this.source = source;
    const live = document.getElementById("live");
    source.onopen = () => { live.classList.add("on"); live.title = "Live: following the execution's events"; };
    source.onmessage = () => this.reload();
    for (const type of ["step.started", "step.completed", "step.failed", "step.suspended", "execution.running", "execution.waiting",
      "execution.queued", "execution.completed", "execution.failed", "execution.cancelled", "execution.released", "lease.expired",
      "divergence", "signal.delivered", "execution.forked"]) source.addEventListener(type, () => this.reload());
    source.onerror = () => {
      live.classList.remove("on");
      if (this.execution && TERMINAL.has(this.execution.status)) source.close();
    };
  }

  async load() {
    if (this.stopped) return;
    let execution;
    let steps;
    let fresh;
    try {
      const after = this.events.length ? this.events[this.events.length - 1].id : 0;
      const t0 = performance.now();
      [execution, steps, fresh] = await Promise.all([api.execution(this.id), api.journal(this.id), api.events(this.id, after)]);
      this.timings = { fetch: performance.now() - t0 };
    } catch (err) {
      if (this.stopped) return;
      clear(this.root).append(h("div.empty", { testid: "execution-error" }, h("h2", {}, err.status === 404 ? "No such execution" : "Could not load the execution"),
        h("p", {}, err.message), h("p", {}, h("a", { href: "/ui/executions", "data-link": true }, "Back to the executions"))));
      return;
    }
    if (this.stopped) return;
    this.events.push(...fresh);
    this.execution = execution;
    this.model = buildModel(execution, steps, this.events, prices);
    this.pending = execution.status === "waiting" || execution.status === "running"
      ? (await api.approvals({ execution: this.id }).catch(() => ({ items: [] }))).items : [];
    if (this.stopped) return;
    const t1 = performance.now();
    this.draw();
    // Read by the page-speed benchmark: how long the last load spent fetching and drawing.
    window.agentspanTimings = { ...this.timings, draw: performance.now() - t1, steps: steps.length };
    if (TERMINAL.has(execution.status) && this.source) { this.source.close(); document.getElementById("live").classList.remove("on"); }
  }

  setUrl() {
    const s = new URLSearchParams();
    if (this.tab !== "graph") s.set("tab", this.tab);
    if (this.selected) s.set("step", this.selected);
    window.history.replaceState(null, "", `/ui/executions/${encodeURIComponent(this.id)}${s.toString() ? `?${s}` : ""}`);
  }

  draw() {
    const ex = this.execution;
    const m = this.model;
    const scroll = window.scrollY;
    clear(this.root);
    const started = m.claims.length ? m.claims[0].start : ms(ex.created_at);
    const end = TERMINAL.has(ex.status) ? ms(ex.updated_at) : Date.now();
    const actions = [];
    if (!TERMINAL.has(ex.status)) actions.push(h("button.danger", { type: "button", testid: "cancel", onclick: () => this.cancel() }, "Cancel"));
    const head = h("section.exec-head", { testid: "execution-head", dataset: { status: ex.status } },
      h("div.title", {}, h("h1", {}, ex.name), badge(ex.status), h("span.muted.mono", { title: "execution id" }, ex.id), h("span.spacer"), actions),
      h("div.stats", {},
        stat("Framework", frameworkLabel(ex.framework)),
        stat("Started", when(ex.created_at)),
        stat("Duration", duration(end - started), "stat-duration"),
        stat("Steps", String(m.totals.steps), "stat-steps"),
        stat("Model calls", String(m.totals.llm)),
        stat("Tokens", tokens(m.totals.tokens), "stat-tokens"),
        stat("Cost", cost(m.totals.cost), "stat-cost"),
        stat("Workers", String(new Set(m.claims.map((c) => c.worker)).size), "stat-workers"),
        m.forkedFrom ? stat("Forked from", h("a", { href: `/ui/executions/${m.forkedFrom.execution_id}`, "data-link": true, testid: "forked-from" }, short(m.forkedFrom.execution_id), " at ", h("code", {}, m.forkedFrom.step))) : null,
      ),
      m.forks.length ? h("p.muted", {}, "Forks: ", m.forks.map((f) => h("a", { href: `/ui/executions/${f.fork}`, "data-link": true }, short(f.fork), " "))) : null,
      ex.status === "failed" && ex.error ? h("p.error", { testid: "execution-error-message" }, h("code", {}, ex.error.type), ": ", ex.error.message) : null,
      ex.status === "completed" ? h("details.result", {}, h("summary", {}, "Output"), jsonView(ex.output, "execution-output")) : null,
      ex.status === "waiting" && ex.wait ? h("p.waiting", { testid: "waiting-for" }, "Waiting for ", ex.wait.signal ? h("code", {}, ex.wait.signal) : "a timer",
        ex.wait.wake_at ? ` until ${new Date(ex.wait.wake_at).toLocaleString()}` : "", ". No worker or process is held meanwhile.") : null,
    );
    this.root.append(head);
    if (this.pending.length) {
      this.root.append(h("section.pending", { testid: "pending-decisions" }, h("h3", {}, `Waiting for ${this.pending.length === 1 ? "a decision" : `${this.pending.length} decisions`}`),
        this.pending.map((item) => h("div.card", { testid: "approval", dataset: { id: item.id } }, h("header", {}, h("strong", {}, item.tool ? `Approve ${item.tool}?` : "Answer"), h("span.muted", {}, ` ${item.id}`)),
          decisionForm(item, () => this.load())))));
    }
    const tabs = h("nav.tabs", { role: "tablist" }, TABS.map(([key, text]) => h("button", {
      type: "button", role: "tab", testid: `tab-${key}`, class: this.tab === key ? "active" : "", "aria-selected": this.tab === key ? "true" : "false",
      onclick: () => { this.tab = key; this.setUrl(); this.draw(); },
    }, text)));
    this.view = h("div.view", { testid: `view-${this.tab}` });
    this.side = h("aside.inspector", { testid: "inspector-panel" });
    this.root.append(tabs, h("div.exec-body", {}, this.view, this.side));
    this.drawTab();
    this.drawSide();
    window.scrollTo(0, scroll);
  }

  drawTab() {
    if (this.graph) { this.graph.destroy(); this.graph = null; }
    clear(this.view);
    const select = (key) => this.select(key);
    if (this.tab === "graph") {
      const box = h("div.graph", { testid: "graph" });
      this.view.append(h("p.hint.muted", {}, "Click a step to inspect it; double-click a group to fold it. Scroll to zoom, drag to pan."), box);
      if (!window.cytoscape) { box.append(h("p.error", {}, "The graph library did not load.")); return; }
      this.graph = drawGraph(box, this.model, select, this.graphState);
      if (box.dataset.windowed === "true") {
        this.view.insertBefore(h("p.hint", { testid: "graph-windowed" }, `A long execution: the graph shows its first steps (the timeline and the conversation hold all ${this.model.steps.length.toLocaleString()}). `,
          h("button.small", { type: "button", testid: "graph-all", onclick: () => { this.graphState.showAll = true; this.drawTab(); } }, "Draw every step")), box);
      }
      if (this.selected) this.graph.select(this.selected);
    } else if (this.tab === "timeline") drawTimeline(this.view, this.model, select);
    else if (this.tab === "conversation") drawConversation(this.view, this.model, select);
    else this.drawEvents();
  }

  drawEvents() {
    const rows = this.events.map((e) => h("tr", { testid: "event" }, h("td.mono", {}, String(e.id)), h("td", {}, when(e.created_at)), h("td", {}, h("code", {}, e.type)),
      h("td.mono.small", {}, Object.keys(e.data || {}).length ? JSON.stringify(e.data) : "")));
    this.view.append(h("table.grid.events", { testid: "events" }, h("thead", {}, h("tr", {}, ["#", "Time", "Type", "Data"].map((c) => h("th", {}, c)))), h("tbody", {}, rows)));
  }

  drawSide() {
    clear(this.side);
    const step = this.selected ? this.model.steps.find((s) => s.key === this.selected) : null;
    if (!step) {
      this.side.append(h("div.empty.small", {}, "Select a step in the graph, the timeline or the conversation to see its input, output, timing and attempts."));
      return;
    }
    const item = this.pending.find((p) => step.wait && p.signal === step.wait.signal);
    drawInspector(this.side, this.model, step, {
      fork: (s) => this.fork(s),
      decision: item ? decisionForm(item, () => this.load()) : null,
    });
  }

  select(key) {
    this.selected = key;
    this.setUrl();
    if (this.graph) this.graph.select(key);
    this.drawSide();
  }

  async cancel() {
    if (!window.confirm(`Cancel execution ${short(this.id)}? A worker running it stops at its next step.`)) return;
    try {
      await api.cancel(this.id);
      toast("Cancelled");
      this.load();
    } catch (err) { toast(err.message, "error"); }
  }

  async fork(step) {
    try {
      const created = await api.fork(this.id, step.key);
      toast(`Forked: ${short(created.id)}`);
      navigate(`/ui/executions/${encodeURIComponent(created.id)}`);
    } catch (err) { toast(err.message, "error"); }
  }
}

function stat(label, value, testid) {
  return h("div.stat-box", { testid }, h("span", {}, label), h("strong", {}, value));
}

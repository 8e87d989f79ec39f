// The execution as a graph: model calls, tool calls (a fan-out when they ran in parallel), groups for
// sub-agents, LangGraph nodes, crew tasks and ADK agents, waits and guardrail checks as their own
// nodes. Cytoscape draws it; dagre lays it out.
import { batches, segments } from "./model.js";
import { cost, duration, tokens } from "./util.js";

const ICONS = {
  llm: "◆", tool: "⚙", agent: "◎", node: "▣", task: "☰", crew: "◎", guardrail: "⛨", approval: "✋",
  human: "✋", interrupt: "✋", signal: "⧗", timer: "⏱", handoff: "⇢", step: "•", budget: "$",
};
const WAIT_KINDS = new Set(["approval", "human", "interrupt", "signal", "timer", "budget"]);
/** Above this many nodes the dagre layout would take long: cytoscape's breadth-first layout is used. */
export const DAGRE_LIMIT = 500;
/** A larger journal is drawn this many steps at a time (the rest on request), so its page opens at once;
 * the timeline and the conversation always hold every step. */
export const GRAPH_WINDOW = 300;

export function stepLabel(step, info) {
  const head = `${ICONS[step.kind] || "•"} ${step.kind} · ${step.name}`;
  const parts = [];
  if (info.duration !== null) parts.push(duration(info.duration));
  else if (step.status === "suspended") parts.push("waiting");
  else if (step.status === "started") parts.push(info.inDoubt ? "in doubt" : "running");
  if (info.tokens) parts.push(`${tokens(info.tokens)} tok`);
  if (info.cost !== null && info.cost !== undefined) parts.push(cost(info.cost));
  if (step.attempt > 1) parts.push(`attempt ${step.attempt}`);
  if (step.epoch === 0) parts.push("copied at fork");
  else if (info.replayedBy.length) parts.push(`↻ replayed ×${info.replayedBy.length}`);
  return `${head.length > 34 ? `${head.slice(0, 33)}…` : head}\n${parts.join(" · ")}`;
}

function classesOf(step, info) {
  const c = [`k-${step.kind}`, `s-${step.status}`];
  if (WAIT_KINDS.has(step.kind)) c.push("wait");
  if (info.inDoubt) c.push("in-doubt");
  if (info.retried) c.push("retried");
  if (step.superseded) c.push("divergent");
  if (step.kind === "guardrail" && step.output && typeof step.output === "object") c.push(step.output.passed === false ? "g-fail" : "g-pass");
  if (info.replayedBy.length) c.push("replayed");
  if (step.epoch === 0) c.push("copied");
  return c.join(" ");
}

/** Cytoscape elements for the model; groups in ``collapsed`` (step keys) are shown as one node. */
export function elements(model, collapsed, limit) {
  const nodes = [];
  let shown = 0;
  let hidden = 0;
  const edges = [];
  const ex = model.execution;
  nodes.push({ data: { id: "start", label: `▶ input\n${ex.name}` }, classes: "terminal" });
  const edge = (a, b, cls) => edges.push({ data: { id: `${a}>${b}`, source: a, target: b }, classes: cls || "" });

  // One scope (the execution, or a step with steps inside): its framework parts (LangGraph nodes,
  // SDK or ADK agents) as groups, each a sequence of batches of steps.
  function walk(scope, parentId, prev) {
    const list = (model.children.get(scope) || []).filter((s) => !s.superseded);
    const parts = segments(list);
    const grouped = parts.some((p) => p.part) && !(parts.length === 1 && scope && model.byKey.get(scope).name === (parts[0].part || {}).name);
    let before = null;
    for (const seg of parts) {
      if (!grouped || !seg.part) { prev = walkSteps(seg.steps, parentId, prev, ""); continue; }
      const gid = `g${seg.steps[0].seq}`;
      const group = `group:${gid}`;
      // An SDK agent's turn ending in another agent's is a handoff; elsewhere (ADK) the next agent of a sequence.
      const changed = before && before.kind === "agent" && seg.part.kind === "agent" && before.name !== seg.part.name;
      const handoff = changed ? (ex.framework === "openai_agents" ? "handoff" : "next-agent") : "";
      before = seg.part;
      const first = model.info.get(seg.steps[0]);
      const lastStep = seg.steps[seg.steps.length - 1];
      const end = model.info.get(lastStep).end;
      const took = end !== null ? ` · ${duration(end - first.start)}` : "";
      const head = `${seg.part.kind === "node" ? "▣ node" : "◎ agent"} · ${seg.part.name}`;
      if (collapsed.has(group)) {
        shown += 1;
        nodes.push({ data: { id: gid, group, part: seg.part.name, partKind: seg.part.kind, label: `${head}\n${seg.steps.length} steps${took}`, parent: parentId || undefined }, classes: `collapsed k-${seg.part.kind}` });
        for (const p of prev) edge(p, gid, handoff);
        prev = [gid];
        continue;
      }
      nodes.push({ data: { id: gid, group, part: seg.part.name, partKind: seg.part.kind, label: `${head}${took}`, parent: parentId || undefined }, classes: `group part k-${seg.part.kind}` });
      prev = walkSteps(seg.steps, gid, prev, handoff);
    }
    return prev;
  }

  function walkSteps(list, parentId, prev, firstEdge) {
    let edgeClass = firstEdge;
    for (const batch of batches(list)) {
      const exits = [];
      for (const s of batch.steps) {
        if (shown >= limit) { hidden += 1 + countInside(model, s.key); continue; }
        shown += 1;
        const info = model.info.get(s);
        const id = `s${s.seq}`;
        const kids = (model.children.get(s.key) || []).filter((k) => !k.superseded);
        const open = kids.length > 0 && !collapsed.has(s.key);
        const parallel = batch.concurrent && batch.steps.length > 1;
        nodes.push({
          data: { id, key: s.key, label: open ? `${ICONS[s.kind] || "•"} ${s.kind} · ${s.name}${info.duration !== null ? ` · ${duration(info.duration)}` : ""}` : stepLabel(s, info), parent: parentId || undefined },
          classes: `${classesOf(s, info)}${open ? " group" : kids.length ? " collapsed" : ""}${parallel ? " parallel" : ""}`,
        });
        if (open) {
          exits.push(...walk(s.key, id, prev));
        } else {
          for (const p of prev) edge(p, id, parallel ? `fan ${edgeClass}` : edgeClass);
          exits.push(id);
        }
      }
      if (exits.length) { prev = exits; edgeClass = ""; }
    }
    return prev;
  }
  let last = walk("", null, ["start"]);
  if (hidden) {
    nodes.push({ data: { id: "more", more: true, label: `… ${hidden.toLocaleString()} more steps\nclick to draw them all` }, classes: "more" });
    for (const p of last) edge(p, "more");
    last = ["more"];
  }
  // Divergent steps (kept as history, never replayed) float beside the graph, marked.
  for (const s of model.steps.filter((x) => x.superseded)) {
    nodes.push({ data: { id: `s${s.seq}`, key: s.key, label: `${stepLabel(s, model.info.get(s))}\n(divergent)` }, classes: classesOf(s, model.info.get(s)) });
  }
  const endLabel = { completed: "■ completed", failed: "✖ failed", cancelled: "✖ cancelled", waiting: "⧗ waiting", running: "… running", queued: "… queued" }[ex.status] || ex.status;
  nodes.push({ data: { id: "end", label: endLabel }, classes: `terminal end s-${ex.status}` });
  for (const p of last) edge(p, "end", ["completed", "failed", "cancelled"].includes(ex.status) ? "" : "pending");
  return { nodes, edges };
}

function countInside(model, key) {
  let n = 0;
  for (const k of model.children.get(key) || []) n += 1 + countInside(model, k.key);
  return n;
}

const STYLE = [
  { selector: "node", style: {
    shape: "round-rectangle", width: 190, height: 46, "background-color": "#ffffff", "border-width": 1.5, "border-color": "#9aa4b2",
    label: "data(label)", "text-wrap": "wrap", "text-max-width": 180, "font-size": 11, "font-family": "ui-sans-serif, system-ui, sans-serif",
    "text-valign": "center", "text-halign": "center", color: "#1f2937", "line-height": 1.35,
  } },
  { selector: "node.k-llm", style: { "background-color": "#eef2ff", "border-color": "#6366f1" } },
  { selector: "node.k-tool", style: { "background-color": "#ecfdf5", "border-color": "#10b981" } },
  { selector: "node.k-guardrail", style: { "background-color": "#fff7ed", "border-color": "#f59e0b", shape: "hexagon", width: 200 } },
  { selector: "node.g-fail", style: { "background-color": "#fef2f2", "border-color": "#ef4444" } },
  { selector: "node.wait", style: { "background-color": "#fefce8", "border-color": "#ca8a04", "border-style": "dashed" } },
  { selector: "node.s-suspended", style: { "border-width": 3 } },
  { selector: "node.s-started", style: { "border-style": "dashed", "border-width": 2.5, "border-color": "#2563eb" } },
  { selector: "node.in-doubt", style: { "border-color": "#d97706", "border-width": 3, "border-style": "dotted" } },
  { selector: "node.s-failed", style: { "background-color": "#fef2f2", "border-color": "#dc2626", "border-width": 2.5 } },
  { selector: "node.retried", style: { "outline-width": 3, "outline-color": "#f59e0b", "outline-offset": 2 } },
  { selector: "node.divergent", style: { opacity: 0.55, "border-style": "dashed", "border-color": "#6b7280", "background-color": "#f3f4f6" } },
  { selector: "node.copied", style: { "background-blacken": 0.06 } },
  { selector: "node.collapsed", style: { "border-width": 2.5, "background-color": "#f5f3ff", "border-color": "#7c3aed", shape: "round-rectangle" } },
  { selector: "node.more", style: { "background-color": "#f1f5f9", "border-style": "dashed", "border-color": "#64748b", width: 210 } },
  { selector: "node.terminal", style: { shape: "round-rectangle", width: 130, height: 36, "background-color": "#1f2a44", color: "#f9fafb", "border-width": 0 } },
  { selector: "node.end.s-failed", style: { "background-color": "#b91c1c" } },
  { selector: "node.end.s-completed", style: { "background-color": "#047857" } },
  { selector: "node.end.s-waiting", style: { "background-color": "#a16207" } },
  { selector: "node.end.s-running", style: { "background-color": "#1d4ed8" } },
  { selector: ":parent", style: {
    shape: "round-rectangle", "background-color": "#f8f7ff", "background-opacity": 0.7, "border-color": "#7c3aed", "border-width": 1.5,
    "border-style": "solid", "text-valign": "top", "text-halign": "center", "font-weight": 600, padding: 14, color: "#4c1d95",
  } },
  { selector: ":parent.k-node", style: { "background-color": "#f0f9ff", "border-color": "#0284c7", color: "#075985" } },
  { selector: ":parent.k-task", style: { "background-color": "#fdf4ff", "border-color": "#c026d3", color: "#86198f" } },
  { selector: "node:selected", style: { "border-color": "#f43f5e", "border-width": 3.5 } },
  { selector: "edge", style: {
    width: 1.5, "line-color": "#9aa4b2", "target-arrow-color": "#9aa4b2", "target-arrow-shape": "triangle", "curve-style": "bezier", "arrow-scale": 0.8,
  } },
  { selector: "edge.handoff", style: { "line-color": "#7c3aed", "target-arrow-color": "#7c3aed", width: 2.5, label: "handoff", "font-size": 10, color: "#6d28d9", "text-background-color": "#fff", "text-background-opacity": 1 } },
  { selector: "edge.next-agent", style: { "line-color": "#7c3aed", "target-arrow-color": "#7c3aed", width: 2 } },
  { selector: "edge.fan", style: { "line-color": "#10b981", "target-arrow-color": "#10b981" } },
  { selector: "edge.pending", style: { "line-style": "dashed" } },
];

/** Draw the graph into ``container``; ``onSelect(key)`` when a step is clicked. Returns a controller. */
export function drawGraph(container, model, onSelect, state) {
  const collapsed = state.collapsed;
  const t0 = performance.now();
  const { nodes, edges } = elements(model, collapsed, state.showAll ? Infinity : GRAPH_WINDOW);
  const t1 = performance.now();
  const big = nodes.length > DAGRE_LIMIT;
  const cy = window.cytoscape({
    container, elements: { nodes, edges }, style: STYLE, minZoom: 0.05, maxZoom: 3,
    boxSelectionEnabled: false, autoungrabify: true, textureOnViewport: big, hideEdgesOnViewport: big,
  });
  const layout = big
    ? { name: "breadthfirst", directed: true, roots: ["start"], spacingFactor: 0.9, animate: false }
    : { name: "dagre", rankDir: "TB", nodeSep: 24, rankSep: 36, animate: false };
  const t2 = performance.now();
  cy.layout(layout).run();
  const t3 = performance.now();
  if (state.viewport) cy.viewport(state.viewport);
  else if (nodes.length > 40) {
    cy.zoom(1);
    cy.center(cy.$("#start"));
    cy.panBy({ x: 0, y: -(container.clientHeight / 2 - 50) });
  } else {
    cy.fit(undefined, 24);
    if (cy.zoom() > 1.1) {
      cy.zoom(1.1);
      cy.center();
    }
  }
  cy.on("tap", "node", (event) => {
    if (event.target.data("more")) {
      state.showAll = true;
      state.redraw();
      return;
    }
    const key = event.target.data("key");
    if (key) onSelect(key);
  });
  cy.on("dbltap", "node", (event) => {
    const key = event.target.data("key") || event.target.data("group");
    if (!key || (!event.target.data("group") && !(model.children.get(key) || []).length)) return;
    if (collapsed.has(key)) collapsed.delete(key); else collapsed.add(key);
    state.viewport = { zoom: cy.zoom(), pan: cy.pan() };
    state.redraw();
  });
  cy.on("viewport", () => { state.viewport = { zoom: cy.zoom(), pan: cy.pan() }; });
  container.dataset.nodes = String(cy.nodes().length);
  container.dataset.edges = String(cy.edges().length);
  container.dataset.layout = layout.name;
  container.dataset.windowed = nodes.some((n) => n.data.more) ? "true" : "false";
  window.agentspanGraph = cy;
  window.agentspanGraphTimings = { elements: t1 - t0, init: t2 - t1, layout: t3 - t2, fit: performance.now() - t3 };
  return {
    cy,
    select(key) {
      cy.$(":selected").unselect();
      const node = cy.nodes().filter((n) => n.data("key") === key);
      node.select();
    },
    destroy() { cy.destroy(); },
  };
}

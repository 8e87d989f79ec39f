// What the execution page shows, built from the execution, its journal and its events: the tree of
// steps, the workers' claims (which worker ran which step, and which steps a later claim replayed).
import { ms } from "./util.js";

const GROUP_KINDS = new Set(["agent", "node", "task", "crew", "flow", "graph", "handoff", "subgraph"]);

export function buildModel(execution, steps, events, basePrices) {
  const own = {};
  for (const [name, p] of Object.entries((execution.budget && execution.budget.prices) || {})) own[name] = [p.input, p.output];
  const prices = { ...(basePrices || {}), ...own };
  const byKey = new Map();
  const children = new Map(); // parent key (or "") -> steps in seq order
  const active = [];
  for (const s of steps) {
    if (!s.superseded) byKey.set(s.key, s);
  }
  for (const s of steps) {
    const parent = s.parent && byKey.has(s.parent) ? s.parent : "";
    if (!children.has(parent)) children.set(parent, []);
    children.get(parent).push(s);
    if (!s.superseded) active.push(s);
  }
  for (const list of children.values()) list.sort((a, b) => a.seq - b.seq);

  const claims = claimsOf(events, execution);
  const byEpoch = new Map(claims.map((c) => [c.epoch, c]));
  const info = new Map();
  let t0 = ms(execution.created_at);
  let t1 = t0;
  for (const s of steps) {
    const start = ms(s.started_at);
    const end = s.completed_at ? ms(s.completed_at) : null;
    t1 = Math.max(t1, end || start);
    const claim = byEpoch.get(s.epoch) || null;
    const replayedBy = end === null || s.superseded ? [] : claims.filter((c) => c.epoch > s.epoch && c.start >= end);
    const model = s.kind === "llm" ? s.name : null;
    const usage = s.usage || null;
    info.set(s, {
      start, end,
      duration: end === null ? null : end - start,
      claim,
      worker: s.epoch === 0 ? "copied at fork" : claim ? claim.worker : `epoch ${s.epoch}`,
      replayedBy,
      group: (children.get(s.key) || []).length > 0 || GROUP_KINDS.has(s.kind),
      inDoubt: s.status === "started" && !(execution.status === "running" && claim && claim.end === null),
      retried: s.attempt > 1,
      usage,
      tokens: usage ? tokenCount(usage) : null,
      cost: usage && model ? costOf(model, usage, prices) : null,
      model,
    });
  }
  for (const c of claims) t1 = Math.max(t1, c.end || c.start);
  if (!["completed", "failed", "cancelled"].includes(execution.status)) t1 = Math.max(t1, Date.now());
  else t1 = Math.max(t1, ms(execution.updated_at));
  let totalTokens = 0;
  let totalCost = 0;
  let priced = true;
  for (const s of active) {
    const i = info.get(s);
    if (s.kind === "llm" && s.status === "completed" && i.tokens) totalTokens += i.tokens;
    if (s.kind === "llm") { if (i.cost === null) priced = false; else totalCost += i.cost; }
  }
  return {
    execution, steps, active, byKey, children, claims, info, t0, t1, events,
    totals: { steps: active.length, tokens: totalTokens, cost: priced ? totalCost : null, llm: active.filter((s) => s.kind === "llm").length },
    forkedFrom: execution.forked_from || (events.find((e) => e.type === "execution.queued" && e.data.forked_from) || { data: {} }).data.forked_from || null,
    forks: events.filter((e) => e.type === "execution.forked").map((e) => e.data),
  };
}

/** The workers' turns: each ``execution.running`` event up to what ended it. */
export function claimsOf(events, execution) {
  const claims = [];
  let open = null;
  const close = (e, why) => {
    if (open) { open.end = ms(e.created_at); open.ended = why; open = null; }
  };
  for (const e of events) {
    const t = e.type;
    if (t === "execution.running") {
      close(e, "claimed again");
      open = { worker: e.data.worker_id, epoch: e.data.epoch, start: ms(e.created_at), end: null, ended: null };
      claims.push(open);
    } else if (t === "lease.expired") {
      // The claim sweep names the worker; a claim that found the lease expired names the epoch too.
      const expired = "lease expired: the worker died or hung";
      const matches = (c) => (e.data.epoch !== undefined ? c.epoch === e.data.epoch : c.worker === e.data.worker_id);
      if (open && matches(open)) close(e, expired);
      else {
        const c = [...claims].reverse().find(matches);
        if (c) c.ended = expired;
      }
    } else if (t === "execution.waiting") close(e, "suspended: waiting");
    else if (t === "execution.queued") close(e, "queued again");
    else if (t === "execution.completed") close(e, "completed");
    else if (t === "execution.failed") close(e, "failed");
    else if (t === "execution.cancelled") close(e, "cancelled");
    else if (t === "execution.released") close(e, e.data && e.data.error ? `released after an error: ${e.data.error.message || ""}` : "released");
  }
  if (open && execution.status !== "running") open.ended = open.ended || "lease expired";
  return claims;
}

export function tokenCount(usage) {
  if (!usage || typeof usage !== "object") return null;
  if (typeof usage.total_tokens === "number") return usage.total_tokens;
  const input = usage.prompt_tokens ?? usage.input_tokens ?? 0;
  const output = usage.completion_tokens ?? usage.output_tokens ?? 0;
  return input + output;
}

/** The price of a model as the server finds it: its name without a provider prefix, exactly or else
 * the longest listed name it starts with (USD per million input and output tokens). */
export function priceOf(model, prices) {
  if (!prices || !model) return null;
  const bare = model.includes("/") ? model.split("/").pop() : model;
  if (prices[bare]) return prices[bare];
  let best = null;
  for (const name of Object.keys(prices)) if (bare.startsWith(name) && (!best || name.length > best.length)) best = name;
  return best ? prices[best] : null;
}

function costOf(model, usage, prices) {
  const price = priceOf(model, prices);
  if (!price) return null;
  const input = usage.prompt_tokens ?? usage.input_tokens ?? 0;
  const output = usage.completion_tokens ?? usage.output_tokens ?? 0;
  return (input * price[0] + output * price[1]) / 1e6;
}

/** The steps of one scope, with runs of concurrent siblings gathered into batches (a fan-out). */
export function batches(list) {
  const out = [];
  for (const s of list) {
    const last = out[out.length - 1];
    if (s.concurrent && last && last.concurrent) last.steps.push(s);
    else out.push({ concurrent: s.concurrent, steps: [s] });
  }
  return out;
}

/** The framework part a flat step belongs to, from what its adapter records: a LangGraph node
 * (``input.node``), an OpenAI Agents SDK agent (``input.agent`` of its model calls), a Google ADK agent
 * (``input.config.labels.adk_agent_name``). Null when the step says nothing (it then stays with the
 * part before it: an SDK tool call belongs to the agent whose turn asked for it). */
export function partOf(step) {
  const input = step.input && typeof step.input === "object" && !Array.isArray(step.input) ? step.input : null;
  if (!input) return null;
  if (typeof input.node === "string" && (step.kind === "llm" || step.kind === "tool")) return { kind: "node", name: input.node };
  if (step.kind === "llm" && typeof input.agent === "string") return { kind: "agent", name: input.agent };
  const labels = step.kind === "llm" && input.config && input.config.labels;
  if (labels && typeof labels.adk_agent_name === "string") return { kind: "agent", name: labels.adk_agent_name };
  return null;
}

/** A scope's steps cut where the framework part changes: [{part, steps}], part null where none is known. */
export function segments(list) {
  const out = [];
  let part = null;
  for (const s of list) {
    part = partOf(s) || part;
    const last = out[out.length - 1];
    const same = last && (last.part === part || (last.part && part && last.part.kind === part.kind && last.part.name === part.name));
    if (same) last.steps.push(s);
    else out.push({ part, steps: [s] });
  }
  return out;
}

export function label(step) {
  return `${step.kind} · ${step.name}`;
}

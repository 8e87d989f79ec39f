// The step inspector: everything recorded about one step, and the actions on it.
import { badge, cost, duration, h, jsonView, tokens, when } from "./util.js";

function row(label, value, testid) {
  return h("div.kv", { testid }, h("span", {}, label), h("div", {}, value));
}

/** The panel for ``step``; ``actions`` may hold ``fork(step)`` and ``decision`` (a form element). */
export function drawInspector(container, model, step, actions) {
  const info = model.info.get(step);
  const error = step.error;
  const items = [
    h("header.insp-head", {},
      h("div", {}, h("span.kind", {}, step.kind), " ", h("strong", { testid: "inspector-name" }, step.name)),
      h("div", {}, badge(step.status), step.superseded ? h("span.tag", {}, "divergent") : null, info.inDoubt ? h("span.tag.warn", {}, "in doubt") : null,
        step.attempt > 1 ? h("span.tag.warn", {}, `attempt ${step.attempt}`) : null, step.concurrent ? h("span.tag", {}, "parallel") : null)),
  ];
  if (actions.decision) items.push(h("div.insp-section", {}, h("h4", {}, "Waiting for a decision"), actions.decision));
  const facts = h("div.insp-section.facts", {},
    row("Duration", duration(info.duration), "inspector-duration"),
    row("Started", when(step.started_at)),
    row("Finished", when(step.completed_at)),
    row("Worker", `${info.worker}${step.epoch ? ` · epoch ${step.epoch}` : ""}`, "inspector-worker"),
    info.replayedBy.length ? row("Replayed by", info.replayedBy.map((c) => `${c.worker} (epoch ${c.epoch})`).join(", "), "inspector-replayed") : null,
    row("Attempts", String(step.attempt)),
    info.usage ? row("Usage", `${tokens(info.tokens)} tokens${info.cost !== null ? ` · ${cost(info.cost)}` : ""}`, "inspector-usage") : null,
    step.wait ? row("Waits for", step.wait.signal ? `signal ${step.wait.signal}` : `timer until ${step.wait.wake_at}`) : null,
    row("Key", h("code.wrap", {}, step.key)),
    row("Idempotency key", h("code.wrap", { testid: "inspector-idempotency" }, step.idempotency_key || "–")),
    step.parent ? row("Inside", h("code.wrap", {}, step.parent)) : null,
    row("Seq", String(step.seq)),
  );
  items.push(facts);
  if (error) {
    items.push(h("div.insp-section", { testid: "inspector-error" }, h("h4", {}, "Error"),
      h("p.error", {}, h("code", {}, error.type), ": ", error.message),
      error.traceback ? h("details", { open: true }, h("summary", {}, "Traceback"), h("pre.trace", {}, error.traceback)) : null));
  }
  items.push(h("div.insp-section", { testid: "inspector-input" }, h("h4", {}, "Input"), jsonView(step.input, "input")));
  if (step.status === "completed") items.push(h("div.insp-section", { testid: "inspector-output" }, h("h4", {}, "Output"), jsonView(step.output, "output")));
  if (actions.fork && !step.superseded) {
    items.push(h("div.insp-section", {}, h("h4", {}, "Fork"),
      h("p.muted", {}, "A new execution of the same agent and input: the steps before this one are replayed from this journal, this step and everything after it run fresh."),
      h("button", { type: "button", testid: "fork", onclick: (e) => { e.target.disabled = true; actions.fork(step).finally(() => { e.target.disabled = false; }); } }, "Fork from this step")));
  }
  container.append(h("div.inspector-body", { testid: "inspector", dataset: { key: step.key } }, items));
}

// The conversation, rebuilt from the model steps turn by turn: what each call was sent (the messages
// new since the previous turn), what it answered, and its tokens, cost and latency.
import { cost, duration, h, jsonView, tokens } from "./util.js";

function textOf(content) {
  if (content === null || content === undefined) return "";
  if (typeof content === "string") return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p === "string" ? p : p.text || p.content || JSON.stringify(p))).join("\n");
  return JSON.stringify(content, null, 2);
}

/** The messages of a model step's input and output in the shapes the adapters record. */
export function messagesOf(step) {
  const input = step.input && typeof step.input === "object" ? step.input : {};
  const sent = input.messages || input.input || input.contents || input.prompt || [];
  const out = step.output && typeof step.output === "object" ? step.output : {};
  let answer = out.message || out.output || out.content || out.response || null;
  if (Array.isArray(answer) && answer.length === 1) answer = answer[0];
  return { sent: Array.isArray(sent) ? sent : [sent], answer };
}

function message(m) {
  if (m === null || m === undefined) return null;
  if (typeof m === "string") return h("div.msg.user", {}, h("div.role", {}, "text"), h("div.text", {}, m));
  const role = m.role || m.type || "message";
  const calls = m.tool_calls || (m.type === "function_call" ? [m] : null);
  const body = textOf(m.content ?? m.text ?? (m.parts ? m.parts.map((p) => p.text || "").join("") : null));
  return h(`div.msg.${String(role).replace(/[^a-z_]/gi, "")}`, { testid: "message" },
    h("div.role", {}, role, m.name ? ` · ${m.name}` : "", m.tool_call_id ? h("span.muted", {}, ` (${m.tool_call_id})`) : ""),
    body ? h("div.text", {}, body) : null,
    calls ? h("div.calls", {}, calls.map((c) => h("div.call", {}, "→ ", h("code", {}, c.name || (c.function && c.function.name) || "call"), " ",
      h("span.mono", {}, typeof c.arguments === "string" ? c.arguments : JSON.stringify(c.arguments ?? (c.function && c.function.arguments) ?? {}))))) : null,
    !body && !calls && typeof m === "object" ? jsonView(m, "message") : null,
  );
}

export function drawConversation(container, model, onSelect) {
  const turns = model.active.filter((s) => s.kind === "llm").sort((a, b) => a.seq - b.seq);
  if (!turns.length) {
    container.append(h("div.empty", {}, "No model calls recorded yet."));
    return;
  }
  const list = h("div.conversation", { testid: "conversation" });
  turns.forEach((s, i) => {
    const info = model.info.get(s);
    const { sent, answer } = messagesOf(s);
    const scope = s.parent && model.byKey.has(s.parent) ? model.byKey.get(s.parent) : null;
    list.append(h("section.turn", { testid: "turn", dataset: { key: s.key } },
      h("header", { onclick: () => onSelect(s.key) },
        h("strong", {}, `Turn ${i + 1}`), " ", h("code", {}, s.name), scope ? h("span.muted", {}, ` in ${scope.kind} ${scope.name}`) : null,
        h("span.spacer"),
        h("span.stat", { title: "latency" }, duration(info.duration)),
        h("span.stat", { title: s.usage ? JSON.stringify(s.usage) : "" }, `${tokens(info.tokens)} tokens`),
        h("span.stat", { title: "cost at list prices" }, cost(info.cost))),
      h("div.sent", {}, sent.map(message)),
      answer ? h("div.answer", {}, message(answer)) : s.status === "failed" ? h("p.error", {}, s.error ? `${s.error.type}: ${s.error.message}` : "failed") : h("p.muted", {}, s.status === "started" ? "waiting for the model…" : ""),
    ));
  });
  container.append(list);
}

// The decision form of one pending wait: approve, reject with a reason, edit the arguments, respond.
import { api } from "./api.js";
import { h, jsonView, toast } from "./util.js";

/** The form for ``item`` (an inbox item); ``done(item)`` runs after a decision was recorded. */
export function decisionForm(item, done) {
  const reason = h("input", { type: "text", placeholder: "Why not (the agent sees this)", testid: "reject-reason" });
  const editor = h("textarea.code", { rows: 6, testid: "edit-arguments", spellcheck: "false" });
  editor.value = JSON.stringify(item.arguments ?? {}, null, 2);
  const answer = h("textarea.code", { rows: 3, testid: "respond-value", placeholder: "Your answer: text, or JSON" });
  const problem = h("p.error", { hidden: true, testid: "decision-error" });
  const edit = h("div.edit", { hidden: true }, h("label", {}, "Arguments to approve instead (JSON)"), editor,
    h("div.row", {}, h("button.primary", { type: "button", testid: "approve-edited", onclick: () => go(() => {
      let args;
      try { args = JSON.parse(editor.value); } catch (err) { throw new Error(`the arguments are not JSON: ${err.message}`); }
      if (args === null || typeof args !== "object" || Array.isArray(args)) throw new Error("the arguments must be a JSON object");
      return api.approve(item.id, args);
    }, "Approved with edited arguments") }, "Approve edited call")));

  async function go(action, message) {
    problem.hidden = true;
    for (const b of form.querySelectorAll("button")) b.disabled = true;
    try {
      const decided = await action();
      toast(message);
      window.dispatchEvent(new Event("agentspan:approvals-changed"));
      done(decided);
    } catch (err) {
      problem.textContent = err.message;
      problem.hidden = false;
      for (const b of form.querySelectorAll("button")) b.disabled = false;
    }
  }

  const buttons = [];
  if (item.type === "tool_approval") {
    buttons.push(
      h("button.primary", { type: "button", testid: "approve", onclick: () => go(() => api.approve(item.id), "Approved") }, "Approve"),
      h("button", { type: "button", testid: "edit", onclick: () => { edit.hidden = !edit.hidden; } }, "Edit arguments…"),
      reason,
      h("button.danger", { type: "button", testid: "reject", onclick: () => go(() => api.reject(item.id, reason.value || "rejected in the Agentspan UI"), "Rejected") }, "Reject"),
    );
  } else {
    buttons.push(
      h("button.primary", { type: "button", testid: "approve", onclick: () => go(() => api.approve(item.id), "Approved") }, "Approve"),
      answer,
      h("button", { type: "button", testid: "respond", onclick: () => go(() => {
        let value = answer.value;
        try { value = JSON.parse(answer.value); } catch { /* plain text */ }
        return api.respond(item.id, value);
      }, "Answered") }, "Send answer"),
    );
    if (item.type === "human_input") {
      buttons.push(reason, h("button.danger", { type: "button", testid: "reject", onclick: () => go(() => api.reject(item.id, reason.value || "rejected in the Agentspan UI"), "Rejected") }, "Reject"));
    }
  }
  const what = [];
  if (item.tool) what.push(h("div.kv", {}, h("span", {}, "Tool"), h("code", { testid: "approval-tool" }, item.tool)));
  if (item.arguments !== null && item.arguments !== undefined) what.push(h("div.kv", {}, h("span", {}, "Arguments"), jsonView(item.arguments, "arguments")));
  if (item.question !== null && item.question !== undefined) what.push(h("div.kv", {}, h("span", {}, "Question"), typeof item.question === "string" ? h("p", {}, item.question) : jsonView(item.question, "question")));
  const form = h("div.decision", { testid: "decision" }, what, h("div.row.actions", {}, buttons), edit, problem);
  return form;
}

"""The agent loop: model call → the tool calls it asked for (concurrently) → model call … → answer.

It runs as a durable function: every model call and every tool call is a durable step. A model
step's key comes from its whole request (so a changed prompt is a divergence); a tool step's key
comes from the turn and the tool-call id the model gave, which the replayed model step returns
unchanged, so keys are stable on replay whatever order parallel calls finish in.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from ..durable import FunctionDefinition, current_step, run_step_async
from ..durable._codec import Codec, fingerprint, to_json
from ..durable._context import Suspended, current_context
from ..errors import AgentspanError, ConfigurationError, GuardrailError
from ..runtime._approval import DEFAULT_REJECTION, Decision, approval_signal, decision_of, timed_out
from ._agent import Agent
from ._guarding import Guarding, retry_request
from ._tool import ToolContext, ToolDefinition, ToolError
from ._types import Message, ModelRequest, ModelResponse, ToolCall, ToolSpec, Usage
from .models import Model, get_model

__all__ = ["AgentOutputError", "agent_function", "run_agent"]

_RESPONSE = Codec(ModelResponse)


class AgentOutputError(AgentspanError):
    """The final answer does not match the agent's ``output_type``."""


def _usage(response: ModelResponse) -> dict[str, int]:
    return response.usage.model_dump()


def _subagent_spec(agent: Agent) -> ToolSpec:
    description = agent.instructions.split("\n\n", 1)[0].strip() or f"Ask the {agent.name} agent."
    return ToolSpec(
        name=agent.name,
        description=f"Delegate to the {agent.name} agent: {description}",
        parameters={
            "type": "object",
            "properties": {"request": {"type": "string", "description": "What to ask the agent."}},
            "required": ["request"],
            "additionalProperties": False,
        },
    )


class _Run:
    """One run of one agent: its model, tools and conversation."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.model: Model = agent.model if isinstance(agent.model, Model) else get_model(agent.model)
        self.tools: dict[str, ToolDefinition] = {d.name: d for d in agent.tool_definitions}
        self.subagents: dict[str, Agent] = {a.name: a for a in agent.agents}
        self.specs = [d.spec() for d in self.tools.values()] + [_subagent_spec(a) for a in agent.agents]
        self.usage = Usage()
        self.tool_log: list[dict[str, Any]] = []
        self.output_schema = None if agent.output_type is None else agent.output_type.model_json_schema()
        # What every model call shares: tools, settings, output schema (part of the first call's key).
        self.setup = fingerprint(
            {
                "tools": [spec.model_dump() for spec in self.specs],
                "settings": agent.settings.model_dump(exclude_none=True),
                "output_schema": self.output_schema,
            }
        )
        self.chain: str | None = None
        self.recorded = 0
        self.waiting: list[Suspended] = []
        self.edited: dict[str, str] = {}  # tool call id -> the arguments a person approved instead
        self.guarding = Guarding(agent.guardrails, agent=agent.name)
        self.tool_guarding = {
            d.name: Guarding(d.guardrails, agent=agent.name) for d in self.tools.values() if d.guardrails
        }

    async def model_call(self, messages: list[Message], turn: int) -> ModelResponse:
        request = ModelRequest(
            model=self.model.name, messages=messages, tools=self.specs, settings=self.agent.settings,
            output_schema=self.output_schema,
        )  # fmt: skip
        # The conversation grows by a few messages a turn; recording it whole at every model call
        # would store (and hash) it again and again. A model step records the messages added since
        # the previous model call, and its identity chains to the previous call's, so the key still
        # depends on the whole conversation (a changed prompt is still a divergence).
        added = [m.model_dump(mode="json", exclude_defaults=True) for m in messages[self.recorded :]]
        identity = {"previous": self.chain, "model": self.agent.model_name, "added": added, "setup": self.setup}
        recorded = {"turn": turn, "messages": added}
        if self.chain is None:
            recorded["tools"] = [spec.name for spec in self.specs]
            recorded["settings"] = self.agent.settings.model_dump(exclude_none=True)
        response: ModelResponse = await run_step_async(
            "llm",
            self.agent.model_name,
            recorded,
            lambda: asyncio.to_thread(self.model.complete, request),
            codec=_RESPONSE,
            identity=identity,
            usage_of=_usage,
        )
        self.chain = fingerprint(identity)
        self.recorded = len(messages) + 1  # the answer is in this step's output
        return response

    async def tool_call(self, call: ToolCall, turn: int) -> Message:
        try:
            content = await self._invoke(call, turn)
        except Suspended as exc:
            # A call waits for approval: the turn's other calls go on, and the run suspends once they
            # are done (see wait_if_any), so every waiting call of the turn is visible at once.
            self.waiting.append(exc)
            return Message(role="tool", tool_call_id=call.id, name=call.name, content="")
        except ToolError as exc:
            content = f"Error: {exc}"
        except AgentspanError:
            raise  # a lost lease, a divergence in strict mode: not the model's business
        except Exception as exc:
            content = f"Error: {type(exc).__name__}: {exc}"
        arguments = self.edited.pop(call.id, call.arguments)  # what the tool ran with
        self.tool_log.append({"id": call.id, "name": call.name, "arguments": arguments, "result": content})
        return Message(role="tool", tool_call_id=call.id, name=call.name, content=content)

    async def _invoke(self, call: ToolCall, turn: int) -> str:
        identity = {"turn": turn, "tool_call_id": call.id}
        if call.name in self.subagents:
            sub = self.subagents[call.name]
            request = _subagent_request(call)
            answer = await run_step_async(
                "agent",
                sub.name,
                {"request": request},
                lambda: run_agent(sub, request),
                identity=identity,
                ordered=False,  # keyed by tool call id: the calls of a turn run side by side
            )
            # The sub-agent's model calls (and its own sub-agents') count in this run's usage too.
            self.usage = self.usage + Usage.model_validate(answer.get("usage") or {})
            return str(answer["output"])
        definition = self.tools.get(call.name)
        if definition is None:
            available = ", ".join(self.tools) or "none"
            raise ToolError(f"there is no tool named {call.name!r}; the tools are: {available}")
        arguments = definition.parse(call.arguments)
        if definition.approval_required:
            decision = await self._approval(definition, call)
            if not decision.approved:
                return decision.reason or DEFAULT_REJECTION
            if decision.arguments is not None:
                # Checked against the schema when it was delivered; parsed as the model's would be.
                self.edited[call.id] = json.dumps(decision.arguments, ensure_ascii=False)
                arguments = definition.parse(self.edited[call.id])
        guarding = self.tool_guarding.get(definition.name)
        if guarding is not None:
            checked = await _check_arguments(guarding, definition, self.edited.get(call.id, call.arguments), identity)
            if isinstance(checked, str):
                return checked  # refused: the model is told why, the tool does not run
            arguments = checked

        async def invoke() -> Any:
            info = current_step()
            if info is None:  # durability off (the loop outside an execution): nothing to point at
                context = ToolContext("", "", f"call-{call.id}", 1, self.agent.name)
            else:
                context = ToolContext(info.execution_id, info.key, info.idempotency_key, info.attempt, self.agent.name)
            return await definition.call_async(arguments, context)

        result: Any = await run_step_async(
            "tool", definition.name, {"arguments": to_json(arguments, f"the arguments of {call.name}")}, invoke,
            identity=identity, retries=definition.retries, retry_delay=definition.retry_delay,
            in_doubt=definition.in_doubt, ordered=False,  # keyed by tool call id: a turn's calls run side by side
        )  # fmt: skip
        text = result if isinstance(result, str) else json.dumps(result, ensure_ascii=False)
        if guarding is None:
            return text
        verdict = await guarding.check_async("output", text, subject=f"result of {definition.name}", identity=identity)
        if verdict.retry is not None:
            return f"Error: guardrail {verdict.guardrail} withheld the result of {definition.name}: {verdict.retry}"
        return verdict.text

    async def _approval(self, definition: ToolDefinition, call: ToolCall) -> Decision:
        """The decision on ``call``: waits (durably, on ``approval:<call id>``) until one is delivered."""
        found = current_context()
        if found is None:
            raise ConfigurationError(
                f"tool {definition.name} needs approval, which only works in a durable execution:"
                " run the agent with AgentRuntime"
            )
        ctx = found[0]
        details = {
            "tool": definition.name,
            "arguments": json.loads(call.arguments or "{}"),  # valid: parse() checked it
            "call_id": call.id,
            "agent": self.agent.name,
            "framework": "native",
            "schema": definition.parameters,
        }
        timeout = definition.approval_timeout
        default = None if timeout is None else timed_out(definition.approval_default == "approve", timeout).payload()

        def wait() -> Any:
            return ctx.wait_for_signal(
                approval_signal(call.id), kind="approval", details=details, timeout=timeout, default=default,
                ordered=False,  # keyed by tool call id: a turn's calls run side by side
            )  # fmt: skip

        # A timed-out wait delivers its default through the client: over HTTP, not on the event loop.
        payload = wait() if ctx.writer.inline else await asyncio.to_thread(wait)
        return decision_of(payload)

    def wait_if_any(self) -> None:
        """Suspend the run if calls of the turn just run wait for approval."""
        if self.waiting:
            first, self.waiting = self.waiting[0], []
            raise first

    def finish(self, messages: list[Message], finish_reason: str, turns: int) -> dict[str, Any]:
        final = messages[-1].content if messages and messages[-1].role == "assistant" else None
        structured = None
        if self.agent.output_type is not None and finish_reason == "stop":
            try:
                structured = self.agent.output_type.model_validate_json(final or "").model_dump(mode="json")
            except ValidationError as exc:
                raise AgentOutputError(
                    f"agent {self.agent.name}: the final answer is not a valid {self.agent.output_type.__name__}:"
                    f" {exc.errors(include_url=False)[0]['msg']}"
                ) from None
        return {
            "output": final or "",
            "structured": structured,
            "messages": [m.model_dump(mode="json", exclude_defaults=True) for m in messages],
            "tool_calls": self.tool_log,
            "usage": self.usage.model_dump(),
            "finish_reason": finish_reason,
            "turns": turns,
        }


async def _check_arguments(
    guarding: Guarding, definition: ToolDefinition, arguments: str, identity: dict[str, Any]
) -> dict[str, Any] | str:
    """The arguments to run the tool with after its input guardrails, or what the model is told instead."""
    text = arguments or "{}"
    verdict = await guarding.check_async("input", text, subject=f"arguments of {definition.name}", identity=identity)
    if verdict.retry is not None:
        return (
            f"Error: guardrail {verdict.guardrail} refused these arguments: {_sentence(verdict.retry)}"
            f" Call {definition.name} again with other arguments."
        )
    try:
        return definition.parse(verdict.text)
    except ToolError as exc:
        names = ", ".join(g.name for g in guarding.of("input"))
        raise GuardrailError(
            f"guardrail {names} fixed the arguments of {definition.name} into ones the tool does not take: {exc}",
            guardrail=names,
        ) from None


def _sentence(text: str) -> str:
    """``text`` ending with one full stop (a guardrail's message inside a sentence of ours)."""
    text = text.strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _subagent_request(call: ToolCall) -> str:
    try:
        data = json.loads(call.arguments or "{}")
    except json.JSONDecodeError:
        raise ToolError(f'the arguments for {call.name} are not valid JSON; send {{"request": "..."}}') from None
    if not isinstance(data, dict) or not isinstance(data.get("request"), str):
        raise ToolError(f"{call.name} takes one argument, request: a string")
    return str(data["request"])


async def run_agent(agent: Agent, prompt: str) -> dict[str, Any]:
    """Run ``agent`` on ``prompt`` until a final answer or ``max_turns``; durable inside an execution.

    Returns the result as JSON: output, structured output, messages, tool calls, usage, finish reason.
    """
    run = _Run(agent)
    try:
        return await _loop(run, prompt)
    finally:
        if run.model is not agent.model:  # made from the "provider/model" spec: its connections are ours
            close = getattr(run.model, "close", None)
            if callable(close):
                close()


async def _loop(run: _Run, prompt: str) -> dict[str, Any]:
    agent = run.agent
    # The prompt cannot be asked for again: a failed input guardrail that would retry ends the run.
    prompt = (await run.guarding.check_async("input", prompt, subject="prompt", can_retry=False)).text
    messages: list[Message] = []
    if agent.instructions:
        messages.append(Message(role="system", content=agent.instructions))
    messages.append(Message(role="user", content=prompt))
    for turn in range(1, agent.max_turns + 1):
        response = await run.model_call(messages, turn)
        run.usage = run.usage + response.usage
        messages.append(response.message)
        if not response.message.tool_calls:
            answer = response.message.content or ""
            verdict = await run.guarding.check_async("output", answer, subject="answer")
            if verdict.retry is not None:
                # Asked again in this execution: the refused answer stays in the conversation, so the
                # model sees what it wrote and why it was not accepted.
                messages.append(Message(role="user", content=retry_request(verdict.retry)))
                continue
            if verdict.text != answer:  # fixed, redacted or edited by a person
                messages[-1] = response.message.model_copy(update={"content": verdict.text})
            return run.finish(messages, response.finish_reason or "stop", turn)
        results = await asyncio.gather(*(run.tool_call(call, turn) for call in response.message.tool_calls))
        run.wait_if_any()
        messages.extend(results)
    return run.finish(messages, "max_turns", agent.max_turns)


def agent_function(agent: Agent) -> Callable[..., Any]:
    """The durable function a worker runs for ``agent`` (the same object each time it is asked)."""
    found: Callable[..., Any] | None = agent.__dict__.get("_function")
    if found is not None:
        return found

    async def entry(prompt: str) -> dict[str, Any]:
        return await run_agent(agent, prompt)

    entry.__agentspan_function__ = FunctionDefinition(  # type: ignore[attr-defined]
        name=agent.name, fn=entry, strict=False, codec=Codec(None), framework="native"
    )
    object.__setattr__(agent, "_function", entry)  # the agent is frozen; this is a cache
    return entry

"""An SDK ``Agent`` as a durable function: the SDK's ``Runner`` runs it, each call is a step.

The execution input is ``{"prompt": <the input as JSON>}`` (a string, or a list of input items); the
output is what :class:`~agentspan.agents.AgentResult` reads: ``output`` (the final output as text),
``structured`` (the final output as JSON when it is not a string), ``messages`` (the run's input items
plus the items it produced), ``tool_calls``, ``usage`` and ``finish_reason``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import weakref
from collections.abc import Callable
from typing import Any

from agents import RunConfig, Runner
from agents.agent import Agent
from agents.models.multi_provider import MultiProvider

from ...durable import FunctionDefinition
from ...durable._codec import Codec, to_json
from ...durable._context import current_context
from ...durable._definitions import _check_name
from ...errors import ConfigurationError
from .._guardrails import check_answer_async, guarding_of
from . import _live
from ._approval import resolve_approvals
from ._model import DurableModelProvider
from ._patch import install
from ._scope import agentspan_run

__all__ = ["agent_function", "agent_name", "durable_run_config", "execution_input", "is_openai_agent"]

# SDK agents are unhashable dataclasses: their functions are kept by identity while the agent lives.
_functions: dict[int, tuple[weakref.ref[Any], dict[str, Callable[..., Any]]]] = {}


def is_openai_agent(obj: Any) -> bool:
    """Whether ``obj`` is an OpenAI Agents SDK ``Agent`` (or a subclass)."""
    return isinstance(obj, Agent)


def agent_name(agent: Any, name: str | None = None) -> str:
    """The name a run of ``agent`` is created and claimed by: ``name``, else the agent's name made valid
    (characters other than letters, digits and ``_ . : - /`` become ``-``)."""
    if name:
        return name
    return re.sub(r"[^A-Za-z0-9_.:/-]", "-", str(agent.name))[:200] or "openai-agent"


def tracing_wanted() -> bool:
    """Whether the SDK's tracing stays on in Agentspan runs: only when ``OPENAI_AGENTS_DISABLE_TRACING``
    is set to a false value (``0``, ``false``, ``no``, ``off``). Otherwise it is off, so that an
    ``OPENAI_API_KEY`` in the environment does not make the SDK export traces nobody asked for."""
    value = os.environ.get("OPENAI_AGENTS_DISABLE_TRACING")
    return value is not None and value.strip().lower() in ("0", "false", "no", "off")


def durable_run_config(run_config: RunConfig | None = None) -> RunConfig:
    """``run_config`` (or a default one) with its model provider wrapped in a
    :class:`~._model.DurableModelProvider` (and the SDK's model and tool resolution made durable, see
    :func:`~._patch.install`), and the SDK's tracing off unless :func:`tracing_wanted`."""
    install()
    config = run_config or RunConfig()
    if not tracing_wanted() and not config.tracing_disabled:
        config = dataclasses.replace(config, tracing_disabled=True)
    provider = config.model_provider
    if isinstance(provider, DurableModelProvider):
        return config
    return dataclasses.replace(config, model_provider=DurableModelProvider(provider or MultiProvider()))


def execution_input(value: Any) -> dict[str, Any]:
    """The execution input for running an agent on ``value`` (a prompt or a list of input items)."""
    return {"prompt": to_json(value, "the agent input")}


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(to_json(value, "the final output"), ensure_ascii=False)


def _tool_calls(items: list[Any]) -> list[dict[str, Any]]:
    calls: dict[str, dict[str, Any]] = {}
    found: list[dict[str, Any]] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "function_call":
            calls[str(item.get("call_id"))] = item
        elif item.get("type") == "function_call_output":
            call = calls.get(str(item.get("call_id")), {})
            output = item.get("output")
            found.append(
                {
                    "id": item.get("call_id"),
                    "name": call.get("name"),
                    "arguments": call.get("arguments"),
                    "result": output if isinstance(output, str) else json.dumps(output, ensure_ascii=False),
                }
            )
    return found


async def _check_prompt(guarding: Any, prompt: Any) -> Any:
    """Check the prompt (a string, or the last user item's text) with the input guardrails."""
    if isinstance(prompt, str):
        return (await guarding.check_async("input", prompt, subject="prompt", can_retry=False)).text
    if isinstance(prompt, list):
        for index in range(len(prompt) - 1, -1, -1):
            item = prompt[index]
            if isinstance(item, dict) and item.get("role") == "user" and isinstance(item.get("content"), str):
                verdict = await guarding.check_async("input", item["content"], subject="prompt", can_retry=False)
                return [*prompt[:index], {**item, "content": verdict.text}, *prompt[index + 1 :]]
    raise ConfigurationError(
        "input guardrails check the prompt's text: give a string or a list ending in a user message"
    )


def run_output(result: Any, usage: dict[str, int]) -> dict[str, Any]:
    """The execution output for a finished ``RunResult``; ``usage`` counts every model call of the run."""
    final = result.final_output
    messages = to_json(result.to_input_list(), "the run's items")
    return {
        "output": _text(final),
        "structured": None if isinstance(final, str) else to_json(final, "the final output"),
        "messages": messages,
        "tool_calls": _tool_calls(messages),
        "usage": usage,
        "finish_reason": "stop",
        "last_agent": result.last_agent.name,
    }


async def _forward(streamed: Any, live: _live.LiveCall) -> Any:
    """Hand the stream events of a streamed run to the caller, except those of replayed steps."""
    found = current_context()

    def caught_up() -> bool:
        return found is None or found[0].caught_up

    fresh: set[int] = set()
    queue = getattr(streamed, "_event_queue", None)
    if queue is not None:  # the SDK's queue (0.20 to 0.24): tag each event when the SDK produces it,
        put = queue.put_nowait  # since by the time it is read the run may have moved on

        def tagged(item: Any) -> None:
            if caught_up():
                fresh.add(id(item))
            put(item)

        queue.put_nowait = tagged
    async for event in streamed.stream_events():
        if id(event) in fresh or (queue is None and caught_up()):
            fresh.discard(id(event))
            live.emit(event)
    return streamed


def agent_function(
    agent: Agent[Any],
    name: str | None = None,
    *,
    run_config: RunConfig | None = None,
    max_turns: int | None = None,
) -> Callable[..., Any]:
    """The durable function a worker runs for ``agent``.

    It runs ``Runner.run(agent, prompt, run_config=durable_run_config(run_config), max_turns=...)`` inside
    an Agentspan run: every model call and function-tool call, also of handoff targets and of agents
    run as tools, is a step. Without ``run_config`` and ``max_turns`` the same function is returned
    each time it is asked for the same agent and name (serve it with ``agentspan worker module:attr``
    when the options are needed).

    Args:
        agent: The SDK agent the run starts with.
        name: The name executions are created and claimed by (see :func:`agent_name`).
        run_config: The SDK's run configuration (its model provider is wrapped).
        max_turns: The SDK's turn limit (default: the SDK's).
    """
    install()
    name = _check_name(agent_name(agent, name))
    cached = run_config is None and max_turns is None
    known: dict[str, Callable[..., Any]] = {}
    if cached:
        found = _functions.get(id(agent))
        if found is None or found[0]() is not agent:
            key = id(agent)
            found = _functions[key] = (weakref.ref(agent, lambda _: _functions.pop(key, None)), {})
        known = found[1]
        if name in known:
            return known[name]
    options: dict[str, Any] = {} if max_turns is None else {"max_turns": max_turns}

    async def entry(prompt: Any, guardrails: list[str] | None = None) -> dict[str, Any]:
        guarding = guarding_of(name, guardrails, "openai_agents")
        found = current_context()
        live = _live.find(found[0].execution_id) if found is not None else None
        kwargs = dict(options)
        config = run_config
        if live is not None:
            kwargs.update(live.options)
            config = live.run_config or config
        durable_config = durable_run_config(config)

        async def run(value: Any) -> Any:
            if live is None or live.stream is None:
                return await Runner.run(agent, value, run_config=durable_config, **kwargs)
            return await _forward(Runner.run_streamed(agent, value, run_config=durable_config, **kwargs), live)

        def waiting(result: Any) -> None:
            if live is not None:
                live.finish(result)

        async def again(previous: Any, feedback: str) -> Any:
            # Asked again with the guardrail's message: the conversation so far plus one user message.
            value = [*previous.to_input_list(), {"role": "user", "content": feedback}]
            return await resolve_approvals(await run(value), run, waiting)

        checked: str | None = None
        with agentspan_run() as usage:
            try:
                if guarding is not None and guarding.of("input"):
                    prompt = await _check_prompt(guarding, prompt)
                result = await resolve_approvals(await run(prompt), run, waiting)
                if guarding is not None:
                    result, checked = await check_answer_async(guarding, result, lambda r: _text(r.final_output), again)
            except Exception as exc:
                if live is not None:
                    live.finish(error=exc)
                raise
        if live is not None:
            live.finish(result)
        output = run_output(result, usage.as_dict())
        if checked is not None and checked != output["output"]:
            output.update(output=checked, structured=None)  # the structured form holds what was replaced
        return output

    entry.__agentspan_function__ = FunctionDefinition(  # type: ignore[attr-defined]
        name=name, fn=entry, strict=False, codec=Codec(None), framework="openai_agents"
    )
    known[name] = entry
    return entry

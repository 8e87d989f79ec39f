"""An ADK agent or ``App`` as a durable function: ADK's own ``Runner`` runs it, each call is a step.

The execution input is ``{"prompt": <text>}``; the output is what :class:`~agentspan.agents.AgentResult`
reads: ``output`` (the text of the run's final response), ``structured`` (that text as JSON when the
root agent has an ``output_schema``), ``tool_calls``, ``usage`` and ``finish_reason``, with ``events``
(the session's events as JSON) and ``state`` (the session's final state).

Each attempt runs on a fresh ``InMemorySessionService`` (and artifact service), rebuilt by replaying
the journal: a resumed run never appends an event twice to a session. A long-running tool call
left unanswered when the Runner stops waits durably for its result (``result:<call id>``), which the
Runner is then given as ADK's ``FunctionResponse`` (see :mod:`._approval`).
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import re
import weakref
from collections.abc import Callable
from typing import Any

from google.adk.agents.base_agent import BaseAgent
from google.adk.agents.run_config import RunConfig
from google.adk.apps.app import App
from google.adk.artifacts.in_memory_artifact_service import InMemoryArtifactService
from google.adk.runners import Runner
from google.adk.sessions.in_memory_session_service import InMemorySessionService
from google.genai import types

from ...agents._guarding import Guarding
from ...durable import FunctionDefinition
from ...durable._codec import Codec, to_json
from ...durable._context import current_context
from ...durable._definitions import _check_name
from ...errors import ConfigurationError
from .._guardrails import check_answer_async, guarding_of
from ._approval import long_running_results
from ._patch import install
from ._scope import adk_run, raise_if_failed

__all__ = ["agent_function", "agent_name", "execution_input", "is_adk"]

USER_ID = "agentspan"
"""The user every durable run's session belongs to."""

# A target's functions, by name, kept while the target lives.
_functions: dict[int, tuple[weakref.ref[Any], dict[str, Callable[..., Any]]]] = {}


def is_adk(obj: Any) -> bool:
    """Whether ``obj`` is an ADK agent (``BaseAgent``: ``LlmAgent``, ``SequentialAgent``...) or ``App``."""
    return isinstance(obj, BaseAgent | App)


def _check(target: Any) -> Any:
    if isinstance(target, type) and issubclass(target, BaseAgent | App):
        raise ConfigurationError(f"expected an ADK agent or App instance, not the class {target.__name__}: create one")
    if not is_adk(target):
        raise ConfigurationError(
            f"expected a Google ADK agent (LlmAgent, SequentialAgent...) or App, not {type(target).__name__}"
        )
    return target


def agent_name(target: Any, name: str | None = None) -> str:
    """The name a run of ``target`` is created and claimed by: ``name``, else the agent's (or app's) name
    made valid (characters other than letters, digits and ``_ . : - /`` become ``-``)."""
    if name:
        return name
    return re.sub(r"[^A-Za-z0-9_.:/-]", "-", str(target.name))[:200] or "google-adk"


def execution_input(prompt: Any) -> dict[str, Any]:
    """The execution input for running an agent on ``prompt`` (text)."""
    if not isinstance(prompt, str):
        raise ConfigurationError(f"an ADK agent is run on a prompt (text), not {type(prompt).__name__}")
    return {"prompt": prompt}


def _root(target: Any) -> Any:
    return target.root_agent if isinstance(target, App) else target


def _runner(target: Any, sessions: InMemorySessionService) -> Runner:
    artifacts = InMemoryArtifactService()
    if isinstance(target, App):
        return Runner(app=target, session_service=sessions, artifact_service=artifacts)
    return Runner(app_name=agent_name(target), agent=target, session_service=sessions, artifact_service=artifacts)


def _text(event: Any) -> str:
    parts = event.content.parts if event.content is not None and event.content.parts else []
    return "".join(part.text for part in parts if part.text and not part.thought)


def _tool_calls(events: list[Any]) -> list[dict[str, Any]]:
    calls: dict[str, dict[str, Any]] = {}
    found: list[dict[str, Any]] = []
    for event in events:
        for call in event.get_function_calls():
            calls[str(call.id)] = {"id": call.id, "name": call.name, "arguments": dict(call.args or {})}
        for response in event.get_function_responses():
            call = calls.get(str(response.id), {"id": response.id, "name": response.name, "arguments": None})
            result = to_json(response.response, "a tool result", check=False)
            found.append({**call, "result": result if isinstance(result, str) else json.dumps(result)})
    return found


def _usage(events: list[Any]) -> dict[str, int]:
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for event in events:
        if event.usage_metadata is not None and not event.partial:
            usage["prompt_tokens"] += event.usage_metadata.prompt_token_count or 0
            usage["completion_tokens"] += event.usage_metadata.candidates_token_count or 0
            usage["total_tokens"] += event.usage_metadata.total_token_count or 0
    return usage


def _final_text(events: list[Any]) -> str:
    """The text of the run's final response."""
    # The user's own message counts as a "final response" for ADK: the answer is the last agent event's text.
    final = next((e for e in reversed(events) if e.author != "user" and e.is_final_response() and _text(e)), None)
    return _text(final) if final is not None else ""


def run_output(target: Any, events: list[Any], state: dict[str, Any]) -> dict[str, Any]:
    """The execution output of a finished run: its session's ``events`` and ``state``."""
    output = _final_text(events)
    structured = None
    if getattr(_root(target), "output_schema", None) is not None and output:
        try:
            structured = json.loads(output)
        except ValueError:
            structured = None
    return {
        "output": output,
        "structured": structured,
        "tool_calls": _tool_calls(events),
        "usage": _usage(events),
        "finish_reason": "stop",
        "events": [to_json(e.model_dump(mode="json", exclude_none=True), "a session event") for e in events],
        "state": to_json(state, "the session's final state"),
    }


async def _attempt(
    target: Any, execution_id: str, prompt: str, run_config: RunConfig | None, guarding: Guarding | None = None
) -> dict[str, Any]:
    checked: str | None = None
    with adk_run(execution_id) as state:
        sessions = InMemorySessionService()
        runner = _runner(target, sessions)
        try:
            session = await sessions.create_session(
                app_name=runner.app_name, user_id=USER_ID, session_id=f"{state.tag}-session"
            )

            async def turn(message: types.Content) -> Any:
                """Run the agent on ``message`` in the session, to its end; the session afterwards."""
                async for _ in runner.run_async(
                    user_id=USER_ID, session_id=session.id, new_message=message, run_config=run_config
                ):
                    raise_if_failed(state)
                raise_if_failed(state)
                found = await sessions.get_session(app_name=runner.app_name, user_id=USER_ID, session_id=session.id)
                # Long-running calls left unanswered: wait (durably) for their results, then run on with them.
                while found is not None and (answer := long_running_results(list(found.events))) is not None:
                    async for _ in runner.run_async(
                        user_id=USER_ID, session_id=session.id, new_message=answer, run_config=run_config
                    ):
                        raise_if_failed(state)
                    raise_if_failed(state)
                    found = await sessions.get_session(app_name=runner.app_name, user_id=USER_ID, session_id=session.id)
                assert found is not None
                return found

            if guarding is not None:
                prompt = (await guarding.check_async("input", prompt, subject="prompt", can_retry=False)).text
            found = await turn(_user_message(prompt))
            if guarding is not None:

                async def again(_: Any, feedback: str) -> Any:
                    return await turn(_user_message(feedback))  # a new user message in the same session

                found, checked = await check_answer_async(guarding, found, lambda s: _final_text(list(s.events)), again)
        finally:
            await runner.close()
        output = run_output(target, list(found.events), dict(found.state))
        if checked is not None and checked != output["output"]:
            output.update(output=checked, structured=None)  # the structured form holds what was replaced
        return output


def _user_message(text: str) -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=text)])


def agent_function(target: Any, name: str | None = None, *, run_config: RunConfig | None = None) -> Callable[..., Any]:
    """The durable function a worker runs for ``target`` (an ADK agent or ``App``).

    It runs ADK's ``Runner`` on the prompt inside an Agentspan run: every model call and tool call,
    also of sub-agents and of agents run as tools, is a step, and ADK's ids are deterministic. Without
    ``run_config`` the same function is returned each time it is asked for the same target and name.

    Args:
        target: The root agent, or an ``App`` (its plugins and configuration apply).
        name: The name executions are created and claimed by (see :func:`agent_name`).
        run_config: ADK's run configuration (streaming mode, ``max_llm_calls``...).
    """
    _check(target)
    install()
    name = _check_name(agent_name(target, name))
    known: dict[str, Callable[..., Any]] = {}
    if run_config is None:
        found = _functions.get(id(target))
        if found is None or found[0]() is not target:
            key = id(target)
            found = _functions[key] = (weakref.ref(target, lambda _: _functions.pop(key, None)), {})
        known = found[1]
        if name in known:
            return known[name]

    async def entry(prompt: str, guardrails: list[str] | None = None) -> dict[str, Any]:
        guarding = guarding_of(name, guardrails, "google_adk")
        if not isinstance(prompt, str):
            raise ConfigurationError(f"the prompt of an ADK agent is text, not {type(prompt).__name__}")
        install()  # model and tool classes defined since the function was made
        found = current_context()
        execution_id = found[0].execution_id if found is not None else "local"
        # In a task of its own (a copy of this context): ADK's id provider is reset to its default at
        # the end, which must not reach the caller's context.
        task = asyncio.get_running_loop().create_task(
            _attempt(target, execution_id, prompt, run_config, guarding), context=contextvars.copy_context()
        )
        return await task

    entry.__agentspan_function__ = FunctionDefinition(  # type: ignore[attr-defined]
        name=name, fn=entry, strict=False, codec=Codec(None), framework="google_adk"
    )
    known[name] = entry
    return entry

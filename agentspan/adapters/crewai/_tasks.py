"""A task's execution by its agent as a durable step that groups the task's model and tool calls.

``Agent.execute_task(task, context, tools)`` is the step: its nested calls are keyed under it, so each
task (also one running in an async-execution thread, or a coworker's task inside a delegation tool)
has its own deterministic scope, and a finished task replays its answer without running again.
CrewAI's own bookkeeping around it (``TaskOutput``, guardrails, callbacks, output files, events) still
runs on replay: only the agent's work is skipped.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

from ...durable import run_step, run_step_async
from ...durable._codec import Codec, to_json
from .._typed import decode_typed, encode_typed

__all__ = ["task_call", "task_call_async"]

# (agent, task) whose step runs now: CrewAI's retry of ``execute_task`` on an error is part of it.
_IN_TASK: contextvars.ContextVar[tuple[int, int] | None] = contextvars.ContextVar("agentspan_crewai_task", default=None)


class _AnswerCodec(Codec):
    """The agent's answer (text or a pydantic model) and the messages of its conversation."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(None)

    def encode(self, value: Any, what: str) -> Any:
        answer, messages = value
        return {**encode_typed(answer, what), "messages": to_json(messages, what, check=False)}

    def decode(self, data: Any) -> Any:
        return decode_typed(data), list(data.get("messages") or [])


_ANSWER = _AnswerCodec()


def same_task(agent: object, task: object) -> bool:
    """Whether this agent's step for this task is running (a retry inside it is part of it)."""
    return _IN_TASK.get() == (id(agent), id(task))


def _request(agent: Any, task: Any, context: Any) -> dict[str, Any]:
    return {
        "agent": str(getattr(agent, "role", type(agent).__name__)),
        "task": str(getattr(task, "description", "")),
        "expected_output": str(getattr(task, "expected_output", "")),
        "context": to_json(context, "the task context", check=False),
    }


def _restore(agent: Any, messages: list[Any]) -> None:
    if hasattr(agent, "_last_messages"):
        agent._last_messages = messages


def task_call(agent: Any, task: Any, context: Any, fn: Callable[[], Any]) -> Any:
    """``agent.execute_task(task, context, tools)`` as a durable step."""
    request = _request(agent, task, context)

    def call() -> tuple[Any, Any]:
        token = _IN_TASK.set((id(agent), id(task)))
        try:
            answer = fn()
        finally:
            _IN_TASK.reset(token)
        return answer, list(getattr(agent, "last_messages", None) or [])

    answer, messages = run_step("task", request["agent"], request, call, codec=_ANSWER)
    _restore(agent, messages)
    return answer


async def task_call_async(agent: Any, task: Any, context: Any, fn: Callable[[], Awaitable[Any]]) -> Any:
    """``await agent.aexecute_task(task, context, tools)`` as a durable step."""
    request = _request(agent, task, context)

    async def call() -> tuple[Any, Any]:
        token = _IN_TASK.set((id(agent), id(task)))
        try:
            answer = await fn()
        finally:
            _IN_TASK.reset(token)
        return answer, list(getattr(agent, "last_messages", None) or [])

    answer, messages = await run_step_async("task", request["agent"], request, call, codec=_ANSWER)
    _restore(agent, messages)
    return answer

"""Tool calls as durable steps, on both of CrewAI's tool paths.

Native function calling runs ``BaseTool.run`` (``Tool.run`` for ``@tool`` functions) with the model's
tool-call id known to the executor; the ReAct text path runs ``CrewStructuredTool.invoke``. Both are
patched (:mod:`._patch`), and the executors' per-call functions publish the call id here, so a call
is keyed by its id (up to 8 calls of one model response run in parallel threads and may finish in any
order) and, without one, by its tool, arguments and occurrence.

A tool that delegates to a coworker runs the coworker's model and tool calls inside its own step: they
are nested steps, so a delegation interrupted by a crash replays the coworker's finished calls.
"""

from __future__ import annotations

import contextvars
import re
from collections.abc import Awaitable, Callable
from typing import Any

from ...durable import run_step, run_step_async
from ...durable._codec import Codec, to_json
from ...errors import NotJSONError
from .._typed import decode_typed, encode_typed
from ._scope import RunState, raise_if_failed

__all__ = ["call_id_scope", "tool_call", "tool_call_async"]

# The tool running as a step right now: ``invoke`` -> ``_run`` -> ``run`` of the same tool is one call.
_IN_TOOL: contextvars.ContextVar[object | None] = contextvars.ContextVar("agentspan_crewai_tool", default=None)
# The model's id for the native tool call being executed in this thread.
_CALL_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("agentspan_crewai_call_id", default=None)
# CrewAI's fallback ids: ``call_<id(obj)>``, a memory address, different on every run.
_ADDRESS_ID = re.compile(r"^call_\d{6,}$")


class _ValueCodec(Codec):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(None)

    def encode(self, value: Any, what: str) -> Any:
        return encode_typed(value, what)

    def decode(self, data: Any) -> Any:
        return decode_typed(data)


_VALUE = _ValueCodec()


def call_id_scope(call_id: Any) -> contextvars.Token[str | None]:
    """Publish the id of the native tool call about to run (undo with ``_CALL_ID.reset``)."""
    stable = isinstance(call_id, str) and call_id not in ("", "unknown") and not _ADDRESS_ID.match(call_id)
    return _CALL_ID.set(call_id if stable else None)


def reset_call_id(token: contextvars.Token[str | None]) -> None:
    """Undo :func:`call_id_scope`."""
    _CALL_ID.reset(token)


def same_tool(tool: object) -> bool:
    """Whether ``tool`` is the one whose step is running (its inner methods are part of that step)."""
    return _IN_TOOL.get() is tool


def _plan(name: str, arguments: Any) -> tuple[dict[str, Any], dict[str, Any], bool]:
    args = to_json(arguments, f"the arguments of tool {name!r}", check=False)
    call_id = _CALL_ID.get()
    request = {"tool": name, "arguments": args, "call_id": call_id}
    identity = {"call_id": call_id} if call_id else {"tool": name, "arguments": args}
    return request, identity, call_id is None


def tool_call(state: RunState, tool: object, name: str, arguments: Any, fn: Callable[[], Any]) -> Any:
    """``fn()`` (the tool's own method) as a durable step."""
    raise_if_failed(state)
    request, identity, ordered = _plan(name, arguments)

    def call() -> Any:
        tool_token, id_token = _IN_TOOL.set(tool), _CALL_ID.set(None)
        try:
            return fn()
        finally:
            _CALL_ID.reset(id_token)
            _IN_TOOL.reset(tool_token)

    try:
        return run_step("tool", name, request, call, codec=_VALUE, identity=identity, ordered=ordered)
    except NotJSONError as exc:
        state.fail(_unstorable(name, exc))
        raise


async def tool_call_async(
    state: RunState, tool: object, name: str, arguments: Any, fn: Callable[[], Awaitable[Any]]
) -> Any:
    """``await fn()`` (the tool's own coroutine method) as a durable step."""
    raise_if_failed(state)
    request, identity, ordered = _plan(name, arguments)

    async def call() -> Any:
        tool_token, id_token = _IN_TOOL.set(tool), _CALL_ID.set(None)
        try:
            return await fn()
        finally:
            _CALL_ID.reset(id_token)
            _IN_TOOL.reset(tool_token)

    try:
        return await run_step_async("tool", name, request, call, codec=_VALUE, identity=identity, ordered=ordered)
    except NotJSONError as exc:
        state.fail(_unstorable(name, exc))
        raise


def _unstorable(name: str, exc: NotJSONError) -> NotJSONError:
    return NotJSONError(
        f"tool {name!r} returned a value that cannot be recorded ({exc.message}); return text, JSON-compatible"
        " data or a pydantic model",
        execution_id=exc.execution_id,
    )

"""Process-wide hooks on LangChain's chat-model and tool base classes, inert outside Agentspan runs.

An existing compiled graph can only be caught at the framework's own call points, so these methods
are replaced once per process:

- ``BaseChatModel._generate_with_cache`` / ``_agenerate_with_cache``: every ``invoke``/``ainvoke``
  (and ``batch``, ``generate``) of every chat model;
- ``BaseChatModel.stream`` / ``astream``: these bypass the two above when the model streams natively;
- ``BaseTool.run`` / ``arun``: every tool call, from ``ToolNode``, ``create_react_agent`` or user code.

Each replacement calls the original unchanged unless the calling code belongs to an Agentspan run of a
graph (a context variable set by the durable function of :mod:`._graph`) inside a durable execution.
Then the call becomes a durable step. A call made while another intercepted call runs (``arun`` that
runs ``run`` in an executor, a model called by a tool) is part of the outer step and passes through.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.tools import BaseTool

from ...durable import run_step, run_step_async
from ...durable._context import current_context
from ._keys import RunState, current_run, model_request, tool_request
from ._serde import CHAT_RESULT, CHUNKS, VALUE, usage_of

__all__ = ["install", "installed"]

T = TypeVar("T")

_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("agentspan_langgraph_inside", default=False)
_lock = threading.Lock()
_originals: dict[str, Any] = {}


def _active() -> RunState | None:
    """The run a call belongs to, when it must become a step."""
    state = current_run()
    if state is None or _inside.get() or current_context() is None:
        return None
    return state


def _guarded(fn: Callable[[], T]) -> Callable[[], T]:
    def call() -> T:
        token = _inside.set(True)
        try:
            return fn()
        finally:
            _inside.reset(token)

    return call


def _guarded_async(fn: Callable[[], Awaitable[T]]) -> Callable[[], Awaitable[T]]:
    async def call() -> T:
        token = _inside.set(True)
        try:
            return await fn()
        finally:
            _inside.reset(token)

    return call


def installed() -> bool:
    """Whether the hooks are in place in this process."""
    return bool(_originals)


def install() -> None:
    """Put the hooks in place (once per process; later calls do nothing)."""
    with _lock:
        if _originals:
            return
        _originals.update(
            generate=BaseChatModel._generate_with_cache,
            agenerate=BaseChatModel._agenerate_with_cache,
            stream=BaseChatModel.stream,
            astream=BaseChatModel.astream,
            run=BaseTool.run,
            arun=BaseTool.arun,
        )
        BaseChatModel._generate_with_cache = _generate_with_cache  # type: ignore[method-assign]
        BaseChatModel._agenerate_with_cache = _agenerate_with_cache  # type: ignore[method-assign]
        BaseChatModel.stream = _stream  # type: ignore[method-assign]
        BaseChatModel.astream = _astream  # type: ignore[method-assign]
        BaseTool.run = _run  # type: ignore[method-assign]
        BaseTool.arun = _arun  # type: ignore[method-assign]


# --- chat models -----------------------------------------------------------------------------------------
def _generate_with_cache(
    self: BaseChatModel, messages: list[Any], stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
) -> Any:
    original = _originals["generate"]
    state = _active()
    if state is None:
        return original(self, messages, stop=stop, run_manager=run_manager, **kwargs)
    request = model_request(state, self, messages, stop, kwargs)
    return run_step(
        "llm", request.name, request.input,
        _guarded(lambda: original(self, messages, stop=stop, run_manager=run_manager, **kwargs)),
        codec=CHAT_RESULT, identity=request.identity, usage_of=usage_of,
    )  # fmt: skip


async def _agenerate_with_cache(
    self: BaseChatModel, messages: list[Any], stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
) -> Any:
    original = _originals["agenerate"]
    state = _active()
    if state is None:
        return await original(self, messages, stop=stop, run_manager=run_manager, **kwargs)
    request = model_request(state, self, messages, stop, kwargs)
    return await run_step_async(
        "llm", request.name, request.input,
        _guarded_async(lambda: original(self, messages, stop=stop, run_manager=run_manager, **kwargs)),
        codec=CHAT_RESULT, identity=request.identity, usage_of=usage_of,
    )  # fmt: skip


def _stream(
    self: BaseChatModel, input: Any, config: Any = None, *, stop: list[str] | None = None, **kwargs: Any
) -> Iterator[Any]:
    # The whole stream is one step: recorded as the list of chunks, replayed chunk by chunk. On the
    # first run the chunks are yielded once the model has finished (the step must complete first).
    original = _originals["stream"]
    state = _active()
    if state is None:
        yield from original(self, input, config, stop=stop, **kwargs)
        return
    messages = self._convert_input(input).to_messages()
    request = model_request(state, self, messages, stop, kwargs)
    chunks: list[Any] = run_step(
        "llm", request.name, request.input,
        _guarded(lambda: list(original(self, input, config, stop=stop, **kwargs))),
        codec=CHUNKS, identity=request.identity, usage_of=usage_of,
    )  # fmt: skip
    yield from chunks


async def _astream(
    self: BaseChatModel, input: Any, config: Any = None, *, stop: list[str] | None = None, **kwargs: Any
) -> AsyncIterator[Any]:
    original = _originals["astream"]
    state = _active()
    if state is None:
        async for chunk in original(self, input, config, stop=stop, **kwargs):
            yield chunk
        return
    messages = self._convert_input(input).to_messages()
    request = model_request(state, self, messages, stop, kwargs)

    async def collect() -> list[Any]:
        return [chunk async for chunk in original(self, input, config, stop=stop, **kwargs)]

    chunks: list[Any] = await run_step_async(
        "llm", request.name, request.input, _guarded_async(collect),
        codec=CHUNKS, identity=request.identity, usage_of=usage_of,
    )  # fmt: skip
    for chunk in chunks:
        yield chunk


# --- tools -----------------------------------------------------------------------------------------------
def _run(self: BaseTool, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
    original = _originals["run"]
    state = _active()
    if state is None:
        return original(self, tool_input, *args, **kwargs)
    request = tool_request(state, self, tool_input, kwargs.get("tool_call_id"))
    return run_step(
        "tool", request.name, request.input, _guarded(lambda: original(self, tool_input, *args, **kwargs)),
        codec=VALUE, identity=request.identity, ordered=request.ordered,
    )  # fmt: skip


async def _arun(self: BaseTool, tool_input: Any, *args: Any, **kwargs: Any) -> Any:
    original = _originals["arun"]
    state = _active()
    if state is None:
        return await original(self, tool_input, *args, **kwargs)
    request = tool_request(state, self, tool_input, kwargs.get("tool_call_id"))
    return await run_step_async(
        "tool", request.name, request.input, _guarded_async(lambda: original(self, tool_input, *args, **kwargs)),
        codec=VALUE, identity=request.identity, ordered=request.ordered,
    )  # fmt: skip

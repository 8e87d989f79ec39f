"""Every point of LangChain this adapter patches, in one place (with ``wrapt``), inert outside Agentspan runs.

An existing compiled graph can only be caught at the framework's own call points, so these methods
are wrapped once per process:

| module | point | why |
|---|---|---|
| ``langchain_core.language_models.chat_models`` | ``BaseChatModel._generate_with_cache``, ``BaseChatModel._agenerate_with_cache`` | every ``invoke``/``ainvoke`` (and ``batch``, ``generate``) of every chat model |
| ``langchain_core.language_models.chat_models`` | ``BaseChatModel.stream``, ``BaseChatModel.astream`` | these bypass the two above when the model streams natively |
| ``langchain_core.tools.base`` | ``BaseTool.run``, ``BaseTool.arun`` | every tool call, from ``ToolNode``, ``create_react_agent`` or user code |

:func:`install` checks that every point exists in the installed langchain-core before it patches any,
and raises a ``RuntimeError`` naming the missing one rather than letting calls run unrecorded.

Each wrapper calls the original unchanged unless the calling code belongs to an Agentspan run of a
graph (a context variable set by the durable function of :mod:`._graph`) inside a durable execution.
Then the call becomes a durable step. A call made while another intercepted call runs (``arun`` that
runs ``run`` in an executor, a model called by a tool) is part of the outer step and passes through.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar

from ...durable import run_step, run_step_async
from ...durable._context import current_context
from .._patching import Patches
from ._keys import RunState, current_run, model_request, tool_request
from ._serde import CHAT_RESULT, CHUNKS, VALUE, usage_of

__all__ = ["install", "installed", "unpatch"]

T = TypeVar("T")

_inside: contextvars.ContextVar[bool] = contextvars.ContextVar("agentspan_langgraph_inside", default=False)
_patches = Patches("LangChain", "langchain-core", "langchain-core 1.x")


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


# --- chat models -----------------------------------------------------------------------------------------
def _generate_args(
    messages: list[Any], stop: list[str] | None = None, run_manager: Any = None, **kwargs: Any
) -> tuple[list[Any], list[str] | None, dict[str, Any]]:
    """``(messages, stop, the other keyword arguments)`` of a ``_generate_with_cache`` call."""
    return messages, stop, kwargs


def _stream_args(
    input: Any, config: Any = None, *, stop: list[str] | None = None, **kwargs: Any
) -> tuple[Any, list[str] | None, dict[str, Any]]:
    """``(input, stop, the other keyword arguments)`` of a ``stream`` call."""
    return input, stop, kwargs


def _generate_with_cache(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    state = _active()
    if state is None:
        return wrapped(*args, **kwargs)
    messages, stop, options = _generate_args(*args, **kwargs)
    request = model_request(state, instance, messages, stop, options)
    return run_step(
        "llm", request.name, request.input, _guarded(lambda: wrapped(*args, **kwargs)),
        codec=CHAT_RESULT, identity=request.identity, usage_of=usage_of,
    )  # fmt: skip


async def _agenerate_with_cache(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    state = _active()
    if state is None:
        return await wrapped(*args, **kwargs)
    messages, stop, options = _generate_args(*args, **kwargs)
    request = model_request(state, instance, messages, stop, options)
    return await run_step_async(
        "llm", request.name, request.input, _guarded_async(lambda: wrapped(*args, **kwargs)),
        codec=CHAT_RESULT, identity=request.identity, usage_of=usage_of,
    )  # fmt: skip


def _stream(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Iterator[Any]:
    # The whole stream is one step: recorded as the list of chunks, replayed chunk by chunk. On the
    # first run the chunks are yielded once the model has finished (the step must complete first).
    state = _active()
    if state is None:
        yield from wrapped(*args, **kwargs)
        return
    input, stop, options = _stream_args(*args, **kwargs)
    messages = instance._convert_input(input).to_messages()
    request = model_request(state, instance, messages, stop, options)
    chunks: list[Any] = run_step(
        "llm", request.name, request.input, _guarded(lambda: list(wrapped(*args, **kwargs))),
        codec=CHUNKS, identity=request.identity, usage_of=usage_of,
    )  # fmt: skip
    yield from chunks


async def _astream(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> AsyncIterator[Any]:
    state = _active()
    if state is None:
        async for chunk in wrapped(*args, **kwargs):
            yield chunk
        return
    input, stop, options = _stream_args(*args, **kwargs)
    messages = instance._convert_input(input).to_messages()
    request = model_request(state, instance, messages, stop, options)

    async def collect() -> list[Any]:
        return [chunk async for chunk in wrapped(*args, **kwargs)]

    chunks: list[Any] = await run_step_async(
        "llm", request.name, request.input, _guarded_async(collect),
        codec=CHUNKS, identity=request.identity, usage_of=usage_of,
    )  # fmt: skip
    for chunk in chunks:
        yield chunk


# --- tools -----------------------------------------------------------------------------------------------
def _tool_input(tool_input: Any, *args: Any, **kwargs: Any) -> Any:
    return tool_input


def _run(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    state = _active()
    if state is None:
        return wrapped(*args, **kwargs)
    request = tool_request(state, instance, _tool_input(*args, **kwargs), kwargs.get("tool_call_id"))
    return run_step(
        "tool", request.name, request.input, _guarded(lambda: wrapped(*args, **kwargs)),
        codec=VALUE, identity=request.identity, ordered=request.ordered,
    )  # fmt: skip


async def _arun(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    state = _active()
    if state is None:
        return await wrapped(*args, **kwargs)
    request = tool_request(state, instance, _tool_input(*args, **kwargs), kwargs.get("tool_call_id"))
    return await run_step_async(
        "tool", request.name, request.input, _guarded_async(lambda: wrapped(*args, **kwargs)),
        codec=VALUE, identity=request.identity, ordered=request.ordered,
    )  # fmt: skip


# --- installing ------------------------------------------------------------------------------------------
_CHAT_MODELS = "langchain_core.language_models.chat_models"
_TOOLS = "langchain_core.tools.base"
# (module, attribute path, wrapper): the table of the docstring, in the order it is patched.
_POINTS: tuple[tuple[str, str, Callable[..., Any]], ...] = (
    (_CHAT_MODELS, "BaseChatModel._generate_with_cache", _generate_with_cache),
    (_CHAT_MODELS, "BaseChatModel._agenerate_with_cache", _agenerate_with_cache),
    (_CHAT_MODELS, "BaseChatModel.stream", _stream),
    (_CHAT_MODELS, "BaseChatModel.astream", _astream),
    (_TOOLS, "BaseTool.run", _run),
    (_TOOLS, "BaseTool.arun", _arun),
)


def installed() -> bool:
    """Whether the hooks are in place in this process."""
    return _patches.installed


def install() -> None:
    """Put the hooks in place (once per process; later calls do nothing)."""
    with _patches.lock:
        if _patches.installed:
            return
        resolved = [(_patches.resolve(module_name, path), wrapper) for module_name, path, wrapper in _POINTS]
        for found, wrapper in resolved:  # all found: patch them
            assert found is not None  # required points raise instead
            _patches.wrap(*found, wrapper)


def unpatch() -> None:
    """Undo every hook (for tests that compare with LangChain unpatched); :func:`install` puts them back."""
    _patches.undo()

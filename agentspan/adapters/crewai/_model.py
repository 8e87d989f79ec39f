"""Model calls as durable steps: every ``call``/``acall`` of every CrewAI LLM class, whoever calls it.

The step is keyed by what the model is asked (messages, tool names, response model), never by CrewAI's
per-run ids, and records what ``call`` returned: text, the tool calls the model asked for, or a
pydantic model. Tool calls are recorded as OpenAI-style dicts (``{"id", "type": "function",
"function": {"name", "arguments"}}``, which every CrewAI executor accepts) and returned as such on the
first run too, so a run and its replay continue from the same value. Call ids that CrewAI would make
from memory addresses (Gemini's) are replaced with ids made from the step's key.

The tokens the call used are recorded with it and added back to the LLM's counters on replay, so
``CrewOutput.token_usage`` counts every call once, also across a crash.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import inspect
import json
from collections.abc import Awaitable, Callable
from typing import Any

from ...durable import run_step, run_step_async
from ...durable._codec import Codec, to_json
from ...durable._context import current_context, current_step_info
from .._typed import decode_typed, encode_typed, model_path
from ._scope import current_run

__all__ = ["in_model", "instructor_call", "model_call", "model_call_async"]

# The LLM whose call is a step right now: a subclass's ``call`` that calls ``super().call`` (both
# patched), or instructor inside ``LLM.call``, is part of that step.
_IN_MODEL: contextvars.ContextVar[object | None] = contextvars.ContextVar("agentspan_crewai_model", default=None)
_USAGE_KEYS = ("prompt_tokens", "completion_tokens", "total_tokens", "successful_requests", "cached_prompt_tokens")


def in_model() -> bool:
    """Whether the calling code runs inside a model step (its calls are part of it)."""
    return _IN_MODEL.get() is not None


@dataclasses.dataclass(frozen=True)
class _Outcome:
    value: Any
    usage: dict[str, int]


class _ResponseCodec(Codec):
    """What a model call returned, with the tokens it used."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(None)

    def encode(self, value: Any, what: str) -> Any:
        outcome: _Outcome = value
        found = outcome.value
        if isinstance(found, str):
            data: dict[str, Any] = {"text": found}
        elif _is_tool_call_list(found):
            data = {"tool_calls": to_json(found, what)}
        else:
            data = encode_typed(found, what)
        if any(outcome.usage.values()):
            data["usage"] = outcome.usage
        return data

    def decode(self, data: Any) -> Any:
        usage = dict(data.get("usage") or {})
        if "text" in data:
            return _Outcome(data["text"], usage)
        if "tool_calls" in data:
            return _Outcome(list(data["tool_calls"]), usage)
        return _Outcome(decode_typed(data), usage)


_RESPONSE = _ResponseCodec()


def _usage_of(outcome: Any) -> dict[str, int] | None:
    usage = outcome.usage
    found = {k: int(usage.get(k, 0)) for k in ("prompt_tokens", "completion_tokens", "total_tokens")}
    return found if any(found.values()) else None


def _is_tool_call_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_tool_call_info(item) is not None for item in value)


def _tool_call_info(item: Any) -> tuple[str | None, str, Any] | None:
    """``(id or None when CrewAI would invent one, name, arguments)`` of a provider's tool call."""
    if isinstance(item, dict):
        function = item.get("function")
        if isinstance(function, dict) and "name" in function:
            return item.get("id") or item.get("call_id"), str(function["name"]), function.get("arguments")
        if "name" in item and "input" in item:  # Anthropic / Bedrock as dicts
            return item.get("id") or item.get("toolUseId"), str(item["name"]), item["input"]
        return None
    function = getattr(item, "function", None)
    if function is not None and hasattr(function, "name"):  # OpenAI
        return getattr(item, "id", None), str(function.name), function.arguments
    function_call = getattr(item, "function_call", None)
    if function_call is not None and getattr(function_call, "name", None):  # Gemini: ids are addresses
        return None, str(function_call.name), dict(function_call.args or {})
    if hasattr(item, "name") and hasattr(item, "input"):  # Anthropic ToolUseBlock
        return getattr(item, "id", None), str(item.name), item.input
    return None


def _normalised(value: Any) -> Any:
    """Tool calls as OpenAI-style dicts with stable ids; anything else unchanged."""
    if not _is_tool_call_list(value):
        return value
    step = current_step_info()
    calls = []
    for index, item in enumerate(value):
        info = _tool_call_info(item)
        assert info is not None
        call_id, name, arguments = info
        if not call_id:
            seed = f"{step.key if step else ''}#{index}"
            call_id = "call_" + hashlib.blake2b(seed.encode(), digest_size=8).hexdigest()
        if not isinstance(arguments, str):
            arguments = json.dumps(to_json(arguments, "tool call arguments", check=False), ensure_ascii=False)
        calls.append({"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}})
    return calls


_CALL_PARAMETERS = (
    "messages",
    "tools",
    "callbacks",
    "available_functions",
    "from_task",
    "from_agent",
    "response_model",
)


def _bound(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    found = dict(zip(_CALL_PARAMETERS, args, strict=False))
    found.update(kwargs)
    return found


def _tool_names(tools: Any) -> list[str]:
    names = []
    for tool in tools or []:
        function = tool.get("function") if isinstance(tool, dict) else None
        name = function.get("name") if isinstance(function, dict) else getattr(tool, "name", None)
        names.append(str(name if name is not None else tool))
    return names


def _request(llm: Any, call: dict[str, Any]) -> dict[str, Any]:
    response_model = call.get("response_model")
    return {
        "model": str(getattr(llm, "model", type(llm).__name__)),
        "messages": to_json(call.get("messages"), "the model request", check=False),
        "tools": _tool_names(call.get("tools")),
        "response_model": model_path(response_model) if isinstance(response_model, type) else None,
    }


def _recorded(request: dict[str, Any]) -> dict[str, Any]:
    """What a model step records of ``request``: the messages added since the previous model call in
    the same place (the same enclosing step and model) when that call's messages are a prefix of these
    (``after`` says how many came before), not the whole conversation again at every call. The step's
    key still comes from the whole request."""
    messages = request["messages"]
    state = current_run()
    found = current_context()
    if state is None or found is None or not isinstance(messages, list):
        return request
    place = f"{found[1] or ''}\n{request['model']}"
    with state.lock:
        previous = state.prompts.get(place)
        state.prompts[place] = messages
    if not previous or len(previous) > len(messages) or messages[: len(previous)] != previous:
        return request
    return {**request, "messages": messages[len(previous) :], "after": len(previous)}


def _usage_snapshot(llm: Any) -> dict[str, int]:
    counters = getattr(llm, "_token_usage", None)
    if not isinstance(counters, dict):
        return {}
    return {k: int(counters.get(k, 0)) for k in _USAGE_KEYS}


def _usage_since(llm: Any, before: dict[str, int]) -> dict[str, int]:
    after = _usage_snapshot(llm)
    return {k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)}


def _count_replayed(llm: Any, outcome: _Outcome, ran: list[bool]) -> None:
    """A replayed call adds the tokens it used to the LLM's counters, as the first run did."""
    counters = getattr(llm, "_token_usage", None)
    if ran or not isinstance(counters, dict):
        return
    for key, value in outcome.usage.items():
        if key in counters:
            counters[key] += value


def model_call(llm: Any, wrapped: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """``llm.call(*args, **kwargs)`` as a durable step."""
    request = _request(llm, _bound(args, kwargs))
    ran: list[bool] = []

    def call() -> _Outcome:
        ran.append(True)
        before = _usage_snapshot(llm)
        token = _IN_MODEL.set(llm)
        try:
            value = wrapped(*args, **kwargs)
        finally:
            _IN_MODEL.reset(token)
        return _Outcome(_normalised(value), _usage_since(llm, before))

    outcome: _Outcome = run_step(
        "llm", request["model"], _recorded(request), call, codec=_RESPONSE, usage_of=_usage_of, identity=request
    )
    _count_replayed(llm, outcome, ran)
    return outcome.value


async def model_call_async(
    llm: Any, wrapped: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``await llm.acall(*args, **kwargs)`` as a durable step."""
    request = _request(llm, _bound(args, kwargs))
    ran: list[bool] = []

    async def call() -> _Outcome:
        ran.append(True)
        before = _usage_snapshot(llm)
        token = _IN_MODEL.set(llm)
        try:
            value = await wrapped(*args, **kwargs)
        finally:
            _IN_MODEL.reset(token)
        return _Outcome(_normalised(value), _usage_since(llm, before))

    outcome: _Outcome = await run_step_async(
        "llm", request["model"], _recorded(request), call, codec=_RESPONSE, usage_of=_usage_of, identity=request
    )
    _count_replayed(llm, outcome, ran)
    return outcome.value


def instructor_call(instructor: Any, wrapped: Callable[[], Any], as_json: bool) -> Any:
    """``InternalInstructor.to_pydantic()`` / ``to_json()`` as a durable step: CrewAI's output conversion
    calls the provider's SDK through instructor there, not through ``llm.call``."""
    llm = getattr(instructor, "llm", None)
    model = getattr(llm, "model", llm) if llm is not None else "instructor"
    schema = getattr(instructor, "model", None)
    request = {
        "model": str(model),
        "messages": [{"role": "user", "content": str(getattr(instructor, "content", ""))}],
        "response_model": model_path(schema) if inspect.isclass(schema) else None,
        "as_json": as_json,
    }

    def call() -> _Outcome:
        token = _IN_MODEL.set(instructor)
        try:
            return _Outcome(wrapped(), {})
        finally:
            _IN_MODEL.reset(token)

    outcome: _Outcome = run_step("llm", f"instructor:{model}", request, call, codec=_RESPONSE)
    return outcome.value

"""Model calls as durable steps: every ``generate_content_async`` of every ADK model class.

The step is keyed by what the model is asked (the request's model, contents, config and tools; ADK's
own ids are stripped from the contents before they reach the model) and records the call's final
(non-partial) ``LlmResponse``s as JSON, rebuilt with ``LlmResponse.model_validate``. The patch sits
below ADK's model callbacks, so the user's ``before_model_callback``, ``after_model_callback`` and
plugins run on a replayed response exactly as on a live one.

A live streaming call (``RunConfig(streaming_mode=SSE)``) yields the model's partial responses as they
arrive, and its final response once the step is recorded; a replayed call yields only its final
responses, once.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Callable
from typing import Any

from google.adk.models.llm_response import LlmResponse
from pydantic import BaseModel
from pydantic_core import to_jsonable_python

from ...durable import run_step_async
from ...durable._codec import Codec, to_json
from ...durable._context import current_context
from .._typed import model_path
from ._scope import RunState, raise_if_failed

__all__ = ["in_model", "model_call"]

# The model whose call is a step right now: a subclass's ``generate_content_async`` calling the
# parent's (both patched) is one call.
_IN_MODEL: contextvars.ContextVar[object | None] = contextvars.ContextVar("agentspan_google_adk_model", default=None)
_DONE = object()


def in_model() -> bool:
    """Whether the calling code runs inside a model step (its calls are part of it)."""
    return _IN_MODEL.get() is not None


def _dump(response: Any) -> dict[str, Any]:
    data: dict[str, Any] = response.model_dump(mode="json", exclude_none=True)
    return data


class _ResponsesCodec(Codec):
    """The final responses of one call (already JSON when recorded), rebuilt as ``LlmResponse``s."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(None)

    def encode(self, value: Any, what: str) -> Any:
        return {"responses": to_json(value, what)}

    def decode(self, data: Any) -> Any:
        return [LlmResponse.model_validate(item) for item in data["responses"]]


_RESPONSES = _ResponsesCodec()


def _usage(responses: Any) -> dict[str, int] | None:
    found = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for response in responses:
        usage = response.usage_metadata
        if usage is not None:
            found["prompt_tokens"] += usage.prompt_token_count or 0
            found["completion_tokens"] += usage.candidates_token_count or 0
            found["total_tokens"] += usage.total_token_count or 0
    return found if any(found.values()) else None


def _fallback(value: Any) -> Any:
    """JSON for what a request holds that pydantic cannot dump: a class (an ``output_schema``) by its
    path and JSON schema, anything else by its type (never by ``repr``, which may hold an address)."""
    if isinstance(value, type):
        if issubclass(value, BaseModel):
            return {"class": model_path(value), "schema": value.model_json_schema()}
        return model_path(value)
    return f"<{model_path(type(value))}>"


def _request(model: Any, llm_request: Any) -> dict[str, Any]:
    """What identifies the call: the model, the contents, the config (system instruction, tools,
    schema, labels) as JSON."""
    try:
        data = llm_request.model_dump(mode="json", exclude_none=True, exclude={"live_connect_config"})
    except Exception:  # a config holding something pydantic cannot dump as JSON (a response schema class)
        found = llm_request.model_dump(exclude_none=True, exclude={"live_connect_config"})
        data = to_jsonable_python(found, fallback=_fallback, bytes_mode="base64")
    data["model"] = data.get("model") or str(getattr(model, "model", type(model).__name__))
    return {"model": data["model"], "contents": data.pop("contents", []), "config": data.get("config", {}),
            "request": {k: v for k, v in data.items() if k not in ("model", "config")}}  # fmt: skip


def _recorded(state: RunState, request: dict[str, Any]) -> dict[str, Any]:
    """What a model step records of ``request``: the contents added since the previous model call in
    the same place (the same enclosing step, agent and model) when that call's contents are a prefix of
    these (``after`` says how many came before), not the whole conversation again at every call, and
    the config (system instruction, tools) only when it changed since that call. The step's key still
    comes from the whole request."""
    contents = request["contents"]
    found = current_context()
    if found is None:
        return request
    labels = request["config"].get("labels") or {}
    place = f"{found[1] or ''}\n{labels.get('adk_agent_name', '')}\n{request['model']}"
    with state.lock:
        previous = state.prompts.get(place)
        state.prompts[place] = (contents, request["config"])
    if (
        not previous
        or not previous[0]
        or len(previous[0]) > len(contents)
        or contents[: len(previous[0])] != previous[0]
    ):
        return request
    recorded = {**request, "contents": contents[len(previous[0]) :], "after": len(previous[0])}
    if previous[1] == request["config"]:
        del recorded["config"]  # as in the previous call
    return recorded


async def model_call(
    state: RunState,
    model: Any,
    wrapped: Callable[..., AsyncIterator[Any]],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> AsyncIterator[Any]:
    """``model.generate_content_async(*args, **kwargs)`` as a durable step (an async generator)."""
    raise_if_failed(state)
    llm_request = args[0] if args else kwargs["llm_request"]
    request = _request(model, llm_request)
    recorded = _recorded(state, request)
    responses: asyncio.Queue[Any] = asyncio.Queue()

    async def call() -> list[dict[str, Any]]:
        final: list[dict[str, Any]] = []
        token = _IN_MODEL.set(model)
        try:
            async for response in wrapped(*args, **kwargs):
                if not response.partial:
                    # Dumped now: ADK fills in missing function-call ids on the object it is handed,
                    # and a replay must draw those ids again as this run does.
                    final.append(_dump(response))
                responses.put_nowait(response)
        finally:
            _IN_MODEL.reset(token)
        return final

    # The step runs as a task (in a copy of this context) so that the responses reach ADK while it runs.
    step = asyncio.ensure_future(
        run_step_async("llm", request["model"], recorded, call, codec=_RESPONSES, usage_of=_usage, identity=request)
    )
    step.add_done_callback(lambda _: responses.put_nowait(_DONE))
    live = False
    held: list[Any] = []
    try:
        while (response := await responses.get()) is not _DONE:
            live = True
            if held or not response.partial:
                # Nothing acts on a final response (runs its tools) before it is on record: a crash in
                # between would call the model again while the tools' records of its answer replay.
                held.append(response)
                continue
            yield response
        replayed = await step
    finally:
        if not step.done():
            step.cancel()
    for response in held if live else replayed:
        yield response

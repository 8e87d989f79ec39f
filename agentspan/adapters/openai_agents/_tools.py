"""Function-tool calls as durable steps, keyed by the model's tool call id.

The step's output also carries the tokens the models called inside the tool used (an agent run as a
tool), so that a replayed tool still counts them. A tool's output may be any value (text, the SDK's ``ToolOutputText``/``ToolOutputImage``, a pydantic
model, JSON). It is recorded type-tagged: pydantic models with the path of their class, rebuilt with
``model_validate`` (nothing is ever unpickled); everything else as JSON.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

from agents.tool import FunctionTool

from ...durable import run_step_async
from ...durable._codec import Codec
from .._typed import decode_typed, encode_typed
from ._scope import active, agentspan_run, run_usage

__all__ = ["durable_tool"]

_WRAPPED = "__agentspan_durable__"


@dataclasses.dataclass(frozen=True)
class _Outcome:
    value: Any
    usage: dict[str, int]


class _OutputCodec(Codec):
    """A tool's output, type-tagged, with the usage of the model calls made inside the tool."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(None)

    def encode(self, value: Any, what: str) -> Any:
        outcome = value if isinstance(value, _Outcome) else _Outcome(value, {})
        data: dict[str, Any] = {"usage": outcome.usage} if any(outcome.usage.values()) else {}
        return {**data, **encode_typed(outcome.value, what)}

    def decode(self, data: Any) -> Any:
        if not isinstance(data, dict):
            return _Outcome(data, {})
        return _Outcome(decode_typed(data), dict(data.get("usage") or {}))


_OUTPUT = _OutputCodec()


def durable_tool(tool: FunctionTool) -> FunctionTool:
    """A copy of ``tool`` whose calls, inside an Agentspan run, are durable steps keyed by call id.

    The copy keeps the tool's other attributes (an agent run as a tool stays one); its nested run's
    model and tool calls become steps under the tool's step.
    """
    invoke: Callable[[Any, str], Awaitable[Any]] = tool.on_invoke_tool
    if getattr(invoke, _WRAPPED, False):
        return tool

    async def on_invoke_tool(ctx: Any, arguments: str) -> Any:
        if not active():
            return await invoke(ctx, arguments)
        call_id = getattr(ctx, "tool_call_id", None)
        request = {"call_id": call_id, "arguments": arguments}

        async def call() -> _Outcome:
            # The tool's own counter, so that tools running side by side count only their own calls.
            with agentspan_run() as inner:
                value = await invoke(ctx, arguments)
            return _Outcome(value, inner.as_dict())

        # Keyed by the call id of the (replayed) model response: calls of one turn may start in another
        # order on a rerun, and one not on record (in flight at a crash) is just work still to do.
        outcome = await run_step_async(
            "tool", tool.name, request, call, codec=_OUTPUT, identity={"call_id": call_id}, ordered=call_id is None
        )
        run_usage().add(outcome.usage)  # run or replayed, the calls inside the tool are counted once
        return outcome.value

    setattr(on_invoke_tool, _WRAPPED, True)
    wrapped = copy.copy(tool)
    wrapped.on_invoke_tool = on_invoke_tool
    return wrapped

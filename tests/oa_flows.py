"""Scripted in-process models for the OpenAI Agents SDK adapter tests."""

from __future__ import annotations

import json
from typing import Any

from agents import ModelResponse, Usage
from agents.models.interface import Model
from openai.types.responses import (
    Response,
    ResponseCompletedEvent,
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
    ResponseTextDeltaEvent,
    ResponseUsage,
)


def _call(prefix: str, turn: int, k: int, name: str, args: dict[str, Any]) -> ResponseFunctionToolCall:
    return ResponseFunctionToolCall(
        id=f"{prefix}_{turn}_{k}", call_id=f"call_{prefix}_{turn}_{k}", name=name,
        arguments=json.dumps(args), type="function_call", status="completed",
    )  # fmt: skip


def _message(prefix: str, turn: int, text: str) -> ResponseOutputMessage:
    return ResponseOutputMessage(
        id=f"{prefix}_{turn}_msg", role="assistant", status="completed", type="message",
        content=[ResponseOutputText(text=text, type="output_text", annotations=[])],
    )  # fmt: skip


Turn = str | list[tuple[str, dict[str, Any]]]


class TurnModel(Model):
    """Answers by turn: turn n is the n-th entry of the script (a text answer or tool calls), where n is
    how many of this model's own replies the conversation already holds, so a resumed run gets the
    reply the crashed one would have got."""

    def __init__(self, prefix: str, script: list[Turn]) -> None:
        self.prefix = prefix
        self.script = script
        self.requests = 0
        self.inputs: list[Any] = []

    def _turn(self, input: Any) -> int:
        if isinstance(input, str):
            return 0
        return len(
            {str(i.get("id", "")).split("_")[1] for i in input if str(i.get("id", "")).startswith(f"{self.prefix}_")}
        )

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> ModelResponse:
        self.requests += 1
        self.inputs.append(input)
        turn = self._turn(input)
        entry = self.script[turn]
        output: list[Any] = (
            [_message(self.prefix, turn, entry)]
            if isinstance(entry, str)
            else [_call(self.prefix, turn, k, name, args) for k, (name, args) in enumerate(entry)]
        )
        usage = Usage(requests=1, input_tokens=10, output_tokens=5, total_tokens=15)
        return ModelResponse(output=output, usage=usage, response_id=f"resp_{self.prefix}_{turn}")

    async def stream_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> Any:
        """The reply as stream events: a text delta per word of a text answer, then the completed response."""
        reply = await self.get_response(system_instructions, input)
        n = 0
        for item in reply.output:
            if isinstance(item, ResponseOutputMessage):
                for word in item.content[0].text.split(" "):  # type: ignore[union-attr]
                    n += 1
                    yield ResponseTextDeltaEvent(
                        type="response.output_text.delta", item_id=item.id, output_index=0, content_index=0,
                        delta=word, logprobs=[], sequence_number=n,
                    )  # fmt: skip
        response = Response(
            id=reply.response_id or "resp", created_at=0, model="turn", object="response", output=reply.output,
            tool_choice="auto", tools=[], parallel_tool_calls=True,
            usage=ResponseUsage(
                input_tokens=10, output_tokens=5, total_tokens=15,
                input_tokens_details={"cached_tokens": 0, "cache_write_tokens": 0}, output_tokens_details={"reasoning_tokens": 0},
            ),
        )  # fmt: skip
        yield ResponseCompletedEvent(type="response.completed", response=response, sequence_number=n + 1)


def research(n: int, prefix: str = "r", answer: str = "compared") -> TurnModel:
    return TurnModel(prefix, [[("search", {"query": f"q{i + 1}"})] for i in range(n)] + [answer])

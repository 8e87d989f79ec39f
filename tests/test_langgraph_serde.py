"""Recorded LangChain results rebuild losslessly from JSON text (nothing is pickled)."""

from __future__ import annotations

import json

from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.types import Command, Send

from agentspan.adapters.langgraph._serde import CHAT_RESULT, CHUNKS, VALUE


def _through_json(codec: object, value: object) -> object:
    data = codec.encode(value, "a test value")  # type: ignore[attr-defined]
    return codec.decode(json.loads(json.dumps(data)))  # type: ignore[attr-defined]


def test_a_chat_result_with_tool_calls_usage_and_ids_round_trips() -> None:
    message = AIMessage(
        "thinking",
        id="lc_run--1234",
        tool_calls=[{"name": "search", "args": {"query": "durable"}, "id": "call_7", "type": "tool_call"}],
        usage_metadata={"input_tokens": 12, "output_tokens": 3, "total_tokens": 15},
        response_metadata={"model_name": "gpt-4o-mini", "finish_reason": "tool_calls"},
    )
    result = ChatResult(
        generations=[ChatGeneration(message=message, generation_info={"finish_reason": "tool_calls"})],
        llm_output={"token_usage": {"total_tokens": 15}},
    )
    rebuilt = _through_json(CHAT_RESULT, result)
    assert rebuilt == result
    assert isinstance(rebuilt, ChatResult)
    assert rebuilt.generations[0].message.tool_calls[0]["id"] == "call_7"  # type: ignore[attr-defined]


def test_tool_results_commands_and_sends_round_trip() -> None:
    tool_message = ToolMessage("results", tool_call_id="call_7", name="search", artifact={"hits": 3}, id="t1")
    assert _through_json(VALUE, tool_message) == tool_message
    command = Command(update={"messages": [tool_message]}, goto="agent")
    rebuilt = _through_json(VALUE, command)
    assert isinstance(rebuilt, Command) and rebuilt.goto == "agent"
    assert rebuilt.update == {"messages": [tool_message]}
    send = Send("worker", {"messages": [HumanMessage("go", id="h1")]})
    assert _through_json(VALUE, send) == send


def test_streamed_chunks_round_trip_in_order() -> None:
    chunks = [AIMessageChunk("dur", id="c1"), AIMessageChunk("able", id="c1")]
    assert _through_json(CHUNKS, chunks) == chunks

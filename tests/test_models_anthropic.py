"""AnthropicModel over a mocked transport (respx): translation both ways, streaming, errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import respx

from agentspan.agents import Message, ModelRequest, ModelResponse, ModelSettings, ToolCall, ToolSpec, Usage
from agentspan.agents.models import AnthropicModel, ModelAuthError, ModelResponseError, ModelServerError
from agentspan.errors import ConfigurationError

BASE = "http://claude.test"
URL = f"{BASE}/v1/messages"


pytestmark = pytest.mark.usefixtures("model_env_cleared")


@pytest.fixture
def model() -> Iterator[AnthropicModel]:
    with AnthropicModel("claude-test", base_url=BASE, api_key="sk-ant") as m:
        yield m


def _message(content: list[dict[str, Any]], stop_reason: str = "end_turn", **usage: int) -> dict[str, Any]:
    return {
        "id": "msg_1",
        "type": "message",
        "role": "assistant",
        "model": "claude-test-20250101",
        "content": content,
        "stop_reason": stop_reason,
        "usage": usage or {"input_tokens": 20, "output_tokens": 6},
    }


def _request(**overrides: Any) -> ModelRequest:
    fields: dict[str, Any] = {"model": "claude-test", "messages": [Message(role="user", content="hi")]}
    fields.update(overrides)
    return ModelRequest(**fields)


# --- request translation ----------------------------------------------------------------------------------
@respx.mock
def test_request_translates_system_tool_calls_and_merges_consecutive_tool_results(model: AnthropicModel) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200, json=_message([{"type": "text", "text": "ok"}])))
    request = ModelRequest(
        model="claude-test",
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content="compare"),
            Message(
                role="assistant",
                content="Searching both.",
                tool_calls=[
                    ToolCall(id="toolu_1", name="search", arguments='{"q": "x"}'),
                    ToolCall(id="toolu_2", name="search", arguments="not json"),
                ],
            ),
            Message(role="tool", content="x results", tool_call_id="toolu_1", name="search"),
            Message(role="tool", content="y results", tool_call_id="toolu_2", name="search"),
            Message(role="assistant", content="Both found."),
            Message(role="user", content="thanks"),
        ],
        tools=[ToolSpec(name="search", description="Search.", parameters={"type": "object"})],
        settings=ModelSettings(temperature=0.2, top_p=0.9),
    )
    model.complete(request)
    sent = route.calls.last.request
    assert sent.headers["x-api-key"] == "sk-ant" and sent.headers["anthropic-version"] == "2023-06-01"
    assert json.loads(sent.content) == {
        "model": "claude-test",
        "max_tokens": 4096,
        "system": "Be brief.",
        "messages": [
            {"role": "user", "content": "compare"},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": "Searching both."},
                    {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"q": "x"}},
                    {"type": "tool_use", "id": "toolu_2", "name": "search", "input": {}},
                ],
            },
            {
                "role": "user",
                "content": [
                    {"type": "tool_result", "tool_use_id": "toolu_1", "content": "x results"},
                    {"type": "tool_result", "tool_use_id": "toolu_2", "content": "y results"},
                ],
            },
            {"role": "assistant", "content": "Both found."},
            {"role": "user", "content": "thanks"},
        ],
        "temperature": 0.2,
        "top_p": 0.9,
        "tools": [{"name": "search", "description": "Search.", "input_schema": {"type": "object"}}],
    }


@respx.mock
def test_max_tokens_parallel_tool_calls_and_output_schema_are_translated(model: AnthropicModel) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200, json=_message([{"type": "text", "text": "{}"}])))
    model.complete(
        _request(
            messages=[Message(role="system", content="Judge."), Message(role="user", content="who?")],
            tools=[ToolSpec(name="t", description="T.", parameters={"type": "object"})],
            settings=ModelSettings(max_tokens=50, parallel_tool_calls=False),
            output_schema={"type": "object", "required": ["winner"]},
        )
    )
    body = json.loads(route.calls.last.request.content)
    assert body["max_tokens"] == 50
    assert body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert body["system"].startswith("Judge.\n\n")
    assert '{"type": "object", "required": ["winner"]}' in body["system"]


# --- response translation ---------------------------------------------------------------------------------
@respx.mock
def test_response_joins_text_blocks_and_turns_tool_use_into_tool_calls(model: AnthropicModel) -> None:
    content = [
        {"type": "text", "text": "Let me "},
        {"type": "text", "text": "check."},
        {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {"q": "a"}},
        {"type": "tool_use", "id": "toolu_2", "name": "fetch", "input": {}},
    ]
    body = _message(content, "tool_use", input_tokens=20, cache_read_input_tokens=100, output_tokens=6)
    respx.post(URL).mock(return_value=httpx.Response(200, json=body))
    assert model.complete(_request()) == ModelResponse(
        message=Message(
            role="assistant",
            content="Let me check.",
            tool_calls=[
                ToolCall(id="toolu_1", name="search", arguments='{"q": "a"}'),
                ToolCall(id="toolu_2", name="fetch", arguments="{}"),
            ],
        ),
        usage=Usage(prompt_tokens=120, completion_tokens=6, total_tokens=126),
        finish_reason="tool_calls",
        model="claude-test-20250101",
    )


@pytest.mark.parametrize(
    ("stop_reason", "finish_reason"),
    [("end_turn", "stop"), ("tool_use", "tool_calls"), ("max_tokens", "length"), ("refusal", "refusal")],
)
@respx.mock
def test_stop_reasons_map_to_finish_reasons(model: AnthropicModel, stop_reason: str, finish_reason: str) -> None:
    body = _message([{"type": "text", "text": "x"}], stop_reason)
    respx.post(URL).mock(return_value=httpx.Response(200, json=body))
    assert model.complete(_request()).finish_reason == finish_reason


@respx.mock
def test_a_body_without_content_is_a_response_error(model: AnthropicModel) -> None:
    respx.post(URL).mock(return_value=httpx.Response(200, json={"type": "message", "role": "assistant"}))
    with pytest.raises(ModelResponseError, match="anthropic/claude-test: the response has no content list"):
        model.complete(_request())


# --- streaming --------------------------------------------------------------------------------------------
@respx.mock
def test_stream_yields_text_deltas_and_assembles_tool_input(model: AnthropicModel) -> None:
    events = [
        ("message_start", {"message": {"model": "claude-test-x", "usage": {"input_tokens": 9, "output_tokens": 1}}}),
        ("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}}),
        ("ping", {}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "Let me "}}),
        ("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": "look."}}),
        ("content_block_stop", {"index": 0}),
        (
            "content_block_start",
            {"index": 1, "content_block": {"type": "tool_use", "id": "toolu_1", "name": "search", "input": {}}},
        ),
        ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": '{"q":'}}),
        ("content_block_delta", {"index": 1, "delta": {"type": "input_json_delta", "partial_json": ' "a"}'}}),
        ("content_block_stop", {"index": 1}),
        ("message_delta", {"delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 15}}),
        ("message_stop", {}),
    ]
    stream = "".join(f"event: {name}\ndata: {json.dumps({'type': name, **data})}\n\n" for name, data in events)
    route = respx.post(URL).mock(
        return_value=httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream.encode())
    )
    items = list(model.stream(_request()))
    assert items[:2] == ["Let me ", "look."]
    assert items[2] == ModelResponse(
        message=Message(
            role="assistant",
            content="Let me look.",
            tool_calls=[ToolCall(id="toolu_1", name="search", arguments='{"q": "a"}')],
        ),
        usage=Usage(prompt_tokens=9, completion_tokens=15, total_tokens=24),
        finish_reason="tool_calls",
        model="claude-test-x",
    )
    assert json.loads(route.calls.last.request.content)["stream"] is True


@respx.mock
def test_an_error_event_in_the_stream_raises_a_server_error(model: AnthropicModel) -> None:
    error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    stream = f"event: error\ndata: {json.dumps(error)}\n\n".encode()
    respx.post(URL).mock(
        return_value=httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream)
    )
    with pytest.raises(ModelServerError, match="the stream reported overloaded_error: Overloaded"):
        list(model.stream(_request()))


# --- endpoint, key and errors -----------------------------------------------------------------------------
@respx.mock
def test_anthropic_base_url_and_key_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://gateway.test/anthropic")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-env")
    route = respx.post("http://gateway.test/anthropic/v1/messages").mock(
        return_value=httpx.Response(200, json=_message([{"type": "text", "text": "ok"}]))
    )
    with AnthropicModel("claude-test") as model:
        assert model.complete(_request()).message.content == "ok"
    assert route.calls.last.request.headers["x-api-key"] == "sk-env"


@respx.mock
def test_the_official_endpoint_without_a_key_is_a_configuration_error() -> None:
    route = respx.post("https://api.anthropic.com/v1/messages")
    with AnthropicModel("claude-test") as model, pytest.raises(ConfigurationError, match="set ANTHROPIC_API_KEY"):
        model.complete(_request())
    assert route.call_count == 0


@respx.mock
def test_401_names_the_key_to_set_and_is_not_retried(model: AnthropicModel, sleeps: list[float]) -> None:
    error = {"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}
    route = respx.post(URL).mock(return_value=httpx.Response(401, json=error))
    with pytest.raises(ModelAuthError) as caught:
        model.complete(_request())
    assert str(caught.value) == "anthropic/claude-test: 401 Unauthorized: invalid x-api-key (set ANTHROPIC_API_KEY)"
    assert route.call_count == 1 and sleeps == []


@respx.mock
def test_529_overloaded_is_retried(model: AnthropicModel, sleeps: list[float]) -> None:
    overloaded = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    route = respx.post(URL).mock(
        side_effect=[
            httpx.Response(529, json=overloaded),
            httpx.Response(200, json=_message([{"type": "text", "text": "ok"}])),
        ]
    )
    assert model.complete(_request()).message.content == "ok"
    assert route.call_count == 2 and len(sleeps) == 1

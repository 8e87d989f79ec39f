"""OpenAIModel over a mocked transport (respx): request mapping, parsing, streaming, errors and retries."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import httpx
import pytest
import respx

from agentspan.agents import Message, ModelRequest, ModelResponse, ModelSettings, ToolCall, ToolSpec, Usage
from agentspan.agents.models import (
    AnthropicModel,
    ModelAuthError,
    ModelRateLimitError,
    ModelRequestError,
    ModelResponseError,
    ModelServerError,
    OpenAIModel,
    _http,
    get_model,
)
from agentspan.errors import ConfigurationError
from agentspan.testing import ScriptedModel

BASE = "http://llm.test/v1"
URL = f"{BASE}/chat/completions"


pytestmark = pytest.mark.usefixtures("model_env_cleared")


@pytest.fixture
def model() -> Iterator[OpenAIModel]:
    with OpenAIModel("gpt-4o-mini", base_url=BASE, api_key="sk-test") as m:
        yield m


def _request(**overrides: Any) -> ModelRequest:
    fields: dict[str, Any] = {"model": "gpt-4o-mini", "messages": [Message(role="user", content="hi")]}
    fields.update(overrides)
    return ModelRequest(**fields)


def _completion(
    message: dict[str, Any], finish_reason: str = "stop", usage: dict[str, int] | None = None
) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [{"index": 0, "message": {"role": "assistant", **message}, "finish_reason": finish_reason}],
        "usage": usage or {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17},
    }


def _sse(*chunks: dict[str, Any]) -> bytes:
    events = [f"data: {json.dumps(chunk)}\n\n" for chunk in chunks] + ["data: [DONE]\n\n"]
    return "".join(events).encode()


# --- request mapping --------------------------------------------------------------------------------------
@respx.mock
def test_request_maps_messages_tools_settings_and_output_schema(model: OpenAIModel) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200, json=_completion({"content": "ok"})))
    calls = [
        ToolCall(id="call_a", name="search", arguments='{"q": "x"}'),
        ToolCall(id="call_b", name="search", arguments='{"q": "y"}'),
    ]
    request = ModelRequest(
        model="gpt-4o-mini",
        messages=[
            Message(role="system", content="Be brief."),
            Message(role="user", content="compare"),
            Message(role="assistant", tool_calls=calls),
            Message(role="tool", content="x results", tool_call_id="call_a", name="search"),
            Message(role="tool", content="y results", tool_call_id="call_b", name="search"),
        ],
        tools=[ToolSpec(name="search", description="Search the web.", parameters={"type": "object"})],
        settings=ModelSettings(temperature=0, max_tokens=100, parallel_tool_calls=False),
        output_schema={"type": "object", "properties": {"winner": {"type": "string"}}},
    )
    model.complete(request)
    body = json.loads(route.calls.last.request.content)
    assert body == {
        "model": "gpt-4o-mini",
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "compare"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {"id": "call_a", "type": "function", "function": {"name": "search", "arguments": '{"q": "x"}'}},
                    {"id": "call_b", "type": "function", "function": {"name": "search", "arguments": '{"q": "y"}'}},
                ],
            },
            {"role": "tool", "tool_call_id": "call_a", "content": "x results"},
            {"role": "tool", "tool_call_id": "call_b", "content": "y results"},
        ],
        "tools": [
            {
                "type": "function",
                "function": {"name": "search", "description": "Search the web.", "parameters": {"type": "object"}},
            }
        ],
        "temperature": 0,
        "max_tokens": 100,
        "parallel_tool_calls": False,
        "response_format": {
            "type": "json_schema",
            "json_schema": {
                "name": "output",
                "schema": {"type": "object", "properties": {"winner": {"type": "string"}}},
                "strict": False,
            },
        },
    }


@respx.mock
def test_settings_left_unset_are_not_sent_and_parallel_tool_calls_needs_tools(model: OpenAIModel) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200, json=_completion({"content": "ok"})))
    model.complete(_request(settings=ModelSettings(top_p=0.5, parallel_tool_calls=True)))
    body = json.loads(route.calls.last.request.content)
    assert set(body) == {"model", "messages", "top_p"}
    assert body["top_p"] == 0.5


# --- response parsing -------------------------------------------------------------------------------------
@respx.mock
def test_parallel_tool_calls_and_usage_are_parsed(model: OpenAIModel) -> None:
    message = {
        "content": None,
        "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "search", "arguments": '{"q": "a"}'}},
            {"id": "call_2", "type": "function", "function": {"name": "fetch", "arguments": '{"url": "b"}'}},
        ],
    }
    respx.post(URL).mock(return_value=httpx.Response(200, json=_completion(message, "tool_calls")))
    response = model.complete(_request())
    assert response == ModelResponse(
        message=Message(
            role="assistant",
            tool_calls=[
                ToolCall(id="call_1", name="search", arguments='{"q": "a"}'),
                ToolCall(id="call_2", name="fetch", arguments='{"url": "b"}'),
            ],
        ),
        usage=Usage(prompt_tokens=12, completion_tokens=5, total_tokens=17),
        finish_reason="tool_calls",
        model="gpt-4o-mini-2024-07-18",
    )


@respx.mock
def test_a_text_answer_is_parsed_and_a_missing_total_is_computed(model: OpenAIModel) -> None:
    body = _completion({"content": "Paris."}, usage={"prompt_tokens": 7, "completion_tokens": 2})
    respx.post(URL).mock(return_value=httpx.Response(200, json=body))
    response = model.complete(_request())
    assert response.message.content == "Paris." and response.message.tool_calls == []
    assert response.usage == Usage(prompt_tokens=7, completion_tokens=2, total_tokens=9)
    assert response.finish_reason == "stop"


@respx.mock
def test_arguments_sent_as_an_object_by_a_compatible_server_become_json_text(model: OpenAIModel) -> None:
    message = {"tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1}}}]}
    respx.post(URL).mock(return_value=httpx.Response(200, json=_completion(message, "tool_calls")))
    assert model.complete(_request()).message.tool_calls[0].arguments == '{"a": 1}'


# --- streaming --------------------------------------------------------------------------------------------
@respx.mock
def test_stream_yields_text_deltas_then_the_assembled_response(model: OpenAIModel) -> None:
    def delta(d: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {"model": "gpt-4o-mini-x", "choices": [{"index": 0, "delta": d, "finish_reason": finish}]}

    def call(index: int, **fields: Any) -> dict[str, Any]:
        return delta({"tool_calls": [{"index": index, **fields}]})

    stream = _sse(
        delta({"role": "assistant", "content": ""}),
        delta({"content": "Let me "}),
        delta({"content": "look."}),
        call(0, id="call_1", type="function", function={"name": "search", "arguments": ""}),
        call(1, id="call_2", type="function", function={"name": "fetch", "arguments": '{"url"'}),
        call(0, function={"arguments": '{"q": '}),
        call(0, function={"arguments": '"a"}'}),
        call(1, function={"arguments": ': "b"}'}),
        delta({}, "tool_calls"),
        {
            "model": "gpt-4o-mini-x",
            "choices": [],
            "usage": {"prompt_tokens": 3, "completion_tokens": 4, "total_tokens": 7},
        },
    )
    route = respx.post(URL).mock(
        return_value=httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream)
    )
    items = list(model.stream(_request()))
    assert items[:2] == ["Let me ", "look."]
    assert items[2] == ModelResponse(
        message=Message(
            role="assistant",
            content="Let me look.",
            tool_calls=[
                ToolCall(id="call_1", name="search", arguments='{"q": "a"}'),
                ToolCall(id="call_2", name="fetch", arguments='{"url": "b"}'),
            ],
        ),
        usage=Usage(prompt_tokens=3, completion_tokens=4, total_tokens=7),
        finish_reason="tool_calls",
        model="gpt-4o-mini-x",
    )
    body = json.loads(route.calls.last.request.content)
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}


@respx.mock
def test_an_error_event_in_the_stream_raises_a_server_error(model: OpenAIModel) -> None:
    stream = _sse({"choices": [{"index": 0, "delta": {"content": "par"}}]}, {"error": {"message": "overloaded"}})
    respx.post(URL).mock(
        return_value=httpx.Response(200, headers={"content-type": "text/event-stream"}, content=stream)
    )
    received: list[Any] = []
    with pytest.raises(ModelServerError, match="the stream reported an error: overloaded"):
        for item in model.stream(_request()):
            received.append(item)
    assert received == ["par"]


@respx.mock
def test_a_stream_answered_with_plain_json_is_a_response_error(model: OpenAIModel) -> None:
    respx.post(URL).mock(return_value=httpx.Response(200, json=_completion({"content": "hi"})))
    with pytest.raises(ModelResponseError, match="expected an event stream, got application/json"):
        list(model.stream(_request()))


@pytest.mark.parametrize(
    ("event", "match"),
    [
        (b"data: {not json\n\n", "a stream event is not JSON"),
        (b'data: {"choices": [{"index": 0, "delta": {"tool_calls": ["x"]}}]}\n\n', "unexpected stream chunk"),
    ],
)
@respx.mock
def test_a_malformed_stream_event_is_a_response_error(model: OpenAIModel, event: bytes, match: str) -> None:
    respx.post(URL).mock(return_value=httpx.Response(200, headers={"content-type": "text/event-stream"}, content=event))
    with pytest.raises(ModelResponseError, match=match):
        list(model.stream(_request()))


# --- endpoint and key -------------------------------------------------------------------------------------
@respx.mock
def test_openai_base_url_is_honoured_and_the_key_sent_as_a_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", "http://proxy.test/openai/v1/")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-env")
    route = respx.post("http://proxy.test/openai/v1/chat/completions").mock(
        return_value=httpx.Response(200, json=_completion({"content": "ok"}))
    )
    with OpenAIModel("gpt-4o-mini") as model:
        assert model.complete(_request()).message.content == "ok"
    assert route.call_count == 1
    assert route.calls.last.request.headers["authorization"] == "Bearer sk-env"


@respx.mock
def test_an_endpoint_without_a_key_gets_no_authorization_header() -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(200, json=_completion({"content": "ok"})))
    with OpenAIModel("llama3", base_url=BASE) as model:
        model.complete(_request())
    assert route.call_count == 1
    assert "authorization" not in route.calls.last.request.headers


@respx.mock
def test_the_official_endpoint_without_a_key_is_a_configuration_error_before_any_request() -> None:
    route = respx.post("https://api.openai.com/v1/chat/completions")
    with OpenAIModel("gpt-4o-mini") as model:
        assert model.base_url == "https://api.openai.com/v1"
        with pytest.raises(ConfigurationError, match="set OPENAI_API_KEY"):
            model.complete(_request())
    assert route.call_count == 0


# --- errors and retries -----------------------------------------------------------------------------------
@respx.mock
def test_401_raises_an_auth_error_quoting_the_provider_and_is_not_retried(
    model: OpenAIModel, sleeps: list[float]
) -> None:
    error = {"error": {"message": "Incorrect API key provided", "type": "invalid_request_error"}}
    route = respx.post(URL).mock(return_value=httpx.Response(401, json=error))
    with pytest.raises(ModelAuthError) as caught:
        model.complete(_request())
    assert str(caught.value) == "openai/gpt-4o-mini: 401 Unauthorized: Incorrect API key provided (set OPENAI_API_KEY)"
    assert (caught.value.provider, caught.value.model, caught.value.status) == ("openai", "gpt-4o-mini", 401)
    assert caught.value.retryable is False
    assert route.call_count == 1 and sleeps == []


@pytest.mark.parametrize(
    ("status", "error_type"),
    [(400, ModelRequestError), (403, ModelAuthError), (404, ModelRequestError), (422, ModelRequestError)],
)
@respx.mock
def test_client_errors_are_not_retried(
    model: OpenAIModel, sleeps: list[float], status: int, error_type: type[Exception]
) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(status, json={"error": {"message": "bad thing"}}))
    with pytest.raises(error_type, match=f"openai/gpt-4o-mini: {status} .*: bad thing"):
        model.complete(_request())
    assert route.call_count == 1 and sleeps == []


@respx.mock
def test_404_names_the_base_url_to_check(model: OpenAIModel) -> None:
    respx.post(URL).mock(return_value=httpx.Response(404, text="Not Found"))
    with pytest.raises(ModelRequestError, match=f"check the model name and the base URL {BASE}"):
        model.complete(_request())


@respx.mock
def test_429_with_retry_after_is_retried_after_the_time_asked(model: OpenAIModel, sleeps: list[float]) -> None:
    route = respx.post(URL).mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "2"}, json={"error": {"message": "Rate limit reached"}}),
            httpx.Response(200, json=_completion({"content": "finally"})),
        ]
    )
    assert model.complete(_request()).message.content == "finally"
    assert route.call_count == 2
    assert sleeps == [2.0]


@pytest.mark.parametrize("status", [500, 502, 503, 504, 529])
@respx.mock
def test_a_server_error_then_success_succeeds_after_one_retry(
    model: OpenAIModel, sleeps: list[float], status: int
) -> None:
    route = respx.post(URL).mock(
        side_effect=[
            httpx.Response(status, text="upstream hiccup"),
            httpx.Response(200, json=_completion({"content": "ok"})),
        ]
    )
    assert model.complete(_request()).message.content == "ok"
    assert route.call_count == 2
    assert len(sleeps) == 1 and 0.375 <= sleeps[0] <= 0.5, "first backoff: 0.5 s less up to a quarter of jitter"


@respx.mock
def test_429_on_every_attempt_raises_a_retryable_rate_limit_error(sleeps: list[float]) -> None:
    route = respx.post(URL).mock(return_value=httpx.Response(429, json={"error": {"message": "quota"}}))
    with (
        OpenAIModel("gpt-4o-mini", base_url=BASE, max_retries=2) as model,
        pytest.raises(ModelRateLimitError) as caught,
    ):
        model.complete(_request())
    assert route.call_count == 3 and len(sleeps) == 2
    assert caught.value.retryable is True and caught.value.status == 429
    assert str(caught.value).endswith("quota (gave up after 2 retries)")


@respx.mock
def test_a_timeout_is_retried_then_raises_a_server_error(sleeps: list[float]) -> None:
    route = respx.post(URL).mock(side_effect=httpx.ReadTimeout("read timed out"))
    with OpenAIModel("gpt-4o-mini", base_url=BASE, max_retries=3) as model, pytest.raises(ModelServerError) as caught:
        model.complete(_request())
    assert route.call_count == 4 and len(sleeps) == 3
    assert sleeps == sorted(sleeps), "the backoff grows"
    assert caught.value.status is None and caught.value.retryable is True
    assert "timed out" in str(caught.value) and isinstance(caught.value.__cause__, httpx.ReadTimeout)


@respx.mock
def test_a_connection_error_then_success_succeeds(model: OpenAIModel, sleeps: list[float]) -> None:
    route = respx.post(URL).mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json=_completion({"content": "ok"}))]
    )
    assert model.complete(_request()).message.content == "ok"
    assert route.call_count == 2 and len(sleeps) == 1


@pytest.mark.parametrize(
    ("response", "match"),
    [
        (httpx.Response(200, text="<html>gateway</html>"), "the response is not JSON: '<html>gateway</html>'"),
        (httpx.Response(200, json=[1, 2]), "not a JSON object"),
        (httpx.Response(200, json={"id": "x", "object": "chat.completion"}), "the response has no choices"),
        (httpx.Response(200, json={"choices": [{"index": 0}]}), "unexpected response \\(KeyError"),
        (
            httpx.Response(200, json={"choices": [{"message": {"tool_calls": [{"id": "c", "type": "function"}]}}]}),
            "unexpected response",
        ),
    ],
)
@respx.mock
def test_a_malformed_body_raises_a_response_error(model: OpenAIModel, response: httpx.Response, match: str) -> None:
    respx.post(URL).mock(return_value=response)
    with pytest.raises(ModelResponseError, match=match) as caught:
        model.complete(_request())
    assert caught.value.provider == "openai" and caught.value.retryable is False


# --- backoff arithmetic -----------------------------------------------------------------------------------
def test_retry_after_is_read_as_seconds_milliseconds_or_an_http_date_and_capped() -> None:
    assert _http.retry_after_seconds(httpx.Headers({"Retry-After": "2"})) == 2.0
    assert _http.retry_after_seconds(httpx.Headers({"retry-after-ms": "1500", "Retry-After": "2"})) == 1.5
    assert _http.retry_after_seconds(httpx.Headers({"Retry-After": "3600"})) == 60.0
    assert _http.retry_after_seconds(httpx.Headers({"Retry-After": "soon"})) is None
    assert _http.retry_after_seconds(httpx.Headers({})) is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    waited = _http.retry_after_seconds(httpx.Headers({"Retry-After": later}))
    assert waited is not None and 25 <= waited <= 30
    earlier = format_datetime(datetime.now(UTC) - timedelta(seconds=30), usegmt=True)
    assert _http.retry_after_seconds(httpx.Headers({"Retry-After": earlier})) == 0.0


def test_backoff_doubles_with_jitter_up_to_eight_seconds() -> None:
    for retry, full in [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        waits = [_http.backoff_seconds(retry) for _ in range(50)]
        assert all(0.75 * full <= wait <= full for wait in waits)


# --- get_model --------------------------------------------------------------------------------------------
def test_get_model_builds_the_provider_a_spec_names() -> None:
    openai = get_model("openai/meta-llama/Llama-3.1-8B", base_url="http://localhost:8000/v1")
    anthropic = get_model("anthropic/claude-sonnet-4-5", api_key="k")
    try:
        assert isinstance(openai, OpenAIModel)
        assert (openai.provider, openai.name, openai.base_url) == (
            "openai",
            "meta-llama/Llama-3.1-8B",
            "http://localhost:8000/v1",
        )
        assert isinstance(anthropic, AnthropicModel)
        assert (anthropic.provider, anthropic.name) == ("anthropic", "claude-sonnet-4-5")
    finally:
        openai.close()
        anthropic.close()


def test_get_model_returns_a_model_instance_as_is() -> None:
    scripted = ScriptedModel(["hi"])
    assert get_model(scripted) is scripted


@pytest.mark.parametrize("spec", ["gpt-4o-mini", "gemini/gemini-2.0", "openai/", ""])
def test_get_model_rejects_an_unknown_spec_and_says_what_works(spec: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        get_model(spec)
    message = str(caught.value)
    assert "'anthropic/<model>'" in message and "'openai/<model>'" in message
    assert "OpenAI-compatible" in message and "base_url" in message

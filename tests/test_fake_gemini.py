"""FakeOpenAIServer speaking Gemini's REST API: google-genai's own client and Google ADK against it, offline."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from processes import model_turns

from agentspan.testing import FakeOpenAIServer

needs_genai = pytest.mark.skipif(
    importlib.util.find_spec("google") is None or importlib.util.find_spec("google.genai") is None,
    reason="google-genai is not installed (the frameworks environment has it)",
)
needs_adk = pytest.mark.skipif(
    importlib.util.find_spec("google") is None or importlib.util.find_spec("google.adk") is None,
    reason="google-adk is not installed (the frameworks environment has it)",
)

MODEL = "gemini-2.5-flash"
CITIES = ["Paris", "Rome", "Oslo"]


def _client(fake: FakeOpenAIServer, **options: Any) -> Any:
    from google import genai
    from google.genai import types

    return genai.Client(api_key="test", http_options=types.HttpOptions(base_url=fake.gemini_base_url, **options))


def _no_automatic_calls(**config: Any) -> Any:
    from google.genai import types

    return types.GenerateContentConfig(
        automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True), **config
    )


def _weather_tool() -> Any:
    from google.genai import types

    declaration = types.FunctionDeclaration(
        name="get_weather",
        description="The weather in a city.",
        parameters_json_schema={"type": "object", "properties": {"city": {"type": "string"}}},
    )
    return types.Tool(function_declarations=[declaration])


def _gemini_post(fake: FakeOpenAIServer, method: str, body: Any, query: str = "") -> httpx.Response:
    url = f"{fake.gemini_base_url}/v1beta/models/{MODEL}:{method}{query}"
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.post(url, content=content, headers={"x-goog-api-key": "test"})


def _user_contents(text: str = "weather in Paris?") -> list[dict[str, Any]]:
    return [{"role": "user", "parts": [{"text": text}]}]


# --- google-genai's own client -------------------------------------------------------------------------
@needs_genai
def test_generate_content_returns_the_scripted_text_with_usage_model_and_response_id() -> None:
    with FakeOpenAIServer(["It is sunny in Paris today."]) as fake:
        client = _client(fake)  # held: a Client closes its connections when it is collected
        response = client.models.generate_content(
            model=MODEL, contents="weather in Paris?", config=_no_automatic_calls(system_instruction="Be brief.")
        )
    assert response.text == "It is sunny in Paris today."
    assert response.candidates[0].finish_reason.name == "STOP"
    usage = response.usage_metadata
    assert usage.prompt_token_count > 0 and usage.candidates_token_count > 0
    assert usage.total_token_count == usage.prompt_token_count + usage.candidates_token_count
    assert response.model_version == MODEL and response.response_id == "fake-1"
    [request] = fake.requests
    assert request["model"] == MODEL and request["stream"] is False
    assert request["systemInstruction"]["parts"] == [{"text": "Be brief."}], "the body is recorded as sent"
    assert request["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "weather in Paris?"},
    ]


@needs_genai
def test_a_function_call_round_trip_carries_the_script_ids_and_counts_model_contents_as_turns() -> None:
    from google.genai import types

    with FakeOpenAIServer([[("get_weather", {"city": "Paris"})], "Sunny in Paris."]) as fake:
        client = _client(fake)
        config = _no_automatic_calls(tools=[_weather_tool()])
        first = client.models.generate_content(model=MODEL, contents="weather in Paris?", config=config)
        [call] = first.function_calls
        assert (call.id, call.name, call.args) == ("call_1", "get_weather", {"city": "Paris"})
        contents = [
            types.Content(role="user", parts=[types.Part(text="weather in Paris?")]),
            first.candidates[0].content,
            types.Content(
                role="user",
                parts=[
                    types.Part(function_response=types.FunctionResponse(id=call.id, name=call.name, response={"w": 1}))
                ],
            ),
        ]
        second = client.models.generate_content(model=MODEL, contents=contents, config=config)
    assert second.text == "Sunny in Paris." and not second.function_calls
    assert fake.requests[0]["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert model_turns(fake.requests) == Counter({1: 1, 2: 1})
    assert fake.requests[1]["messages"][1:] == [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "name": "get_weather", "content": '{"w": 1}'},
    ]


@needs_genai
def test_streaming_sends_text_in_a_few_chunks_calls_whole_and_usage_on_the_last_chunk() -> None:
    script = [
        [("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Rome"})],
        "The weather is sunny in both Paris and Rome today.",
    ]
    with FakeOpenAIServer(script) as fake:
        client = _client(fake)
        calls = list(client.models.generate_content_stream(model=MODEL, contents="weather?"))
        history = [*_user_contents(), {"role": "model", "parts": [{"functionCall": {"name": "get_weather"}}]}]
        texts = list(client.models.generate_content_stream(model=MODEL, contents=history))
    assert [[(c.id, c.args) for c in chunk.function_calls] for chunk in calls] == [
        [("call_1", {"city": "Paris"})],
        [("call_2", {"city": "Rome"})],
    ]
    assert 1 < len(texts) <= 3
    assert "".join(chunk.text for chunk in texts) == "The weather is sunny in both Paris and Rome today."
    for chunks in (calls, texts):
        *head, last = chunks
        assert all(chunk.usage_metadata is None and chunk.candidates[0].finish_reason is None for chunk in head)
        assert last.usage_metadata.total_token_count > 0 and last.candidates[0].finish_reason.name == "STOP"
    assert [r["stream"] for r in fake.requests] == [True, True]


@needs_genai
def test_scripted_errors_reach_google_genai_as_gemini_errors_and_the_retry_gets_the_reply() -> None:
    from google.genai import errors

    script = [FakeOpenAIServer.error(429, "slow down", retry_after=2), "hi"]
    with FakeOpenAIServer(script) as fake:
        client = _client(fake)
        with pytest.raises(errors.ClientError) as failure:
            client.models.generate_content(model=MODEL, contents="hello")
        assert (failure.value.code, failure.value.status, failure.value.message) == (
            429,
            "RESOURCE_EXHAUSTED",
            "slow down",
        )
        assert failure.value.response.headers["Retry-After"] == "2"
        assert client.models.generate_content(model=MODEL, contents="hello").text == "hi"
        with pytest.raises(errors.ClientError) as past:
            client.models.generate_content(model=MODEL, contents=[*_user_contents(), *_model_reply("hi")])
    assert past.value.status == "INVALID_ARGUMENT" and "no scripted reply for turn 1" in str(past.value.message)
    assert fake.request_count == 3


def _model_reply(text: str) -> list[dict[str, Any]]:
    return [{"role": "model", "parts": [{"text": text}]}]


# --- the wire, without google-genai --------------------------------------------------------------------
def test_one_script_answers_both_protocols_by_turn() -> None:
    script = [[("search", {"q": "durable"})], "Found it."]
    with FakeOpenAIServer(script) as fake:
        chat = httpx.post(
            f"{fake.base_url}/chat/completions",
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "find"}]},
        ).json()
        gemini = _gemini_post(fake, "generateContent", {"contents": _user_contents("find")}).json()
        answer = _gemini_post(
            fake, "generateContent", {"contents": [*_user_contents("find"), *_model_reply("searching")]}
        ).json()
    assert chat["choices"][0]["message"]["tool_calls"][0]["id"] == "call_1"
    assert gemini["candidates"][0]["content"] == {
        "role": "model",
        "parts": [{"functionCall": {"id": "call_1", "name": "search", "args": {"q": "durable"}}}],
    }
    assert answer["candidates"][0]["content"]["parts"] == [{"text": "Found it."}]
    assert model_turns(fake.requests) == Counter({1: 2, 2: 1})


def test_routes_choose_a_gemini_conversation_script_by_its_system_instruction() -> None:
    with FakeOpenAIServer(["default"], routes={"You are the critic": ["critique"]}) as fake:

        def ask(system: str) -> Any:
            body = {"systemInstruction": {"parts": [{"text": system}]}, "contents": _user_contents()}
            return _gemini_post(fake, "generateContent", body).json()["candidates"][0]["content"]["parts"]

        assert ask("You are the critic.") == [{"text": "critique"}]
        assert ask("You are the writer.") == [{"text": "default"}]


def test_gemini_sse_has_no_done_sentinel_and_every_event_is_json() -> None:
    with FakeOpenAIServer(["one two three four five six"]) as fake:
        response = _gemini_post(fake, "streamGenerateContent", {"contents": _user_contents()}, "?alt=sse")
    assert response.headers["content-type"] == "text/event-stream"
    events = [line.removeprefix("data: ") for line in response.text.split("\n\n") if line]
    chunks = [json.loads(event) for event in events]
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks) == "one two three four five six"
    assert [("usageMetadata" in c, "finishReason" in c["candidates"][0]) for c in chunks] == [
        (False, False),
        (False, False),
        (True, True),
    ]


def test_bad_gemini_requests_get_gemini_error_bodies_that_say_what_is_wrong() -> None:
    with FakeOpenAIServer(["unused"]) as fake:
        not_json = _gemini_post(fake, "generateContent", b"{")
        no_contents = _gemini_post(fake, "generateContent", {"contents": "hi"})
        no_sse = _gemini_post(fake, "streamGenerateContent", {"contents": _user_contents()})
        with_v1 = httpx.post(f"{fake.base_url}/v1beta/models/{MODEL}:generateContent", json={"contents": []})
    for response in (not_json, no_contents, no_sse):
        assert response.status_code == 400
        assert response.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert "'contents' must be a list" in no_contents.json()["error"]["message"]
    assert "alt=sse" in no_sse.json()["error"]["message"]
    assert with_v1.status_code == 404 and "gemini_base_url, without /v1" in with_v1.json()["error"]["message"]
    assert fake.request_count == 0, "requests that are not model calls are not recorded"


def test_scripted_tool_arguments_that_are_not_an_object_are_refused_with_a_clear_error() -> None:
    from agentspan.agents import Message, ModelResponse, ToolCall

    broken = ModelResponse(message=Message(role="assistant", tool_calls=[ToolCall(id="c", name="t", arguments="[1")]))
    with FakeOpenAIServer([broken]) as fake:
        response = _gemini_post(fake, "generateContent", {"contents": _user_contents()})
    assert response.status_code == 500
    assert "not a JSON object" in response.json()["error"]["message"]


# --- Google ADK's default Gemini model -----------------------------------------------------------------
class _Connections:
    """Every outbound connection and name lookup the process makes while watching (an audit hook)."""

    installed: _Connections | None = None

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.watching = False

    @classmethod
    def get(cls) -> _Connections:
        if cls.installed is None:
            cls.installed = cls()
            sys.addaudithook(cls.installed._hook)
        return cls.installed

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.watching and event in ("socket.connect", "socket.getaddrinfo"):
            self.seen.append((event, args[1] if event == "socket.connect" else args[0]))


@pytest.fixture
def connections() -> Iterator[_Connections]:
    watch = _Connections.get()
    watch.seen, watch.watching = [], True
    try:
        yield watch
    finally:
        watch.watching = False


@needs_adk
# google-genai's async client subclasses aiohttp's ClientSession, which aiohttp warns about.
@pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning")
@pytest.mark.parametrize("streaming", ["none", "sse"])
def test_an_adk_agent_runs_three_tool_calls_and_answers_against_the_fake(
    streaming: str, monkeypatch: pytest.MonkeyPatch, connections: _Connections
) -> None:
    from google.adk.agents import LlmAgent
    from google.adk.agents.run_config import RunConfig, StreamingMode
    from google.adk.runners import InMemoryRunner
    from google.genai import types

    ran: list[str] = []

    def get_weather(city: str) -> dict[str, str]:
        """The weather in a city."""
        ran.append(city)
        return {"city": city, "weather": "sunny"}

    script = FakeOpenAIServer.research_script(3, "get_weather", lambda i: {"city": CITIES[i]}, answer="All sunny.")
    with FakeOpenAIServer(script) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.gemini_base_url)
        monkeypatch.setenv("GOOGLE_API_KEY", "test")
        monkeypatch.setenv("GOOGLE_GENAI_USE_ENTERPRISE", "false")  # not Vertex AI (the older name is deprecated)
        monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
        agent = LlmAgent(name="weather", model=MODEL, instruction="Answer about the weather.", tools=[get_weather])
        runner = InMemoryRunner(agent=agent, app_name="weather_app")
        mode = StreamingMode.SSE if streaming == "sse" else StreamingMode.NONE

        async def run() -> list[Any]:
            session = await runner.session_service.create_session(app_name="weather_app", user_id="u")
            message = types.Content(role="user", parts=[types.Part(text="Weather in Paris, Rome and Oslo?")])
            config = RunConfig(streaming_mode=mode, max_llm_calls=10)  # a broken fake fails fast
            run = runner.run_async(user_id="u", session_id=session.id, new_message=message, run_config=config)
            try:
                return [event async for event in run]
            finally:
                await runner.close()
                # The Gemini model's client (one per event loop) keeps its HTTP session open otherwise.
                await agent.canonical_model.api_client.aio.aclose()

        events = asyncio.run(run())
        requests = fake.requests
        port = fake.port
    final = [e for e in events if not e.partial and e.content and e.content.parts and e.content.parts[0].text]
    assert final[-1].content.parts[0].text == "All sunny."
    assert ran == CITIES
    assert model_turns(requests) == Counter({1: 1, 2: 1, 3: 1, 4: 1}), "one request per turn, none repeated"
    assert all(r["stream"] is (streaming == "sse") for r in requests)
    assert requests[0]["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert "Answer about the weather." in requests[0]["messages"][0]["content"]
    last = requests[-1]["messages"]
    assert [m["tool_call_id"] for m in last if m["role"] == "tool"] == ["call_1", "call_2", "call_3"]
    assert [json.loads(m["content"])["city"] for m in last if m["role"] == "tool"] == CITIES
    assert connections.seen, "the watch saw the connection to the fake"
    to_the_fake = {("socket.connect", ("127.0.0.1", port)), ("socket.getaddrinfo", "127.0.0.1")}
    assert set(connections.seen) - to_the_fake == set(), "no connection or name lookup other than to the fake"

"""The test fakes: FakeOpenAIServer (a real server on loopback) and ScriptedModel (in process)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agentspan.agents import Message, ModelRequest, ModelResponse, ToolCall, Usage
from agentspan.agents.models import ModelError, ModelRateLimitError, ModelRequestError, OpenAIModel, _http
from agentspan.testing import FakeOpenAIServer, ScriptedModel


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    waits: list[float] = []
    monkeypatch.setattr(_http, "_sleep", waits.append)
    return waits


def _user(text: str = "research durable execution") -> Message:
    return Message(role="user", content=text)


def _conversation(turns: int) -> list[Message]:
    """A conversation in which the assistant has already answered ``turns`` times."""
    messages = [_user()]
    for turn in range(turns):
        call = ToolCall(id=f"call_{turn + 1}", name="search", arguments="{}")
        messages += [
            Message(role="assistant", tool_calls=[call]),
            Message(role="tool", content=f"result {turn}", tool_call_id=call.id),
        ]
    return messages


def _chat(client: httpx.Client, base_url: str, messages: list[dict[str, Any]], **extra: Any) -> httpx.Response:
    return client.post(f"{base_url}/chat/completions", json={"model": "fake", "messages": messages, **extra})


@pytest.fixture
def research() -> Iterator[FakeOpenAIServer]:
    script = FakeOpenAIServer.research_script(3, "search", lambda i: {"query": f"q{i}"}, answer="three found")
    with FakeOpenAIServer(script) as fake:
        yield fake


# --- FakeOpenAIServer with OpenAIModel over loopback ------------------------------------------------------
def test_openai_model_runs_a_scripted_conversation_against_the_fake_server(research: FakeOpenAIServer) -> None:
    messages = [_user()]
    answers: list[ModelResponse] = []
    with OpenAIModel("gpt-4o-mini", base_url=research.base_url) as model:
        while True:
            response = model.complete(ModelRequest(model="gpt-4o-mini", messages=messages))
            answers.append(response)
            if not response.message.tool_calls:
                break
            call = response.message.tool_calls[0]
            messages = [
                *messages,
                response.message,
                Message(role="tool", content=f"found {call.arguments}", tool_call_id=call.id),
            ]
    assert [a.message.tool_calls[0].arguments for a in answers[:3]] == [
        '{"query": "q0"}',
        '{"query": "q1"}',
        '{"query": "q2"}',
    ]
    assert [a.message.tool_calls[0].id for a in answers[:3]] == ["call_1", "call_2", "call_3"]
    assert answers[3].message.content == "three found" and answers[3].finish_reason == "stop"
    assert answers[3].model == "gpt-4o-mini"
    assert answers[3].usage.prompt_tokens > answers[0].usage.prompt_tokens > 0, "usage grows with the conversation"
    assert research.request_count == 4
    assert research.requests[3]["messages"][-1] == {
        "role": "tool",
        "tool_call_id": "call_3",
        "content": 'found {"query": "q2"}',
    }


def test_streaming_through_the_fake_server_yields_deltas_and_the_assembled_reply() -> None:
    script = [[("search", {"query": "a long query"}), ("fetch", {"url": "x"})], "The answer is forty-two."]
    with FakeOpenAIServer(script) as fake, OpenAIModel("gpt-4o-mini", base_url=fake.base_url) as model:
        first = list(model.stream(ModelRequest(model="gpt-4o-mini", messages=_conversation(0))))
        second = list(model.stream(ModelRequest(model="gpt-4o-mini", messages=_conversation(1))))
    assert len(first) == 1 and isinstance(first[0], ModelResponse)
    assert first[0].message.tool_calls == [
        ToolCall(id="call_1", name="search", arguments='{"query": "a long query"}'),
        ToolCall(id="call_2", name="fetch", arguments='{"url": "x"}'),
    ]
    assert first[0].finish_reason == "tool_calls" and first[0].usage.total_tokens > 0
    *deltas, final = second
    assert deltas == ["The ", "answer ", "is ", "forty-two."]
    assert isinstance(final, ModelResponse) and final.message.content == "The answer is forty-two."
    assert final.usage.completion_tokens > 0


def test_replies_are_chosen_by_the_number_of_assistant_messages(research: FakeOpenAIServer) -> None:
    with httpx.Client() as client:
        for turns in (2, 2, 0, 3):
            messages = [m.model_dump(exclude_defaults=True) for m in _conversation(turns)]
            reply = _chat(client, research.base_url, messages).json()["choices"][0]
            if turns < 3:
                assert reply["message"]["tool_calls"][0]["function"]["arguments"] == json.dumps({"query": f"q{turns}"})
            else:
                assert reply["message"]["content"] == "three found"
    assert research.request_count == 4


def test_in_order_mode_answers_the_script_in_sequence() -> None:
    with FakeOpenAIServer(["one", "two"], by_turn=False) as fake, httpx.Client() as client:
        texts = [_chat(client, fake.base_url, [{"role": "user", "content": "?"}]).json() for _ in range(3)]
    assert [t["choices"][0]["message"]["content"] for t in texts[:2]] == ["one", "two"]
    assert "no scripted reply for turn 2" in texts[2]["error"]["message"]


def test_routes_answer_each_conversation_from_its_own_script_by_its_opening() -> None:
    routes = {"You are Manager": [[("delegate", {"to": "writer"})], "all done"], "You are Writer": ["a poem"]}
    with FakeOpenAIServer(routes=routes) as fake, httpx.Client() as client:

        def ask(system: str, turns: int = 0) -> dict[str, Any]:
            messages = [{"role": "system", "content": system}, {"role": "user", "content": "go"}]
            messages += [{"role": "assistant", "content": "x"}] * turns
            return dict(_chat(client, fake.base_url, messages).json())

        manager, writer, manager_again = ask("You are Manager."), ask("You are Writer."), ask("You are Manager.", 1)
        stranger = ask("You are Nobody.")
    assert manager["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "delegate"
    assert writer["choices"][0]["message"]["content"] == "a poem"
    assert manager_again["choices"][0]["message"]["content"] == "all done"
    assert "matches none of the routes" in stranger["error"]["message"]


def test_tool_call_ids_are_unique_across_routes() -> None:
    routes = {"A": [[("t", {})]], "B": [[("t", {})]]}
    with FakeOpenAIServer([[("t", {})]], routes=routes) as fake, httpx.Client() as client:
        ids = [
            _chat(client, fake.base_url, [{"role": "user", "content": text}]).json()["choices"][0]["message"][
                "tool_calls"
            ][0]["id"]
            for text in ("A", "B", "neither")
        ]
    assert ids == ["call_2", "call_3", "call_1"]


def test_a_scripted_error_is_answered_once_and_the_client_retries_into_the_reply(sleeps: list[float]) -> None:
    script = [FakeOpenAIServer.error(429, "slow down", retry_after=2), "after the wait"]
    with FakeOpenAIServer(script) as fake, OpenAIModel("gpt-4o-mini", base_url=fake.base_url) as model:
        response = model.complete(ModelRequest(model="gpt-4o-mini", messages=[_user()]))
        assert response.message.content == "after the wait"
        assert fake.request_count == 2
    assert sleeps == [2.0]


def test_scripted_errors_on_every_retry_surface_as_the_typed_error(sleeps: list[float]) -> None:
    script = [FakeOpenAIServer.error(429, "quota exhausted") for _ in range(3)] + ["never"]
    with (
        FakeOpenAIServer(script) as fake,
        OpenAIModel("gpt-4o-mini", base_url=fake.base_url, max_retries=2) as model,
        pytest.raises(ModelRateLimitError, match="429 Too Many Requests: quota exhausted"),
    ):
        model.complete(ModelRequest(model="gpt-4o-mini", messages=[_user()]))
    assert fake.request_count == 3 and len(sleeps) == 2


def test_a_turn_past_the_script_is_a_clear_request_error(sleeps: list[float]) -> None:
    with (
        FakeOpenAIServer(["only"]) as fake,
        OpenAIModel("gpt-4o-mini", base_url=fake.base_url) as model,
        pytest.raises(ModelRequestError, match="no scripted reply for turn 1 \\(the script has 1 turns\\)"),
    ):
        model.complete(ModelRequest(model="gpt-4o-mini", messages=_conversation(1)))
    assert sleeps == [] and fake.request_count == 1


def test_a_worker_in_another_process_gets_the_reply_of_its_turn(research: FakeOpenAIServer) -> None:
    """What a resumed worker sees: its first request is for turn 2, and that is what it gets."""
    code = textwrap.dedent(
        """
        import json, sys
        from agentspan.agents import Message, ModelRequest, ToolCall
        from agentspan.agents.models import get_model

        messages = [Message(role="user", content="go")]
        for turn in range(2):
            call = ToolCall(id=f"call_{turn + 1}", name="search", arguments="{}")
            messages += [Message(role="assistant", tool_calls=[call]),
                         Message(role="tool", content="r", tool_call_id=call.id)]
        model = get_model("openai/gpt-4o-mini", base_url=sys.argv[1])
        response = model.complete(ModelRequest(model="gpt-4o-mini", messages=messages))
        print(json.dumps([c.model_dump() for c in response.message.tool_calls]))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, research.base_url], capture_output=True, text=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [{"id": "call_3", "name": "search", "arguments": '{"query": "q2"}'}]
    assert research.request_count == 1


def test_concurrent_requests_on_kept_alive_connections_are_all_answered(research: FakeOpenAIServer) -> None:
    errors: list[BaseException] = []

    def client_thread() -> None:
        try:
            with httpx.Client() as client:
                for turns in range(4):
                    messages = [m.model_dump(exclude_defaults=True) for m in _conversation(turns)]
                    assert _chat(client, research.base_url, messages).status_code == 200
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=client_thread) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert errors == []
    assert research.request_count == 32 and len(research.requests) == 32


def test_unknown_paths_and_bad_bodies_get_openai_style_errors(research: FakeOpenAIServer) -> None:
    with httpx.Client() as client:
        missing = client.post(f"{research.base_url}/embeddings", json={})
        not_json = client.post(f"{research.base_url}/chat/completions", content=b"{nope")
    assert missing.status_code == 404 and "chat/completions" in missing.json()["error"]["message"]
    assert not_json.status_code == 400 and not_json.json()["error"]["message"] == "the request body is not JSON"
    assert research.request_count == 0


def test_stop_cuts_idle_kept_alive_connections_and_closes_the_port() -> None:
    fake = FakeOpenAIServer(["hi"]).start()
    port = fake.port
    with httpx.Client() as client:
        assert _chat(client, fake.base_url, [{"role": "user", "content": "?"}]).status_code == 200
        fake.stop()  # the client still holds its idle connection open
        with pytest.raises(ConnectionRefusedError), socket.create_connection(("127.0.0.1", port), timeout=2):
            pass
    with pytest.raises(RuntimeError, match="not started"):
        _ = fake.base_url


# --- ScriptedModel ----------------------------------------------------------------------------------------
def test_scripted_model_answers_in_order_and_records_every_request() -> None:
    model = ScriptedModel([[("search", {"q": "a"}), ("fetch", {"u": 1})], [("search", {"q": "b"})], "done"])
    requests = [ModelRequest(model="scripted", messages=_conversation(turn)) for turn in range(3)]
    responses = [model.complete(request) for request in requests]
    assert [c.id for r in responses for c in r.message.tool_calls] == ["call_1", "call_2", "call_3"]
    assert responses[0].message.tool_calls[1] == ToolCall(id="call_2", name="fetch", arguments='{"u": 1}')
    assert responses[0].finish_reason == "tool_calls"
    assert responses[2].message.content == "done" and responses[2].finish_reason == "stop"
    assert responses[2].model == "scripted" and responses[2].usage.total_tokens > 0
    assert model.requests == requests


def test_scripted_model_returns_a_given_response_with_its_own_usage() -> None:
    given = ModelResponse(message=Message(role="assistant", content="x"), usage=Usage(prompt_tokens=5, total_tokens=5))
    model = ScriptedModel([given], name="gpt-4o-mini", provider="openai")
    response = model.complete(ModelRequest(model="gpt-4o-mini", messages=[_user()]))
    assert response.usage == Usage(prompt_tokens=5, total_tokens=5)
    assert response.message == given.message and response.model == "gpt-4o-mini"


def test_scripted_model_says_clearly_when_the_script_runs_out() -> None:
    model = ScriptedModel(["only"])
    model.complete(ModelRequest(model="scripted", messages=[_user()]))
    with pytest.raises(ModelError, match="the script has 1 replies and this is call 2; the last message was user"):
        model.complete(ModelRequest(model="scripted", messages=[_user("again?")]))
    assert len(model.requests) == 2


def test_scripted_model_streams_words_then_the_response() -> None:
    model = ScriptedModel(["Durable agents resume."])
    *deltas, final = model.stream(ModelRequest(model="scripted", messages=[_user()]))
    assert deltas == ["Durable ", "agents ", "resume."]
    assert isinstance(final, ModelResponse) and final.message.content == "Durable agents resume."


def test_research_builds_n_tool_turns_then_an_answer() -> None:
    model = ScriptedModel.research(2, "search", lambda i: {"query": f"q{i}"}, answer="two")
    assert [r.message.tool_calls[0].arguments for r in model.responses[:2]] == ['{"query": "q0"}', '{"query": "q1"}']
    assert model.responses[2].message.content == "two" and len(model.responses) == 3
    assert ScriptedModel.research_script(1, "t") == [[("t", {})], "Done."]


@pytest.mark.parametrize("reply", [42, [], [("search",)], [("search", {}, "extra")]])
def test_scripted_model_rejects_a_reply_it_cannot_read(reply: Any) -> None:
    with pytest.raises(TypeError, match="scripted reply 0"):
        ScriptedModel([reply])


def test_wait_idle_waits_for_a_dead_clients_request_to_be_counted() -> None:
    """A killed worker's last request may still be in the server's hands: wait_idle lets it land."""
    import socket

    body = b'{"model": "m", "messages": [{"role": "user", "content": "hi"}]}'
    with FakeOpenAIServer(["hello"]) as fake:
        sock = socket.create_connection(("127.0.0.1", fake.port))
        request = (
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
        )
        sock.sendall(request)
        sock.close()  # gone before the answer, as a killed process is
        fake.wait_idle()
        assert fake.request_count == 1

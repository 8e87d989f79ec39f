"""Guardrails on Google ADK runs: the final response checked inside the execution (each check a step);
retry sends the guardrail's message as a new user message in the same session, fix replaces the answer,
raise fails the run with ``finish_reason="guardrail"``. ADK's default Gemini model talks to the test's
``FakeOpenAIServer``, which answers by turn (the number of ``model`` contents so far)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.adk")

from test_google_adk import _gemini as gemini

from agentspan.agents import AgentRuntime, RegexGuardrail
from agentspan.runtime import ExecutionStatus
from agentspan.worker._aio import run_async

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning"
)

CARD = r"\b\d{4}(?:[ -]?\d{4}){3}\b"
LEAK = "Your card 4111 1111 1111 1111 is on file."
CLEAN = "Your card ending in the last four digits is on file."
ASKED_AGAIN = "Your answer was not accepted: Do not write card numbers. Answer again."


def card_guard(on_fail: str, **kwargs: Any) -> RegexGuardrail:
    return RegexGuardrail(CARD, name="no_card", on_fail=on_fail, message="Do not write card numbers.", **kwargs)


@pytest.fixture
def agent() -> Iterator[Any]:
    from google.adk.agents import LlmAgent

    made = LlmAgent(name="card_helper", model="gemini-2.5-flash", instruction="Help with cards.")
    yield made
    run_async(made.canonical_model.api_client.aio.aclose())


def user_texts(request: dict[str, Any]) -> list[str]:
    return [
        part["text"] for content in request["contents"] if content["role"] == "user"
        for part in content["parts"] if "text" in part
    ]  # fmt: skip


def test_adk_retry_sends_the_message_in_the_same_session_and_returns_the_clean_answer(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, agent: Any
) -> None:
    with gemini(monkeypatch, [LEAK, CLEAN]) as fake:
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(agent, "what card?", guardrails=[card_guard("retry")], timeout=60)
            journal = runtime.client.get_journal(result.execution_id)
            execution = runtime.client.get_execution(result.execution_id)
        requests = fake.requests
    assert result.is_success, result.error
    assert result.output == CLEAN
    assert len(requests) == 2
    assert [c["role"] for c in requests[1]["contents"]] == ["user", "model", "user"]
    assert user_texts(requests[1]) == ["what card?", ASKED_AGAIN]
    assert [s.output["passed"] for s in journal if s.kind == "guardrail"] == [False, True]
    assert [e["author"] for e in execution.output["events"]] == ["user", "card_helper", "user", "card_helper"]


def test_adk_fix_redacts_the_final_response(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, agent: Any) -> None:
    with gemini(monkeypatch, [LEAK]) as fake:
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(agent, "what card?", guardrails=[card_guard("fix")], timeout=60)
        requests = fake.request_count
    assert result.is_success, result.error
    assert result.output == "Your card [REDACTED] is on file."
    assert requests == 1


def test_adk_raise_fails_the_run_with_finish_reason_guardrail(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, agent: Any
) -> None:
    with gemini(monkeypatch, [LEAK]), AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        result = runtime.run(agent, "what card?", guardrails=[card_guard("raise")], timeout=60)
    assert result.status is ExecutionStatus.FAILED
    assert result.finish_reason == "guardrail"
    assert result.error is not None and "no_card" in result.error


def test_adk_input_guardrail_fixes_the_prompt_before_the_model_sees_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, agent: Any
) -> None:
    guard = RegexGuardrail(CARD, name="no_card_in", position="input", on_fail="fix")
    with gemini(monkeypatch, [CLEAN]) as fake:
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(agent, "my card is 4111 1111 1111 1111", guardrails=[guard], timeout=60)
        requests = fake.requests
    assert result.is_success, result.error
    assert user_texts(requests[0]) == ["my card is [REDACTED]"]

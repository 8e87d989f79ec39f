"""Guardrails on CrewAI runs: the crew's (or flow's) final answer checked inside the execution, each
check a step; fix replaces ``output`` (and ``CrewOutput.raw``), raise fails the run with
``finish_reason="guardrail"``; retry is refused at start (a crew cannot be kicked off again with the
guardrail's message)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("crewai")

from crewai import LLM, Agent, Crew, Task
from crewai.flow.flow import Flow, start

from agentspan.agents import AgentRuntime, RegexGuardrail
from agentspan.errors import ConfigurationError
from agentspan.runtime import ExecutionStatus
from agentspan.testing import FakeOpenAIServer

CARD = r"\b\d{4}(?:[ -]?\d{4}){3}\b"
LEAK = "Your card 4111 1111 1111 1111 is on file."


def card_guard(on_fail: str, **kwargs: Any) -> RegexGuardrail:
    return RegexGuardrail(CARD, name="no_card", on_fail=on_fail, message="Do not write card numbers.", **kwargs)


def helpers(base_url: str) -> Crew:
    llm = LLM(model="gpt-4o-mini", base_url=base_url, api_key="test", max_retries=0)
    helper = Agent(role="helper", goal="Help with cards", backstory="A bank clerk.", llm=llm)
    task = Task(description="Answer: {question}", expected_output="one sentence", agent=helper)
    return Crew(agents=[helper], tasks=[task], name="card-helpers")


class CardFlow(Flow):  # type: ignore[type-arg]
    @start()
    def answer(self) -> str:
        return LEAK


def test_crew_fix_redacts_the_output_and_the_crew_output(tmp_path: Path) -> None:
    with FakeOpenAIServer([LEAK]) as fake:
        crew = helpers(fake.base_url)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(crew, inputs={"question": "what card?"}, guardrails=[card_guard("fix")], timeout=60)
            checks = [s for s in runtime.client.get_journal(result.execution_id) if s.kind == "guardrail"]
        requests = fake.request_count
    assert result.is_success, result.error
    assert result.output == "Your card [REDACTED] is on file."
    assert result.crew_output.raw == result.output
    assert [s.output["passed"] for s in checks] == [False]
    assert requests == 1


def test_crew_raise_fails_the_run_with_finish_reason_guardrail(tmp_path: Path) -> None:
    with FakeOpenAIServer([LEAK]) as fake:
        crew = helpers(fake.base_url)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(crew, inputs={"question": "what card?"}, guardrails=[card_guard("raise")], timeout=60)
    assert result.status is ExecutionStatus.FAILED
    assert result.finish_reason == "guardrail"


def test_crew_input_guardrail_fixes_a_string_input_before_the_kickoff(tmp_path: Path) -> None:
    guard = RegexGuardrail(CARD, name="no_card_in", position="input", on_fail="fix")
    with FakeOpenAIServer(["Noted."]) as fake:
        crew = helpers(fake.base_url)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(
                crew, inputs={"question": "is 4111 1111 1111 1111 mine?"}, guardrails=[guard], timeout=60
            )
        sent = str(fake.requests[0]["messages"])
    assert result.is_success, result.error
    assert "is [REDACTED] mine?" in sent and "4111" not in sent


def test_retry_on_a_crew_is_refused_at_start_naming_what_works(tmp_path: Path) -> None:
    with FakeOpenAIServer([LEAK]) as fake:
        crew = helpers(fake.base_url)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            with pytest.raises(ConfigurationError, match="on_fail='fix', 'raise' or 'human'"):
                runtime.start(crew, inputs={"question": "what card?"}, guardrails=[card_guard("retry")])
            assert runtime.client.list_executions().items == []
        assert fake.request_count == 0


def test_flow_fix_redacts_its_final_value(tmp_path: Path) -> None:
    with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        result = runtime.run(CardFlow(), inputs={}, guardrails=[card_guard("fix")], timeout=60)
    assert result.is_success, result.error
    assert result.output == "Your card [REDACTED] is on file."

"""``AgentResult``: how a run's outcome is printed, and a run cut short by ``max_turns`` is not a success."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from test_cli import agentspan

from agentspan.agents import Agent, AgentResult, AgentRuntime, tool
from agentspan.runtime import ExecutionStatus
from agentspan.testing import FakeOpenAIServer, ScriptedModel


@tool
def search(query: str) -> str:
    """Search."""
    return f"results for {query}"


@pytest.fixture
def runtime(db_path: Path) -> Iterator[AgentRuntime]:
    with AgentRuntime(db=db_path, serve_http=False) as rt:
        yield rt


def test_an_empty_answer_prints_a_box_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    AgentResult("e1", ExecutionStatus.COMPLETED, "", finish_reason="stop").print_result()
    out = capsys.readouterr().out
    assert "(the agent answered with an empty message)" in out and "execution: e1" in out


def test_a_failure_without_an_error_text_prints(capsys: pytest.CaptureFixture[str]) -> None:
    AgentResult("e2", ExecutionStatus.FAILED, "", finish_reason="error").print_result()
    assert "failed: no error recorded" in capsys.readouterr().out


def test_a_run_stopped_by_max_turns_is_not_a_success(runtime: AgentRuntime, capsys: pytest.CaptureFixture[str]) -> None:
    model = ScriptedModel([[("search", {"query": str(i)})] for i in range(5)])
    result = runtime.run(Agent(name="bounded", model=model, tools=[search], max_turns=2), "loop")
    assert result.finish_reason == "max_turns"
    assert result.outcome == "max_turns"
    assert not result.is_success
    result.print_result()
    assert "stopped at max_turns without a final answer" in capsys.readouterr().out


def test_agentspan_run_exits_1_and_says_max_turns(tmp_path: Path) -> None:
    script = FakeOpenAIServer.research_script(5, "search", lambda i: {"query": f"q{i}"}, answer="never reached")
    with FakeOpenAIServer(script) as fake:
        done = agentspan(
            "run",
            "cli_agents:bounded",
            "loop",
            "--db",
            str(tmp_path / "run.db"),
            env={"OPENAI_BASE_URL": fake.base_url},
        )
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "stopped at max_turns without a final answer" in done.stdout
    assert "finish: max_turns" in done.stdout

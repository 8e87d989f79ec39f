"""Budgets across real processes: a worker killed with SIGKILL after spending 80% of its token budget is
resumed by another, and the run stops exactly where an uninterrupted run with the same budget stops; a
run that waits on its budget holds no process and finishes once the budget is raised over HTTP.
Native agents, LangGraph and the OpenAI Agents SDK, each run by ``agentspan worker`` subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from processes import TESTS, model_turns, stop, wait_until
from test_budgets import fixed_usage

from agentspan.agents import Budget
from agentspan.client import HttpClient
from agentspan.runtime import Execution, ExecutionStatus, StepStatus
from agentspan.testing import FakeOpenAIServer

pytestmark = pytest.mark.slow


def _langgraph_input() -> Any:
    from agentspan.adapters.langgraph._graph import execution_input

    return execution_input({"messages": [("user", "compare")]})


def _openai_input() -> Any:
    from agentspan.adapters.openai_agents._agent import execution_input

    return execution_input("compare")


@dataclass(frozen=True)
class Framework:
    target: str
    """What ``agentspan worker`` serves."""
    name: str
    """The execution name."""
    data: Callable[[], Any]


FRAMEWORKS = {
    "native": Framework("agent_flows:agents", "researcher", lambda: {"prompt": "compare"}),
    "langgraph": Framework("test_langgraph_crash:graph", "lg-researcher", _langgraph_input),
    "openai-agents": Framework("test_openai_agents_crash:researcher", "oa-researcher", _openai_input),
}


def _worker(url: str, fake: FakeOpenAIServer, log: Path, framework: Framework) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OPENAI_BASE_URL": fake.base_url, "AGENT_LOG": str(log)}
    env.update({"OPENAI_AGENTS_DISABLE_TRACING": "1", "AGENT_TOOL_DELAY": "0.1"})
    env.pop("OPENAI_API_KEY", None)
    env.pop("LANGSMITH_TRACING", None)
    return subprocess.Popen(
        [sys.executable, "-m", "agentspan", "worker", framework.target, "--server", url,
         "--lease-seconds", "2", "--poll-seconds", "1", "--max-executions", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _script() -> list[Any]:
    """20 tool turns then an answer; every model call reports 100 tokens."""
    return fixed_usage(
        FakeOpenAIServer.research_script(20, "search", lambda i: {"query": f"q{i + 1}"}, answer="compared")
    )


def _spent(client: HttpClient, execution_id: str) -> int:
    return sum(
        (s.usage or {}).get("total_tokens", 0)
        for s in client.get_journal(execution_id)
        if s.kind == "llm" and s.status is StepStatus.COMPLETED
    )


def _model_calls(client: HttpClient, execution_id: str) -> int:
    return sum(1 for s in client.get_journal(execution_id) if s.kind == "llm" and s.status is StepStatus.COMPLETED)


def _finish(client: HttpClient, execution_id: str) -> Execution:
    wait_until(lambda: client.get_execution(execution_id).status.is_terminal, "the run to finish")
    return client.get_execution(execution_id)


@pytest.mark.parametrize("framework", list(FRAMEWORKS.values()), ids=list(FRAMEWORKS))
def test_a_run_killed_at_80_percent_of_its_budget_stops_at_the_budget_exactly(
    server: str, tmp_path: Path, framework: Framework
) -> None:
    budget = Budget(max_tokens=1000)
    with FakeOpenAIServer(_script()) as fake, HttpClient(server) as client:
        execution = client.create_execution(framework.name, framework.data(), budget=budget)
        first = _worker(server, fake, tmp_path / "tools.log", framework)
        wait_until(lambda: _spent(client, execution.id) >= 800, "80% of the budget spent")
        first.send_signal(signal.SIGKILL)
        first.wait()
        at_kill = client.get_execution(execution.id)
        spent_at_kill = _spent(client, execution.id)
        requests_at_kill = fake.request_count
        second = _worker(server, fake, tmp_path / "tools.log", framework)
        interrupted = _finish(client, execution.id)
        stop(second)
        resumed_requests = fake.requests[requests_at_kill:]
        interrupted_calls = _model_calls(client, execution.id)

        calm = client.create_execution(framework.name, framework.data(), idempotency_key="calm", budget=budget)
        before_calm = fake.request_count
        third = _worker(server, fake, tmp_path / "calm.log", framework)
        uninterrupted = _finish(client, calm.id)
        stop(third)
        calm_requests = fake.request_count - before_calm
        calm_calls = _model_calls(client, calm.id)

    assert not at_kill.status.is_terminal and spent_at_kill < 1000, "the kill came before the budget was spent"
    for run in (interrupted, uninterrupted):
        assert run.status is ExecutionStatus.FAILED
        assert run.error is not None and run.error.type.endswith("BudgetExceededError"), run.error
    assert calm_requests == calm_calls == 10, "an uninterrupted run makes 10 calls of 100 tokens"
    assert interrupted_calls == 10, "the resumed run stops at the same model call"
    assert all(turn > spent_at_kill // 100 for turn in model_turns(resumed_requests)), (
        f"the resumed run asked again for turns it had recorded: {sorted(model_turns(resumed_requests))}"
    )
    assert max(model_turns(resumed_requests)) == 10, "no model call past the budget started"


@pytest.mark.parametrize("framework", list(FRAMEWORKS.values()), ids=list(FRAMEWORKS))
def test_a_run_waiting_on_its_budget_holds_no_process_and_finishes_when_raised_over_http(
    server: str, tmp_path: Path, framework: Framework
) -> None:
    with FakeOpenAIServer(_script()) as fake, HttpClient(server) as client:
        budget = Budget(max_tokens=500, on_exhausted="wait")
        execution = client.create_execution(framework.name, framework.data(), budget=budget)
        first = _worker(server, fake, tmp_path / "tools.log", framework)
        wait_until(lambda: client.get_execution(execution.id).status is ExecutionStatus.WAITING, "the budget wait")
        stop(first)  # nothing of the run is held by a process while it waits
        waiting = client.get_execution(execution.id)
        calls_when_waiting = fake.request_count

        raised = httpx.post(f"{server}/executions/{execution.id}/budget", json={"tokens": 5000})
        second = _worker(server, fake, tmp_path / "tools.log", framework)
        done = _finish(client, execution.id)
        stop(second)
        journal = client.get_journal(execution.id)

    assert waiting.worker_id is None and waiting.wait is not None and waiting.wait.signal == "budget:1"
    assert calls_when_waiting == 5
    assert raised.status_code == 200, raised.text
    assert done.status is ExecutionStatus.COMPLETED, done.error
    assert sum(1 for s in journal if s.kind == "llm") == 21
    assert [(s.status, s.output) for s in journal if s.kind == "budget"] == [(StepStatus.COMPLETED, {"tokens": 5000})]

"""An OpenAI Agents SDK agent's worker process killed with SIGKILL after tool call 18 of 20, resumed by
another: no model request and no tool call is repeated for completed calls.

The worker subprocesses serve this module's ``agent`` (``agentspan worker test_openai_agents_crash:researcher``):
the SDK's ``OpenAIChatCompletionsModel`` against the test's ``FakeOpenAIServer`` (``OPENAI_BASE_URL``),
every tool call appending ``<query>\\t<pid>`` to the file named by ``AGENT_LOG``.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import openai
import pytest
from agents import Agent, OpenAIChatCompletionsModel, function_tool
from processes import TESTS, kill_after_and_resume, log_call, model_turns, stop, wait_until

from agentspan.adapters.openai_agents import agent_function, execution_input
from agentspan.client import HttpClient
from agentspan.errors import InvalidInputError
from agentspan.runtime import ExecutionStatus, StepStatus
from agentspan.testing import FakeOpenAIServer

pytestmark = pytest.mark.slow


@function_tool
def search(query: str) -> str:
    """Search for information."""
    log_call(query)
    return f"results for {query}"


def _model() -> OpenAIChatCompletionsModel:
    client = openai.AsyncOpenAI(
        base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"), api_key="test", max_retries=0
    )
    return OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client)


agent = Agent(name="oa-researcher", instructions="Research, then compare.", model=_model(), tools=[search])
# 21 turns: past the SDK's default limit of 10.
researcher = agent_function(agent, max_turns=30)
PROMPT = "compare"


@function_tool(needs_approval=True)
def refund(amount: int) -> str:
    """Refund an amount to the customer."""
    log_call(f"refund {amount}", pause=0)
    return f"refunded {amount}"


support = agent_function(Agent(name="oa-support", instructions="Help.", model=_model(), tools=[refund]))


def _worker(url: str, fake: FakeOpenAIServer, log: Path, serves: str = "researcher") -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OPENAI_BASE_URL": fake.base_url, "AGENT_LOG": str(log)}
    env["OPENAI_AGENTS_DISABLE_TRACING"] = "1"
    env.pop("OPENAI_API_KEY", None)
    return subprocess.Popen(
        [sys.executable, "-m", "agentspan", "worker", f"test_openai_agents_crash:{serves}", "--server", url,
         "--lease-seconds", "2", "--poll-seconds", "1", "--max-executions", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _tools_done(client: HttpClient, execution_id: str) -> set[str]:
    return {
        s.input["arguments"]
        for s in client.get_journal(execution_id)
        if s.kind == "tool" and s.status is StepStatus.COMPLETED
    }


def test_killed_after_tool_call_18_the_agent_resumes_at_19(server: str, tmp_path: Path) -> None:
    script = FakeOpenAIServer.research_script(20, "search", lambda i: {"query": f"q{i + 1}"}, answer="compared")
    log = tmp_path / "tools.log"
    with FakeOpenAIServer(script) as fake, HttpClient(server) as client:
        execution = client.create_execution("oa-researcher", execution_input(PROMPT))
        run = kill_after_and_resume(
            client, execution.id, fake, lambda: _worker(server, fake, log), lambda: _tools_done(client, execution.id)
        )
        done_at_kill, before_requests, resumed_requests = run.done_at_kill, run.requests_before, run.requests_after
        final, total_requests = run.final, fake.request_count

        # The same run without a crash, for comparison.
        calm = client.create_execution("oa-researcher", execution_input(PROMPT), idempotency_key="calm")
        third = _worker(server, fake, tmp_path / "calm.log")
        wait_until(lambda: client.get_execution(calm.id).status.is_terminal, "the uninterrupted run")
        stop(third)
        uninterrupted = client.get_execution(calm.id)

    assert final.status is ExecutionStatus.COMPLETED, final.error
    assert final.output["output"] == "compared"
    assert len(final.output["tool_calls"]) == 20
    lines = [line.split("\t") for line in log.read_text().splitlines()]
    runs = collections.Counter(query for query, _ in lines)
    assert set(runs) == {f"q{i}" for i in range(1, 21)}
    for arguments in done_at_kill:
        query = arguments.split('"')[-2]
        assert runs[query] == 1, f"tool call {query} completed before the kill but ran again"
    assert sum(runs.values()) <= 20 + 1, "at most the one call in flight at the kill ran twice"
    assert all(count == 1 for count in model_turns(before_requests).values()), "worker 1 asked for no turn twice"
    resumed_turns = model_turns(resumed_requests)
    assert resumed_turns and all(turn > len(done_at_kill) for turn in resumed_turns), (
        f"the resumed run asked again for turns {sorted(resumed_turns)}; {len(done_at_kill)} were done"
    )
    assert total_requests <= 21 + 1, "every model turn was requested once (plus at most the one in flight)"
    assert len({pid for _, pid in lines}) == 2, "two worker processes ran the tools"
    assert uninterrupted.status is ExecutionStatus.COMPLETED

    def without_response_ids(output: Any) -> Any:
        # The fake server numbers its responses across runs (``provider_data.response_id``).
        messages = [{k: v for k, v in m.items() if k != "provider_data"} for m in output["messages"]]
        return {**output, "messages": messages}

    assert without_response_ids(final.output) == without_response_ids(uninterrupted.output)


def test_an_approval_waits_on_the_server_with_no_process_and_a_fresh_worker_completes_it(
    server: str, tmp_path: Path
) -> None:
    log = tmp_path / "tools.log"
    with FakeOpenAIServer([[("refund", {"amount": 5})], "refunded"]) as fake, HttpClient(server) as client:
        execution = client.create_execution("oa-support", execution_input("I was double charged"))
        first = _worker(server, fake, log, "support")
        assert first.wait(timeout=60) == 0, "the worker ran its one execution to the wait, then exited"
        waiting = client.get_execution(execution.id)
        approval = next(s for s in client.get_journal(execution.id) if s.kind == "approval")
        with pytest.raises(InvalidInputError):
            client.send_signal(execution.id, f"approval:{approval.input['call_id']}", {"approved": "yes"})
        client.send_signal(execution.id, f"approval:{approval.input['call_id']}", {"approved": True})
        second = _worker(server, fake, log, "support")
        wait_until(lambda: client.get_execution(execution.id).status.is_terminal, "the approved run")
        stop(second)
        final = client.get_execution(execution.id)
        turns = model_turns(fake.requests)
    assert waiting.status is ExecutionStatus.WAITING
    assert (approval.status, approval.input["tool"]) == (StepStatus.SUSPENDED, "refund")
    assert final.status is ExecutionStatus.COMPLETED, final.error
    assert final.output["output"] == "refunded"
    lines = [line.split("\t") for line in log.read_text().splitlines()]
    assert [query for query, _ in lines] == ["refund 5"], "the refund ran once, after the approval"
    assert lines[0][1] == str(second.pid)
    assert turns == {1: 1, 2: 1}, "the first turn was replayed by the fresh worker, not asked for again"


def test_a_program_using_the_drop_in_runner_killed_after_tool_call_18_resumes_when_run_again(tmp_path: Path) -> None:
    from agentspan.runtime import Service, SQLiteStore

    script = FakeOpenAIServer.research_script(20, "search", lambda i: {"query": f"q{i + 1}"}, answer="compared")
    log, db = tmp_path / "tools.log", tmp_path / "program.db"
    with FakeOpenAIServer(script) as fake:
        env = {**os.environ, "PYTHONPATH": str(TESTS), "OPENAI_BASE_URL": fake.base_url, "AGENT_LOG": str(log)}
        env.update(AGENTSPAN_DB=str(db), OPENAI_AGENTS_DISABLE_TRACING="1")
        env.pop("OPENAI_API_KEY", None)
        env.pop("AGENTSPAN_SERVER_URL", None)
        program = [sys.executable, str(TESTS / "oa_program.py")]
        first = subprocess.Popen(program, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= 18, "18 tool calls", 120)
        service = Service(SQLiteStore(db))
        try:
            wait_until(lambda: _journal_tools(service) >= 18, "18 recorded tool calls")
            first.send_signal(signal.SIGKILL)
            first.wait()
            done_at_kill = _journal_tools(service)
            requests_at_kill = fake.request_count
            second = subprocess.run(program, env=env, capture_output=True, text=True, timeout=120)
            executions = service.list_executions(name="oa-program").items
        finally:
            service.close()
        resumed_requests = fake.requests[requests_at_kill:]
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "compared"
    assert "resuming" in second.stderr or len(executions) == 1
    assert [e.status for e in executions] == [ExecutionStatus.COMPLETED], "one execution, resumed"
    runs = collections.Counter(line.split("\t")[0] for line in log.read_text().splitlines())
    assert set(runs) == {f"q{i}" for i in range(1, 21)}
    assert sorted(runs.values())[:done_at_kill] == [1] * done_at_kill
    assert sum(runs.values()) <= 20 + 1, "at most the one call in flight at the kill ran twice"
    resumed_turns = model_turns(resumed_requests)
    assert resumed_turns and min(resumed_turns) > done_at_kill, f"turns asked for again: {sorted(resumed_turns)}"


def _journal_tools(service: Any) -> int:
    done = 0
    for execution in service.list_executions(name="oa-program").items:
        done += sum(s.kind == "tool" and s.status is StepStatus.COMPLETED for s in service.get_journal(execution.id))
    return done

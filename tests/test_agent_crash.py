"""A native agent's worker process killed with SIGKILL, resumed by another: no model request and no
tool call is repeated for completed turns, and the result equals an uninterrupted run's."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from processes import TESTS, kill_after_and_resume, model_turns, stop, wait_until

from agentspan.client import HttpClient
from agentspan.runtime import ExecutionStatus, StepStatus
from agentspan.testing import FakeOpenAIServer

pytestmark = pytest.mark.slow


def _worker(url: str, fake: FakeOpenAIServer, log: Path, delay: float = 0.1) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PYTHONPATH": str(TESTS),
        "OPENAI_BASE_URL": fake.base_url,
        "AGENT_LOG": str(log),
        "AGENT_TOOL_DELAY": str(delay),
    }
    env.pop("OPENAI_API_KEY", None)
    return subprocess.Popen(
        [sys.executable, "-m", "agentspan", "worker", "agent_flows:agents", "--server", url,
         "--lease-seconds", "2", "--poll-seconds", "1", "--max-executions", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _tools_done(client: HttpClient, execution_id: str) -> set[str]:
    return {
        s.input["arguments"].get("query", s.input["arguments"].get("page"))
        for s in client.get_journal(execution_id)
        if s.kind == "tool" and s.status is StepStatus.COMPLETED
    }


def test_killed_after_tool_call_18_the_agent_resumes_at_19(server: str, tmp_path: Path) -> None:
    script = FakeOpenAIServer.research_script(20, "search", lambda i: {"query": f"q{i + 1}"}, answer="compared")
    log = tmp_path / "tools.log"
    with FakeOpenAIServer(script) as fake, HttpClient(server) as client:
        execution = client.create_execution("researcher", {"prompt": "compare"})
        run = kill_after_and_resume(
            client, execution.id, fake, lambda: _worker(server, fake, log), lambda: _tools_done(client, execution.id)
        )
        done_at_kill, before_requests, resumed_requests = run.done_at_kill, run.requests_before, run.requests_after
        interrupted = run.final

        # The same run without a crash, for comparison.
        calm = client.create_execution("researcher", {"prompt": "compare"}, idempotency_key="calm")
        third = _worker(server, fake, tmp_path / "calm.log", delay=0.0)
        wait_until(lambda: client.get_execution(calm.id).status.is_terminal, "the uninterrupted run")
        stop(third)
        uninterrupted = client.get_execution(calm.id)

    assert interrupted.status is ExecutionStatus.COMPLETED
    lines = [line.split("\t") for line in log.read_text().splitlines()]
    runs = collections.Counter(query for query, _ in lines)
    for query in done_at_kill:
        assert runs[query] == 1, f"tool call {query} completed before the kill but ran again"
    assert all(len({k for q, k in lines if q == query}) == 1 for query in runs)
    assert all(count == 1 for count in model_turns(before_requests).values()), "worker 1 asked for no turn twice"
    resumed_turns = model_turns(resumed_requests)
    assert resumed_turns, "the resumed run asked the model for the turns it had not finished"
    assert all(turn > len(done_at_kill) for turn in resumed_turns), (
        f"the resumed run asked again for turns {sorted(resumed_turns)}; {len(done_at_kill)} were done"
    )
    assert interrupted.output["output"] == uninterrupted.output["output"] == "compared"
    assert interrupted.output["messages"] == uninterrupted.output["messages"]
    assert interrupted.output["usage"] == uninterrupted.output["usage"]


def test_parallel_tool_calls_killed_midway_are_not_repeated(server: str, tmp_path: Path) -> None:
    script: list[Any] = [[("fetch", {"page": page}) for page in range(10)], "read them all"]
    log = tmp_path / "pages.log"
    with FakeOpenAIServer(script) as fake, HttpClient(server) as client:
        execution = client.create_execution("reader", {"prompt": "read"})
        first = _worker(server, fake, log)
        wait_until(lambda: len(_tools_done(client, execution.id)) >= 3, "3 finished pages")
        first.send_signal(signal.SIGKILL)
        first.wait()
        done_at_kill = _tools_done(client, execution.id)
        assert 3 <= len(done_at_kill) < 10
        second = _worker(server, fake, log)
        wait_until(lambda: client.get_execution(execution.id).status.is_terminal, "the resumed run")
        stop(second)
        stop(first)
        final = client.get_execution(execution.id)
        requests = fake.request_count
    assert final.status is ExecutionStatus.COMPLETED and final.output["output"] == "read them all"
    runs = collections.Counter(line.split("\t")[0] for line in log.read_text().splitlines())
    for page in done_at_kill:
        assert runs[f"page {page}"] == 1, f"page {page} was fetched before the kill and again after"
    assert requests == 2, "the first model call is replayed, not requested again"

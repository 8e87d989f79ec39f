"""Starting a name that nothing can run fails at once; a deployed name without a worker says it waits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from processes import _env, start_worker, stop, wait_until
from test_cli import agentspan

from agentspan.agents import AgentRuntime
from agentspan.client import HttpClient
from agentspan.errors import NotFoundError
from agentspan.runtime._serving import ServingRegistry
from agentspan.testing import FakeOpenAIServer


def test_starting_an_unknown_name_fails_and_queues_nothing(db_path: Path) -> None:
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        with pytest.raises(NotFoundError, match="no agent named 'no_such_agent' is deployed and no worker serves it"):
            runtime.start("no_such_agent", "hello")
        assert runtime.client.list_executions().items == []
        assert runtime.client.agent_status("no_such_agent").known is False


def test_a_served_name_is_known_to_the_server_and_starts(server: str, tmp_path: Path) -> None:
    with HttpClient(server) as client:
        status = client.agent_status("cli-researcher")
        assert (status.deployed, status.workers) == (False, 0)
        script = FakeOpenAIServer.research_script(1, "search", lambda i: {"query": "q"}, answer="served answer")
        with FakeOpenAIServer(script) as fake:
            env = {**_env(), "OPENAI_BASE_URL": fake.base_url}
            worker = subprocess.Popen(
                [sys.executable, "-m", "agentspan", "worker", "cli_agents:researcher", "--server", server,
                 "--poll-seconds", "1", "--max-executions", "1"],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            )  # fmt: skip
            try:
                wait_until(lambda: client.agent_status("cli-researcher").workers == 1, "the worker's first claim")
                with AgentRuntime(server) as runtime:
                    result = runtime.run("cli-researcher", "find", timeout=60)
                assert result.output == "served answer"
                worker.wait(timeout=60)
                assert worker.stderr is not None
                log = worker.stderr.read().decode()
            finally:
                stop(worker)  # type: ignore[arg-type]
    assert f"claimed execution {result.execution_id} of cli-researcher" in log
    assert f"execution {result.execution_id} completed" in log


def test_agentspan_run_of_an_unknown_name_is_one_line_and_does_not_hang(server: str) -> None:
    done = agentspan("run", "no_such_agent", "hello", "--server", server)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "agentspan: no agent named 'no_such_agent' is deployed and no worker serves it; deploy it"
        " (runtime.deploy(agent)) or start a worker that serves it (agentspan worker module:agent)"
    ]


def test_agentspan_run_of_a_deployed_name_says_it_waits_for_a_worker(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with HttpClient(server) as client:
        client.put_definition("cli-researcher", kind="agent")
    script = FakeOpenAIServer.research_script(1, "search", lambda i: {"query": "q"}, answer="deployed answer")
    with FakeOpenAIServer(script) as fake:
        env = {**_env(), "OPENAI_BASE_URL": fake.base_url}
        run = subprocess.Popen(
            [sys.executable, "-m", "agentspan", "run", "cli-researcher", "find", "--server", server],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert run.stderr is not None
        seen = []
        for line in run.stderr:  # blocks until the run prints it
            seen.append(line)
            if "waiting for a worker" in line:
                break
        assert seen[-1].strip() == (
            "agentspan: waiting for a worker that serves cli-researcher (none connected);"
            " start one: agentspan worker module:agent"
        )
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        worker = start_worker(server=server, target="cli_agents:researcher")
        try:
            out, err = run.communicate(timeout=120)
        finally:
            stop(worker)
    assert run.returncode == 0, err
    assert "deployed answer" in out
    assert "claimed it" in err and "✓ tool search" in err and "completed" in err


def test_a_worker_counts_as_serving_until_a_while_after_its_poll_ends() -> None:
    registry = ServingRegistry()
    registry.saw("w1", ["a", "b"], now=100.0, wait_seconds=10.0)
    assert registry.workers("a", now=139.0) == {"w1"} and registry.workers("b", now=139.0) == {"w1"}
    assert registry.workers("a", now=141.0) == set(), "a worker gone quiet is forgotten"
    for i in range(2000):  # worker ids change with every process; the gone ones do not pile up
        registry.saw(f"w{i}", ["a"], now=200.0 + i, wait_seconds=0.0)
    assert len(registry._until) < 1100

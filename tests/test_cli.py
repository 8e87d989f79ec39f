"""The ``agentspan`` command, run as users run it: in a subprocess, on a real database or server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from processes import TESTS

from agentspan.runtime import ExecutionStatus, Service, SQLiteStore
from agentspan.testing import FakeOpenAIServer


def agentspan(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "PYTHONPATH": str(TESTS), **(env or {})}
    full_env.pop("AGENTSPAN_SERVER_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "agentspan", *args], env=full_env, capture_output=True, text=True, timeout=timeout
    )


def test_start_list_show_signal_and_cancel_on_the_embedded_database(db_path: Path) -> None:
    started = agentspan("start", "approval", "--input", '{"order": "o-1"}', "--db", str(db_path))
    assert started.returncode == 0, started.stderr
    execution_id = started.stdout.strip()
    listed = agentspan("executions", "list", "--db", str(db_path))
    assert execution_id in listed.stdout and "queued" in listed.stdout
    shown = agentspan("executions", "show", execution_id, "--db", str(db_path))
    assert "approval" in shown.stdout and "journal: 0 steps" in shown.stdout
    signalled = agentspan("signal", execution_id, "approve", "--payload", '{"ok": true}', "--db", str(db_path))
    assert signalled.returncode == 0, signalled.stderr
    cancelled = agentspan("executions", "cancel", execution_id, "--db", str(db_path))
    assert cancelled.stdout.strip() == f"{execution_id} cancelled"
    service = Service(SQLiteStore(db_path))
    assert service.get_execution(execution_id).status is ExecutionStatus.CANCELLED
    service.close()


def test_errors_are_one_clear_line(db_path: Path) -> None:
    Service(SQLiteStore(db_path)).close()  # the database exists; the execution does not
    missing = agentspan("executions", "show", "nope", "--db", str(db_path))
    assert missing.returncode == 1
    assert missing.stderr.strip() == "agentspan: no execution with id 'nope'"
    bad = agentspan("start", "x", "--input", "{oops", "--db", str(db_path))
    assert bad.returncode != 0 and "--input is not JSON" in bad.stderr
    target = agentspan("worker", "no_colon", "--db", str(db_path))
    assert target.returncode != 0 and "is not module:attribute" in target.stderr


def test_run_an_agent_from_a_module(tmp_path: Path) -> None:
    script = FakeOpenAIServer.research_script(2, "search", lambda i: {"query": f"q{i}"}, answer="the answer")
    with FakeOpenAIServer(script) as fake:
        done = agentspan(
            "run", "agent_flows:researcher", "find things", "--db", str(tmp_path / "run.db"),
            env={"OPENAI_BASE_URL": fake.base_url, "AGENT_LOG": str(tmp_path / "log"), "AGENT_TOOL_DELAY": "0"},
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "the answer" in done.stdout and "tool calls: 2" in done.stdout


def test_run_an_openai_agents_sdk_agent_from_a_module(tmp_path: Path) -> None:
    script = FakeOpenAIServer.research_script(2, "search", lambda i: {"query": f"q{i}"}, answer="compared")
    with FakeOpenAIServer(script) as fake:
        done = agentspan(
            "run", "test_openai_agents_crash:agent", "compare", "--db", str(tmp_path / "run.db"),
            env={"OPENAI_BASE_URL": fake.base_url, "AGENT_LOG": str(tmp_path / "log"),
                 "OPENAI_AGENTS_DISABLE_TRACING": "1"},
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "compared" in done.stdout and "tool calls: 2" in done.stdout
    not_an_agent = agentspan("run", "processes:TESTS", "x", "--db", str(tmp_path / "run.db"))
    assert not_an_agent.returncode != 0 and "OpenAI Agents SDK Agent" in not_an_agent.stderr


@pytest.mark.slow
def test_the_demo_shows_a_resume_without_repeats() -> None:
    demo = agentspan("demo", timeout=180)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "worker 1 killed with SIGKILL after tool call 18 completed" in demo.stdout
    assert "tool calls 1-18 run again: 0" in demo.stdout
    assert "turns 1-18 requested again: 0" in demo.stdout
    assert "final answer (completed)" in demo.stdout
    assert "agentspan executions show" in demo.stdout
    out = demo.stdout
    assert "took it over: resuming at step " in out, "the second worker's own resume line is shown"
    assert out.index("RESULT: the run finished and nothing") < out.index("what each tool call did"), "result first"
    assert "calls 1-18: ran once each, in worker 1" in out or "calls 1-19: ran once each, in worker 1" in out
    if "ran 2 times" in out:  # the kill landed inside call 19: it is explained
        assert "It was in flight when worker 1 was killed" in out and "the same idempotency key" in out
    else:
        assert re.search(r"calls? (19-)?20: ran once( each)?, in worker 2", out), out
    shown = agentspan("executions", "show", *out.split("agentspan executions show ", 1)[1].split("\n", 1)[0].split())
    assert "#1 worker" in shown.stdout and "its lease ran out" in shown.stdout and "#2 worker" in shown.stdout
    assert "(ran in #1, replayed by #2)" in shown.stdout


def test_the_cli_speaks_json_where_it_reads_json(db_path: Path) -> None:
    started = agentspan("start", "echo", "--input", json.dumps({"text": "ünïcode"}), "--db", str(db_path))
    service = Service(SQLiteStore(db_path))
    assert service.get_execution(started.stdout.strip()).input == {"text": "ünïcode"}
    service.close()

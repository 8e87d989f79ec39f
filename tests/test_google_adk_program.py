"""Programs using the Google ADK adapter, SIGKILLed after tool call 18 of 20 and run again: through
``AgentRuntime.run`` (``adk_runtime_program.py``) and through the drop-in ``Runner`` with ADK's
``DatabaseSessionService`` (``adk_runner_program.py``). The run resumes: no completed model or tool call
repeats (at most the one in flight, with the same idempotency key), and the run ends as an uninterrupted
one. The model is ADK's default Gemini model against the test's ``FakeOpenAIServer``."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.adk")

from processes import TESTS, model_turns, wait_until

from agentspan.agents import Message, ModelResponse, ToolCall
from agentspan.runtime import ExecutionStatus, Service, SQLiteStore, StepStatus
from agentspan.testing import FakeOpenAIServer

pytestmark = pytest.mark.slow

GEMINI_ENV = {"GOOGLE_API_KEY": "test", "GOOGLE_GENAI_USE_ENTERPRISE": "false", "OTEL_SDK_DISABLED": "true"}
QUERIES = [f"q{i}" for i in range(1, 21)]


def _script() -> list[Any]:
    """20 calls of ``search`` sent as Gemini sends them (without ids: ADK draws them), then the answer."""
    script = FakeOpenAIServer.research_script(20, "search", lambda i: {"query": f"q{i + 1}"}, answer="compared")
    found: list[Any] = []
    for turn in script:
        if isinstance(turn, list):
            calls = [ToolCall(id="", name=name, arguments=json.dumps(args)) for name, args in turn]
            turn = ModelResponse(message=Message(role="assistant", tool_calls=calls))
        found.append(turn)
    return found


def _env(fake: FakeOpenAIServer, log: Path, db: Path, **extra: str) -> dict[str, str]:
    env = {**os.environ, **GEMINI_ENV, "PYTHONPATH": os.pathsep.join([os.getcwd(), str(TESTS)])}
    env.update(GOOGLE_GEMINI_BASE_URL=fake.gemini_base_url, AGENT_LOG=str(log), AGENTSPAN_DB=str(db), **extra)
    env.pop("GOOGLE_GENAI_USE_VERTEXAI", None)
    env.pop("AGENTSPAN_SERVER_URL", None)
    return env


def _tools_done(service: Service, name: str) -> int:
    return sum(
        step.kind == "tool" and step.status is StepStatus.COMPLETED
        for execution in service.list_executions(name=name).items
        for step in service.get_journal(execution.id)
    )


def _started(log: Path) -> int:
    return len(log.read_text().splitlines()) if log.exists() else 0


def _kill_after_18_and_run_again(
    program: list[str], name: str, env: dict[str, str], db: Path, log: Path, fake: FakeOpenAIServer
) -> tuple[int, list[dict[str, Any]], subprocess.CompletedProcess[str], list[Any]]:
    """Run ``program``, SIGKILL it inside tool call 19 (18 recorded), run it to its end again.

    Returns the tool calls recorded at the kill, the model requests after it, the second run and the
    executions of ``name``."""
    first = subprocess.Popen(program, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    service = Service(SQLiteStore(db))
    try:
        try:
            wait_until(
                lambda: first.poll() is not None or (_started(log) >= 19 and _tools_done(service, name) >= 18),
                "the program inside tool call 19",
                120,
            )
        finally:
            first.send_signal(signal.SIGKILL)
            _, stderr = first.communicate()
        assert first.returncode == -signal.SIGKILL, f"the program ended before the kill: {stderr.decode()[-3000:]}"
        done_at_kill = _tools_done(service, name)
        requests_at_kill = fake.request_count
        second = subprocess.run(program, env=env, capture_output=True, text=True, timeout=180)
        executions = service.list_executions(name=name).items
    finally:
        service.close()
    assert second.returncode == 0, second.stderr[-3000:]
    return done_at_kill, fake.requests[requests_at_kill:], second, executions


def _assert_resumed_at_19(log: Path, done_at_kill: int, resumed: list[dict[str, Any]], requests: int) -> None:
    """Each completed tool call ran once, at most the one in flight twice (one key), and the model was
    asked after the kill only for turns past the completed ones."""
    assert done_at_kill >= 18
    lines = [line.split("\t") for line in log.read_text().splitlines()]
    runs = collections.Counter(query for query, _, _ in lines)
    keys = {query: {key for q, key, _ in lines if q == query} for query in runs}
    assert set(runs) == set(QUERIES)
    assert all(len(found) == 1 and "-" not in found for found in keys.values()), f"one key per call: {keys}"
    assert all(runs[query] == 1 for query in QUERIES[:done_at_kill]), f"completed calls ran again: {runs}"
    assert sum(runs.values()) <= 20 + 1, f"at most the call in flight at the kill ran twice: {runs}"
    assert len({pid for _, _, pid in lines}) == 2, "two processes ran the tools"
    resumed_turns = model_turns(resumed)
    assert resumed_turns and min(resumed_turns) > done_at_kill, f"turns asked for again: {sorted(resumed_turns)}"
    assert all(n == 1 for n in resumed_turns.values()), f"a turn asked twice after the kill: {resumed_turns}"
    assert requests <= 21 + 1, "every model turn was asked for once, plus at most the one in flight"


def _comparable_events(events: list[dict[str, Any]], execution_id: str) -> Any:
    """An execution's events without what differs between executions: its id tag and timestamps."""
    found = re.match(r"e-(as[0-9a-f]{8})-\d+$", events[0]["invocation_id"])
    tag = found.group(1) if found else execution_id
    stripped = [{key: value for key, value in event.items() if key != "timestamp"} for event in events]
    return json.loads(json.dumps(stripped).replace(tag, "TAG"))


# --- runtime.run -------------------------------------------------------------------------------------------
def test_a_program_running_an_agent_with_runtime_run_killed_after_tool_call_18_resumes_at_19(tmp_path: Path) -> None:
    program = [sys.executable, str(TESTS / "adk_runtime_program.py")]
    log, db, name = tmp_path / "tools.log", tmp_path / "program.db", "adk_runtime_program"
    with FakeOpenAIServer(_script()) as fake:
        done_at_kill, resumed, second, executions = _kill_after_18_and_run_again(
            program, name, _env(fake, log, db), db, log, fake
        )
        requests = fake.request_count
        calm_db = tmp_path / "calm.db"
        calm = subprocess.run(
            program, env=_env(fake, tmp_path / "calm.log", calm_db), capture_output=True, text=True, timeout=180
        )
    assert calm.returncode == 0, calm.stderr[-3000:]
    assert [e.status for e in executions] == [ExecutionStatus.COMPLETED], "one execution, resumed"
    printed, uninterrupted = (json.loads(run.stdout.strip().splitlines()[-1]) for run in (second, calm))
    assert printed["execution_id"] == executions[0].id, "the second run finished the unfinished execution"
    assert printed["output"] == uninterrupted["output"] == "compared"
    assert printed["state"] == uninterrupted["state"] == {"searched": QUERIES}
    _assert_resumed_at_19(log, done_at_kill, resumed, requests)
    service = Service(SQLiteStore(calm_db))
    try:
        [calm_execution] = service.list_executions(name=name).items
    finally:
        service.close()
    assert _comparable_events(executions[0].output["events"], executions[0].id) == _comparable_events(
        calm_execution.output["events"], calm_execution.id
    ), "the session's events equal an uninterrupted run's"


# --- the drop-in Runner with ADK's DatabaseSessionService --------------------------------------------------
def _stored_session(url: str) -> Any:
    from google.adk.sessions.database_session_service import DatabaseSessionService

    async def read() -> Any:
        sessions = DatabaseSessionService(url)
        try:
            return await sessions.get_session(app_name="adk-runner-program", user_id="u1", session_id="s1")
        finally:
            await sessions.close()

    return asyncio.run(read())


def _event_contents(session: Any) -> Any:
    """What each event of ``session`` says (author, content), its execution's id tag in ADK's ids replaced."""
    said = [event.model_dump(mode="json", include={"author", "content"}, exclude_none=True) for event in session.events]
    return json.loads(re.sub(r"-as[0-9a-f]{8}-", "-TAG-", json.dumps(said)))


def test_a_drop_in_runner_program_with_a_database_session_service_killed_after_tool_call_18_resumes_at_19(
    tmp_path: Path,
) -> None:
    """And its session, kept by ADK's ``DatabaseSessionService``, holds each event once: as many as an
    uninterrupted run's, with its state."""
    pytest.importorskip("sqlalchemy")
    program = [sys.executable, str(TESTS / "adk_runner_program.py")]
    log, db, name = tmp_path / "tools.log", tmp_path / "program.db", "adk-runner-program"
    url, calm_url = (
        f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}",
        f"sqlite+aiosqlite:///{tmp_path / 'calm.sessions.db'}",
    )
    with FakeOpenAIServer(_script()) as fake:
        env = _env(fake, log, db, ADK_SESSIONS_URL=url)
        done_at_kill, resumed, second, executions = _kill_after_18_and_run_again(program, name, env, db, log, fake)
        requests = fake.request_count
        calm_env = _env(fake, tmp_path / "calm.log", tmp_path / "calm.db", ADK_SESSIONS_URL=calm_url)
        calm = subprocess.run(program, env=calm_env, capture_output=True, text=True, timeout=180)
    assert calm.returncode == 0, calm.stderr[-3000:]
    assert second.stdout.strip() == calm.stdout.strip() == "compared"
    assert [e.status for e in executions] == [ExecutionStatus.COMPLETED], "one execution, resumed"
    _assert_resumed_at_19(log, done_at_kill, resumed, requests)
    session, uninterrupted = _stored_session(url), _stored_session(calm_url)
    ids = [event.id for event in session.events]
    assert len(ids) == len(set(ids)), f"an event kept twice: {collections.Counter(ids).most_common(3)}"
    assert len(ids) == len(uninterrupted.events) == 1 + 20 * 2 + 1, "the user's message, 20 calls, results, answer"
    assert _event_contents(session) == _event_contents(uninterrupted)
    assert session.state == uninterrupted.state == {"searched": QUERIES}, "each tool's state change once"

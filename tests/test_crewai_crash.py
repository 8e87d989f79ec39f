"""CrewAI crews run durably in real processes killed with SIGKILL, then resumed: no completed model call
or tool call runs again, and the one call in flight at the kill (one per task running in parallel)
runs again with the same idempotency key.

The crews and the program are in ``crewai_program.py``; the model is the test's ``FakeOpenAIServer``
(each agent's conversation scripted by its role or task with ``routes``).
"""

from __future__ import annotations

import collections
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("crewai")

from processes import TESTS, kill_after_and_resume, model_turns, side_effects, wait_until

from agentspan.adapters.crewai import execution_input
from agentspan.client import HttpClient
from agentspan.runtime import ExecutionStatus, Service, SQLiteStore, Step, StepStatus
from agentspan.testing import FakeOpenAIServer

pytestmark = pytest.mark.slow

UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _env(fake: FakeOpenAIServer, log: Path, db: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    env.update(OPENAI_BASE_URL=fake.base_url, AGENT_LOG=str(log), AGENTSPAN_DB=str(db))
    env.update(CREWAI_DISABLE_TELEMETRY="true", CREWAI_TRACING_ENABLED="false", OTEL_SDK_DISABLED="true")
    env.pop("OPENAI_API_KEY", None)
    env.pop("AGENTSPAN_SERVER_URL", None)
    return env


def _program(crew: str) -> list[str]:
    return [sys.executable, str(TESTS / "crewai_program.py"), crew]


@contextmanager
def _service(db: Path) -> Iterator[Service]:
    service = Service(SQLiteStore(db))
    try:
        yield service
    finally:
        service.close()


def _steps(service: Service, name: str) -> list[Step]:
    return [step for e in service.list_executions(name=name).items for step in service.get_journal(e.id)]


def _done(steps: list[Step], kind: str) -> list[Step]:
    return [s for s in steps if s.kind == kind and s.status is StepStatus.COMPLETED]


def _conversation_turns(requests: list[dict[str, Any]]) -> collections.Counter[tuple[str, int]]:
    """How often each conversation (its system prompt's first line) was asked for each turn."""
    return collections.Counter(
        (str(r["messages"][0]["content"]).split("\n")[0], sum(m.get("role") == "assistant" for m in r["messages"]))
        for r in requests
    )


def _kill_and_rerun(
    crew: str, name: str, env: dict[str, str], db: Path, fake: FakeOpenAIServer, ready: Callable[[list[Step]], bool]
) -> tuple[list[Step], int, subprocess.CompletedProcess[str], list[Step], list[Any]]:
    """Run the program, SIGKILL it once ``ready(journal)``, run it again to the end.

    Returns the journal at the kill, the fake's request count at the kill, the second run, the final
    journal and the executions of ``name``."""
    first = subprocess.Popen(_program(crew), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with _service(db) as service:
        try:
            wait_until(lambda: db.exists() and ready(_steps(service, name)), f"the {crew} crew to get far enough", 120)
        finally:
            first.send_signal(signal.SIGKILL)
            first.wait()
        at_kill = _steps(service, name)
        requests_at_kill = fake.request_count
        second = subprocess.run(_program(crew), env=env, capture_output=True, text=True, timeout=150)
        final = _steps(service, name)
        executions = service.list_executions(name=name).items
    assert second.returncode == 0, second.stderr[-3000:]
    return at_kill, requests_at_kill, second, final, executions


def _assert_no_completed_call_ran_again(log: Path, at_kill: list[Step], in_flight: int = 1) -> collections.Counter[str]:
    """Each tool call done at the kill ran once; at most ``in_flight`` ran twice, with one idempotency key."""
    counts, keys = side_effects(log)
    done = collections.Counter(f"{s.name} {next(iter(s.input['arguments'].values()))}" for s in _done(at_kill, "tool"))
    for label in done:
        assert counts[label] == 1, f"tool call {label!r} completed before the kill but ran {counts[label]} times"
    repeated = {label: n for label, n in counts.items() if n > 1}
    assert len(repeated) <= in_flight and all(n == 2 for n in repeated.values()), f"ran again: {repeated}"
    for label in repeated:
        assert len(keys[label]) == 1, f"the in-flight call {label!r} ran again with another idempotency key"
    return counts


def _started(log: Path) -> int:
    """How many tool calls have started (logged their side effect)."""
    return len(log.read_text().splitlines()) if log.exists() else 0


def _assert_in_flight_ran_again_with_its_key(log: Path, done_at_kill: list[Step], label: str) -> None:
    """``label`` was in flight at the kill (started, not recorded): it ran again, with the same key."""
    counts, keys = side_effects(log)
    if any(f"{s.name} {next(iter(s.input['arguments'].values()))}" == label for s in done_at_kill):
        return  # it finished in the moment before the kill (a loaded machine): nothing was in flight
    assert counts[label] == 2 and len(keys[label]) == 1, f"{label}: ran {counts[label]} times, keys {keys[label]}"


# --- a. one agent, 20 tool calls -------------------------------------------------------------------------
def test_a_crew_killed_after_tool_call_18_of_20_resumes_at_19_when_the_program_runs_again(tmp_path: Path) -> None:
    script = FakeOpenAIServer.research_script(20, "search", lambda i: {"query": f"q{i + 1}"}, answer="compared")
    log, db = tmp_path / "tools.log", tmp_path / "program.db"
    with FakeOpenAIServer(script) as fake:
        env = _env(fake, log, db)
        at_kill, requests_at_kill, second, final, executions = _kill_and_rerun(
            "research", "crewai-research", env, db, fake,
            lambda steps: len(_done(steps, "tool")) >= 18 and _started(log) >= 19,  # inside tool call 19
        )  # fmt: skip
        requests = fake.requests
        # The same program without a crash, for comparison.
        calm_env = _env(fake, tmp_path / "calm.log", tmp_path / "calm.db")
        calm = subprocess.run(_program("research"), env=calm_env, capture_output=True, text=True, timeout=150)
    assert calm.returncode == 0, calm.stderr[-3000:]
    assert [e.status for e in executions] == [ExecutionStatus.COMPLETED], "one execution, resumed"
    output = json.loads(second.stdout.strip().splitlines()[-1])
    assert output["raw"] == "compared"
    assert output == json.loads(calm.stdout.strip().splitlines()[-1]), "same output and token usage as without a crash"

    done_tools = len(_done(at_kill, "tool"))
    counts = _assert_no_completed_call_ran_again(log, at_kill)
    assert set(counts) == {f"search q{i}" for i in range(1, 21)}
    _assert_in_flight_ran_again_with_its_key(log, _done(at_kill, "tool"), "search q19")
    assert len({line.split("\t")[2] for line in log.read_text().splitlines()}) == 2, "two processes ran the tools"
    assert all(n == 1 for n in model_turns(requests[:requests_at_kill]).values()), "no turn asked twice before the kill"
    resumed_turns = model_turns(requests[requests_at_kill:])
    assert resumed_turns and min(resumed_turns) > done_tools, f"turns asked for again: {sorted(resumed_turns)}"
    assert len(requests) <= 21 + 1, "every model turn was asked for once, plus at most the one in flight"
    assert not [s.key for s in final if s.status is not StepStatus.COMPLETED]


# --- b. the same crew served by `agentspan worker` -------------------------------------------------------
def _worker(server: str, fake: FakeOpenAIServer, log: Path) -> subprocess.Popen[bytes]:
    env = _env(fake, log, log.with_suffix(".unused.db"))
    return subprocess.Popen(
        [sys.executable, "-m", "agentspan", "worker", "crewai_program:research", "--server", server,
         "--lease-seconds", "2", "--poll-seconds", "1", "--max-executions", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def test_a_crew_served_by_agentspan_worker_killed_after_tool_call_18_is_resumed_at_19_by_another_worker(
    server: str, tmp_path: Path
) -> None:
    script = FakeOpenAIServer.research_script(20, "search", lambda i: {"query": f"q{i + 1}"}, answer="compared")
    log = tmp_path / "tools.log"
    with FakeOpenAIServer(script) as fake, HttpClient(server) as client:
        execution = client.create_execution("crewai-research", execution_input({"topic": "AI agents"}))

        def tools_done() -> set[str]:
            if _started(log) < 19:  # kill inside tool call 19
                return set()
            return {s.key for s in _done(client.get_journal(execution.id), "tool")}

        run = kill_after_and_resume(client, execution.id, fake, lambda: _worker(server, fake, log), tools_done)
        journal = client.get_journal(execution.id)
    assert run.final.status is ExecutionStatus.COMPLETED, run.final.error
    assert run.final.output["output"] == "compared"
    done_at_kill = [s for s in journal if s.key in run.done_at_kill]
    counts = _assert_no_completed_call_ran_again(log, done_at_kill)
    assert set(counts) == {f"search q{i}" for i in range(1, 21)}
    _assert_in_flight_ran_again_with_its_key(log, done_at_kill, "search q19")
    assert len({line.split("\t")[2] for line in log.read_text().splitlines()}) == 2, "two workers ran the tools"
    assert all(n == 1 for n in model_turns(run.requests_before).values())
    resumed_turns = model_turns(run.requests_after)
    assert resumed_turns and min(resumed_turns) > len(run.done_at_kill), f"asked again: {sorted(resumed_turns)}"
    assert len(run.requests_before) + len(run.requests_after) <= 21 + 1


def _repeated_requests(requests: list[dict[str, Any]]) -> dict[tuple[str, int], int]:
    return {turn: n for turn, n in _conversation_turns(requests).items() if n > 1}


# --- c. hierarchical: killed inside a delegation ---------------------------------------------------------
def _delegate(task: str, coworker: str) -> list[tuple[str, Mapping[str, Any]]]:
    return [("delegate_work_to_coworker", {"task": task, "context": "for the report", "coworker": coworker})]


HIERARCHY = {
    "You are Crew Manager": [
        _delegate("Research AI agents", "Researcher"),
        _delegate("Write it up", "Writer"),
        "report",
    ],
    "You are Researcher": [*([("search", {"query": f"r{i}"})] for i in range(1, 5)), "researched"],
    "You are Writer": [[("write", {"text": "w1"})], "written"],
}


def test_a_hierarchical_crew_killed_inside_a_delegation_resumes_without_repeating_the_coworkers_calls(
    tmp_path: Path,
) -> None:
    log, db = tmp_path / "tools.log", tmp_path / "program.db"

    def coworker_searched_twice(steps: list[Step]) -> bool:
        return sum(s.name == "search" for s in _done(steps, "tool")) >= 2

    with FakeOpenAIServer(routes=HIERARCHY) as fake:
        at_kill, requests_at_kill, second, final, executions = _kill_and_rerun(
            "hierarchical", "crewai-hierarchical", _env(fake, log, db), db, fake, coworker_searched_twice
        )
        requests = fake.requests
    assert [e.status for e in executions] == [ExecutionStatus.COMPLETED], "one execution, resumed"
    assert json.loads(second.stdout.strip().splitlines()[-1])["raw"] == "report"
    delegation = next(s for s in at_kill if s.name == "Delegate work to coworker")
    assert delegation.status is not StepStatus.COMPLETED, "the kill came inside the delegation"

    counts = _assert_no_completed_call_ran_again(log, at_kill)
    assert set(counts) == {"search r1", "search r2", "search r3", "search r4", "write w1"}
    repeated_models = _repeated_requests(requests)
    repeated_tools = sum(n - 1 for n in counts.values())
    assert repeated_tools + sum(n - 1 for n in repeated_models.values()) <= 1, (
        f"more than the one call in flight ran again: tools {counts}, model turns {repeated_models}"
    )
    assert not _repeated_requests(requests[:requests_at_kill])
    searches = [s for s in final if s.name == "search"]
    assert len(searches) == 4 and all(s.key.startswith(delegation.key + "/") for s in searches), (
        "the coworker's calls are steps nested in the delegating tool call"
    )
    resumed = _conversation_turns(requests[requests_at_kill:])
    assert not any(conversation.startswith("You are Crew Manager") and turn == 0 for conversation, turn in resumed), (
        "the manager's first turn (the delegation) was replayed, not asked for again"
    )


# --- d. two async_execution tasks in parallel ------------------------------------------------------------
def _searches(prefix: str) -> list[list[tuple[str, Mapping[str, Any]]]]:
    return [[("search", {"query": f"{prefix}{i}"})] for i in range(1, 7)]


PARALLEL = {
    "Current Task: Compare the notes.": ["compared"],
    "Current Task: Research alpha.": [*_searches("a"), "alpha notes"],
    "Current Task: Research beta.": [*_searches("b"), "beta notes"],
}


def test_two_async_tasks_killed_while_they_run_resume_without_repeating_and_with_the_same_keys(tmp_path: Path) -> None:
    log, db = tmp_path / "tools.log", tmp_path / "program.db"

    def both_searched_twice(steps: list[Step]) -> bool:
        done = [s.input["arguments"]["query"] for s in _done(steps, "tool")]
        return sum(q.startswith("a") for q in done) >= 2 and sum(q.startswith("b") for q in done) >= 2

    with FakeOpenAIServer(routes=PARALLEL) as fake:
        at_kill, requests_at_kill, second, final, executions = _kill_and_rerun(
            "parallel", "crewai-parallel", _env(fake, log, db), db, fake, both_searched_twice
        )
        requests = fake.requests
        calm_db = tmp_path / "calm.db"
        calm = subprocess.run(
            _program("parallel"), env=_env(fake, tmp_path / "calm.log", calm_db), capture_output=True, text=True
        )
    assert calm.returncode == 0, calm.stderr[-3000:]
    assert [e.status for e in executions] == [ExecutionStatus.COMPLETED], "one execution, resumed"
    output = json.loads(second.stdout.strip().splitlines()[-1])
    assert output["tasks"] == ["alpha notes", "beta notes", "compared"]
    running = {s.name for s in at_kill if s.kind == "task" and s.status is not StepStatus.COMPLETED}
    assert running == {"Alpha researcher", "Beta researcher"}, "the kill came while both async tasks ran"

    counts = _assert_no_completed_call_ran_again(log, at_kill, in_flight=2)
    assert set(counts) == {f"search {p}{i}" for p in "ab" for i in range(1, 7)}
    repeated = _repeated_requests(requests)
    for prefix, role in (("a", "Alpha researcher"), ("b", "Beta researcher")):
        again = sum(n - 1 for label, n in counts.items() if label.startswith(f"search {prefix}"))
        again += sum(n - 1 for (conversation, _), n in repeated.items() if role in conversation)
        assert again <= 1, f"{role}: more than its one call in flight ran again: tools {counts}, turns {repeated}"
    assert not [turn for turn in repeated if "Analyst" in turn[0]]

    keys = [s.key for s in final]
    assert not [key for key in keys if UUID.search(key)], "no key carries CrewAI's per-run ids"
    with _service(calm_db) as service:
        calm_keys = [s.key for s in _steps(service, "crewai-parallel")]
    assert sorted(keys) == sorted(calm_keys), "the resumed run's steps have the keys of a run without a crash"

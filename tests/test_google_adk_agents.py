"""ADK's workflow agents killed mid-run in real ``agentspan worker`` processes (SIGKILL): a
``ParallelAgent`` while two of its three branches run, a ``LoopAgent`` in its third iteration. The
resumed run repeats no completed model or tool call (at most the calls in flight, with the same
idempotency keys) and ends with the session state and events of an uninterrupted run. The model is
ADK's default Gemini model against the test's ``FakeOpenAIServer``, one script per branch."""

from __future__ import annotations

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

import adk_agents_program as program
from processes import TESTS, stop, wait_until

from agentspan.adapters.google_adk import execution_input
from agentspan.agents import Message, ModelResponse, ToolCall
from agentspan.client import HttpClient
from agentspan.runtime import ExecutionStatus, StepStatus
from agentspan.testing import FakeOpenAIServer

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning"),
]

SURVEYS = {"north": 6, "south": 6, "east": 1}
"""How many tool calls each branch makes: north and south are still running when east has finished."""


def _calls(name: str, args: dict[str, Any]) -> ModelResponse:
    """A function call as Gemini sends it: without an id (ADK draws one)."""
    return ModelResponse(
        message=Message(role="assistant", tool_calls=[ToolCall(id="", name=name, arguments=json.dumps(args))])
    )


def _branch_script(name: str) -> list[Any]:
    return [*(_calls("survey", {"spot": f"{name}{i}"}) for i in range(1, SURVEYS[name] + 1)), f"{name} is clear."]


def _loop_script() -> list[Any]:
    script: list[Any] = []
    for i in range(1, program.ROUNDS + 1):
        script += [_calls("tally", {"number": i}), f"round {i} done"]
    return script


def _worker(url: str, fake: FakeOpenAIServer, log: Path, target: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    env.update(AGENT_LOG=str(log), GOOGLE_GEMINI_BASE_URL=fake.gemini_base_url, GOOGLE_API_KEY="test")
    env.update(GOOGLE_GENAI_USE_ENTERPRISE="false", OTEL_SDK_DISABLED="true")
    env.pop("GOOGLE_GENAI_USE_VERTEXAI", None)
    env.pop("AGENTSPAN_SERVER_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "agentspan", "worker", f"adk_agents_program:{target}", "--server", url,
         "--lease-seconds", "2", "--poll-seconds", "1", "--max-executions", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _done(client: HttpClient, execution_id: str, kind: str) -> list[Any]:
    return [s for s in client.get_journal(execution_id) if s.kind == kind and s.status is StepStatus.COMPLETED]


def _label(arguments: dict[str, Any]) -> str:
    """The label a tool call logs (see :mod:`adk_agents_program`)."""
    return str(arguments["spot"]) if "spot" in arguments else f"round{arguments['number']}"


def _tools_done(client: HttpClient, execution_id: str) -> set[str]:
    return {_label(step.input["arguments"]) for step in _done(client, execution_id, "tool")}


def _lines(log: Path) -> list[list[str]]:
    return [line.split("\t") for line in log.read_text().splitlines()] if log.exists() else []


def _comparable(output: dict[str, Any]) -> Any:
    """What must equal between a resumed run and an uninterrupted one: the state, and each branch's
    events in order (branches interleave their events in the session in the order they happen to
    finish them), without the execution's id tag and the timestamps."""
    found = re.match(r"e-(as[0-9a-f]{8})-\d+$", output["events"][0]["invocation_id"])
    assert found, output["events"][0]["invocation_id"]
    events = [{k: v for k, v in event.items() if k != "timestamp"} for event in output["events"]]
    by_branch: dict[str, list[Any]] = collections.defaultdict(list)
    for event in events:
        by_branch[event.get("branch", "")].append(event)
    calls = sorted(output["tool_calls"], key=lambda call: json.dumps(call, sort_keys=True))
    return json.loads(json.dumps({"state": output["state"], "events": by_branch, "tool_calls": calls}).replace(
        found.group(1), "TAG"))  # fmt: skip


def _run(
    server: str, tmp_path: Path, routes: dict[str, list[Any]], target: str, killed_when: Any
) -> tuple[Any, Any, dict[str, Any]]:
    """Run ``target``, SIGKILL its worker once ``killed_when(client, execution_id, log)`` holds, resume it in
    a fresh worker, then run it uninterrupted; the resumed and uninterrupted executions, and what
    the journal and the fake model held at the kill."""
    log = tmp_path / "tools.log"
    with FakeOpenAIServer(["unused"], routes=routes) as fake, HttpClient(server) as client:
        execution = client.create_execution(target, execution_input(program.PROMPT))
        first = _worker(server, fake, log, target)
        wait_until(lambda: killed_when(client, execution.id, log), "the moment to kill the worker")
        first.send_signal(signal.SIGKILL)
        first.wait()
        fake.wait_idle()  # a request the worker sent just before it died is counted before the kill, not after
        at_kill = {
            "tools": _tools_done(client, execution.id),
            "models": len(_done(client, execution.id, "llm")),
            "requests": fake.request_count,
            "lines": len(_lines(log)),
        }
        second = _worker(server, fake, log, target)
        wait_until(lambda: client.get_execution(execution.id).status.is_terminal, "the resumed run")
        stop(second)
        stop(first)
        at_kill["requests_after"] = fake.request_count - at_kill["requests"]
        calm = client.create_execution(target, execution_input(program.PROMPT), idempotency_key="calm")
        third = _worker(server, fake, tmp_path / "calm.log", target)
        wait_until(lambda: client.get_execution(calm.id).status.is_terminal, "the uninterrupted run")
        stop(third)
        return client.get_execution(execution.id), client.get_execution(calm.id), at_kill


def _check_calls(log: Path, at_kill: dict[str, Any], model_calls: int, running: int) -> collections.Counter[str]:
    """No completed call ran again: a tool call at most once more if it was in flight (with the same
    idempotency key, at most one per running branch), and exactly the model calls not on record at the
    kill asked after it."""
    lines = _lines(log)
    runs = collections.Counter(label for label, _, _ in lines)
    for label in at_kill["tools"]:
        assert runs[label] == 1, f"tool call {label} completed before the kill but ran again"
    again = [label for label, count in runs.items() if count > 1]
    assert len(again) <= running and all(runs[label] == 2 for label in again), f"ran again: {again}"
    for label in again:
        assert len({key for found, key, _ in lines if found == label}) == 1, f"{label} ran again with another key"
    assert len({pid for _, _, pid in lines}) == 2, "two worker processes ran the tools"
    assert at_kill["requests"] - at_kill["models"] <= running, "at most one model call in flight per running branch"
    assert at_kill["requests_after"] == model_calls - at_kill["models"], "a model call on record was asked again"
    return runs


def test_a_parallel_agent_killed_while_two_of_its_three_branches_run_resumes_them_repeating_no_completed_call(
    server: str, tmp_path: Path
) -> None:
    routes = {text: _branch_script(name) for name, text in program.BRANCHES.items()}

    def two_running(client: HttpClient, execution_id: str, log: Path) -> bool:
        done = _tools_done(client, execution_id)
        return "east1" in done and all(len({d for d in done if d.startswith(b)}) >= 2 for b in ("north", "south"))

    final, uninterrupted, at_kill = _run(server, tmp_path, routes, "fanout", two_running)
    assert final.status is ExecutionStatus.COMPLETED, final.error
    assert not {f"north{n}" for n in range(3, 7)} <= at_kill["tools"], "north was still running at the kill"
    assert not {f"south{n}" for n in range(3, 7)} <= at_kill["tools"], "south was still running at the kill"
    runs = _check_calls(tmp_path / "tools.log", at_kill, sum(SURVEYS.values()) + len(SURVEYS), running=2)
    assert set(runs) == {f"{name}{i}" for name, n in SURVEYS.items() for i in range(1, n + 1)}
    expected = {f"{name}_surveyed": [f"{name}{i}" for i in range(1, n + 1)] for name, n in SURVEYS.items()}
    assert final.output["state"] == expected
    assert final.output["output"] in {f"{name} is clear." for name in SURVEYS}
    assert uninterrupted.status is ExecutionStatus.COMPLETED
    assert {event.get("branch") for event in final.output["events"]} >= {f"fanout.{name}" for name in SURVEYS}
    assert _comparable(final.output) == _comparable(uninterrupted.output)


def test_a_loop_agent_killed_in_its_third_iteration_resumes_there_repeating_no_completed_call(
    server: str, tmp_path: Path
) -> None:
    routes = {program.LOOP_INSTRUCTION: _loop_script()}

    def third_round(client: HttpClient, execution_id: str, log: Path) -> bool:
        return any(label == "round3" for label, _, _ in _lines(log))

    final, uninterrupted, at_kill = _run(server, tmp_path, routes, "rounds", third_round)
    assert final.status is ExecutionStatus.COMPLETED, final.error
    assert {"round1", "round2"} <= at_kill["tools"] and "round4" not in at_kill["tools"]
    runs = _check_calls(tmp_path / "tools.log", at_kill, 2 * program.ROUNDS, running=1)
    assert set(runs) == {f"round{i}" for i in range(1, program.ROUNDS + 1)}
    assert final.output["state"] == {"tallied": list(range(1, program.ROUNDS + 1))}
    assert final.output["output"] == f"round {program.ROUNDS} done"
    assert uninterrupted.status is ExecutionStatus.COMPLETED
    assert _comparable(final.output) == _comparable(uninterrupted.output)

"""CrewAI flows run with ``durable(flow).kickoff``: each method execution is a step, replayed with the state
it left; routers replay their route; ``@human_feedback`` is a durable wait. The flows are in
``crewai_flow_program.py``; their model is ``crewai.LLM`` against a ``FakeOpenAIServer``."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from processes import TESTS, wait_until

from agentspan.durable import Runtime
from agentspan.errors import ConfigurationError, InvalidInputError
from agentspan.runtime import Execution, ExecutionStatus, Service, SQLiteStore, StepStatus
from agentspan.testing import FakeOpenAIServer

pytest.importorskip("crewai")

import crewai_flow_program as programs

from agentspan.adapters.crewai import durable
from agentspan.adapters.crewai._flow import flow_function


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime over a real SQLite file."""
    found = Runtime(db=tmp_path / "flows.db")
    yield found
    found.close()


@pytest.fixture
def side_effects(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], list[str]]:
    """The labels the flows' side effects logged (``AGENT_LOG``), in order."""
    log = tmp_path / "effects.log"
    monkeypatch.setenv("AGENT_LOG", str(log))
    return lambda: [line.split("\t")[0] for line in log.read_text().splitlines()] if log.exists() else []


def _only_execution(runtime: Runtime, name: str) -> Execution:
    executions = runtime.client.list_executions(name=name).items
    assert len(executions) == 1
    return executions[0]


def _waiting(runtime: Runtime, name: str) -> Execution:
    """The flow's one execution, once it waits."""

    def found() -> Execution | None:
        executions = runtime.client.list_executions(name=name).items
        if executions and executions[0].status is ExecutionStatus.WAITING:
            return executions[0]
        if executions and executions[0].status.is_terminal:
            raise AssertionError(f"the run ended instead of waiting: {executions[0].error}")
        return None

    wait_until(found, "the run to wait")
    execution = found()
    assert execution is not None
    return execution


def test_the_documented_router_flow_returns_what_the_plain_flow_returns_with_one_step_per_method(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAIServer(["yes", "AI agents run tools."] * 2, by_turn=False) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        plain_flow = programs.RouterFlow()
        plain = plain_flow.kickoff(inputs={"topic": "AI"})
        flow = programs.RouterFlow()
        result = durable(flow, runtime=runtime).kickoff(inputs={"topic": "AI"})

    assert result == plain == {"result": "AI agents run tools.", "flag": True}
    assert flow.state.model_dump(exclude={"id"}) == plain_flow.state.model_dump(exclude={"id"})
    execution = _only_execution(runtime, "RouterFlow")
    journal = runtime.client.get_journal(execution.id)
    methods = {s.key: s.name for s in journal if s.kind == "flow_method"}
    assert sorted(methods.values()) == ["logger", "second_method", "start_method", "third_method"]
    assert all(s.parent is None for s in journal if s.kind == "flow_method")
    models = [s for s in journal if s.kind == "llm"]
    assert sorted(methods[s.parent] for s in models if s.parent in methods) == ["start_method", "third_method"]
    assert len(models) == 2
    router = next(s for s in journal if s.name == "second_method")
    assert router.output["value"] == "success"
    assert execution.output["flow_output"] == {"value": plain}
    assert execution.output["structured"] == plain
    assert json.loads(execution.output["output"]) == plain
    assert execution.output["state"]["model"] == "crewai_flow_program:ExampleState"
    assert execution.output["state"]["value"]["draft"] == "AI agents run tools."
    assert flow.state.id == str(uuid.uuid5(uuid.NAMESPACE_URL, f"agentspan:{execution.id}")), "one id per execution"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # CrewAI's own, building a crew
def test_a_crew_kicked_off_inside_a_method_has_its_steps_nested_under_the_method(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAIServer(["Durable agents resume."] * 2, by_turn=False) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        plain = programs.CrewFlow().kickoff(inputs={"topic": "durability"})
        result = durable(programs.CrewFlow(), runtime=runtime).kickoff(inputs={"topic": "durability"})

    assert result == plain == "Durable agents resume."
    journal = runtime.client.get_journal(_only_execution(runtime, "CrewFlow").id)
    by_key = {s.key: s for s in journal}
    write = next(s for s in journal if s.kind == "flow_method" and s.name == "write")
    task = next(s for s in journal if s.kind == "task")
    model = next(s for s in journal if s.kind == "llm")
    assert task.parent == write.key and model.parent == task.key
    assert by_key[write.key].output["value"] == "Durable agents resume."


def test_kickoff_async_and_akickoff_return_what_kickoff_returns(
    runtime: Runtime, monkeypatch: pytest.MonkeyPatch
) -> None:
    with FakeOpenAIServer(["no"] * 4, by_turn=False) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        flow = durable(programs.RouterFlow(), runtime=runtime)
        first = asyncio.run(flow.kickoff_async(inputs={"topic": "one"}))
        second = asyncio.run(flow.akickoff(inputs={"topic": "two"}))
    assert first == second == {"result": "no draft", "flag": False}
    assert flow.state.topic == "two"
    assert len(runtime.client.list_executions(name="RouterFlow").items) == 2


def test_a_flow_killed_inside_its_second_method_resumes_there_when_the_program_runs_again(tmp_path: Path) -> None:
    """The first method does not run again, no completed model or tool call repeats, the result is right."""
    log, db = tmp_path / "effects.log", tmp_path / "program.db"
    with FakeOpenAIServer(["noted"] * 8, by_turn=False) as fake:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
        env.update(OPENAI_BASE_URL=fake.base_url, AGENT_LOG=str(log), AGENTSPAN_DB=str(db))
        env.pop("OPENAI_API_KEY", None)
        env.pop("AGENTSPAN_SERVER_URL", None)
        program = [sys.executable, str(TESTS / "crewai_flow_program.py")]
        first = subprocess.Popen(program, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        service = Service(SQLiteStore(db))
        try:

            def done(kind: str) -> list[Any]:
                return [
                    s
                    for e in service.list_executions(name="ResearchFlow").items
                    for s in service.get_journal(e.id)
                    if s.kind == kind and s.status is StepStatus.COMPLETED
                ]

            wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= 3, "plan and two searches")
            wait_until(lambda: len(done("tool")) >= 2, "two recorded tool calls")
            first.send_signal(signal.SIGKILL)
            first.wait()
            tools_at_kill = {s.input["arguments"]["query"] for s in done("tool")}
            models_at_kill = len(done("llm"))
            methods_at_kill = [s.name for s in done("flow_method")]
            requests_at_kill = fake.request_count
            second = subprocess.run(program, env=env, capture_output=True, text=True, timeout=120)
            executions = service.list_executions(name="ResearchFlow").items
            journal = service.get_journal(executions[0].id)
        finally:
            service.close()
        resumed_requests = fake.request_count - requests_at_kill

    assert second.returncode == 0, second.stderr
    assert methods_at_kill == ["plan"], "killed inside the second method"
    assert 2 <= len(tools_at_kill) < 5
    assert [e.status for e in executions] == [ExecutionStatus.COMPLETED], "one execution, resumed"
    printed = json.loads(second.stdout.strip().splitlines()[-1])
    queries = [f"q{i}" for i in range(1, 6)]
    notes = [f"noted: results for {q}" for q in queries]
    assert printed["result"] == {"queries": queries, "notes": [*notes, "noted"]}
    assert printed["state"] == {"queries": queries, "notes": notes}
    effects = collections.Counter(line.split("\t")[0] for line in log.read_text().splitlines())
    assert effects["plan"] == 1, "the first method did not run again"
    assert effects["report"] == 1
    assert set(effects) == {"plan", "report", *queries}
    for query in tools_at_kill:
        assert effects[query] == 1, f"tool call {query} completed before the kill but ran again"
    assert sum(effects[q] for q in queries) <= 5 + 1, "at most the one call in flight at the kill ran twice"
    assert resumed_requests <= 6 - models_at_kill + 1, "completed model calls were not asked for again"
    assert [s.name for s in journal if s.kind == "flow_method"] == ["plan", "research", "report"]


def test_structured_state_a_replayed_method_left_is_restored(
    runtime: Runtime, side_effects: Callable[[], list[str]]
) -> None:
    """The run waits inside its second method; the resumed run replays the first method without running
    it and the second sees the state the first one left."""
    flow = programs.CounterFlow()
    with ThreadPoolExecutor(1) as pool:
        future: Future[Any] = pool.submit(durable(flow, runtime=runtime).kickoff, {"start": 40})
        execution = _waiting(runtime, "CounterFlow")
        assert execution.wait is not None and execution.wait.signal == "go"
        runtime.client.send_signal(execution.id, "go", {"by": 1})
        result = future.result(timeout=60)

    assert result == programs.Tally(count=42, seen=["count", "go"])
    assert flow.state.count == 42
    assert flow.state.tally == programs.Tally(count=41, seen=["count"])
    assert side_effects() == ["count", "added"], "the first method ran once, before the wait"


def test_a_replayed_router_takes_the_route_it_took_before(
    runtime: Runtime, side_effects: Callable[[], list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOW_ROUTE", "left")
    flow = programs.ChoiceFlow()
    with ThreadPoolExecutor(1) as pool:
        future: Future[Any] = pool.submit(durable(flow, runtime=runtime).kickoff)
        execution = _waiting(runtime, "ChoiceFlow")
        monkeypatch.setenv("FLOW_ROUTE", "right")  # the router would now choose the other route
        runtime.client.send_signal(execution.id, "go", True)
        result = future.result(timeout=60)

    assert result == "went left"
    assert side_effects() == ["choose", "left"], "the router ran once and the run went left"
    assert flow.state["visits"] == 1


def test_a_cycle_and_listeners_side_by_side_replay_each_execution_with_its_own_record(
    runtime: Runtime, side_effects: Callable[[], list[str]]
) -> None:
    """A method run three times in a cycle has three steps; two listeners running side by side each put
    back the state fields they set; nothing that finished before the wait runs again."""
    flow = programs.LoopFlow()
    with ThreadPoolExecutor(1) as pool:
        future: Future[Any] = pool.submit(durable(flow, runtime=runtime).kickoff)
        execution = _waiting(runtime, "LoopFlow")
        before = side_effects()
        runtime.client.send_signal(execution.id, "go", True)
        result = future.result(timeout=60)

    assert sorted(before) == ["left", "right", "work 0", "work 1", "work 2"]
    assert side_effects() == [*before, "finish"], "only the waiting method ran after the wait"
    assert result["left"] == "left after 3" and result["right"] == "right after 3"
    assert result["outputs"][:6] == [10, "again", 20, "again", 30, "done"]
    assert sorted(result["outputs"][6:]) == ["L", "R"]
    assert flow.state.rounds == 3
    journal = runtime.client.get_journal(_only_execution(runtime, "LoopFlow").id)
    works = sorted(s.key for s in journal if s.name == "work")
    assert len(works) == 3 and [key.rsplit(":", 1)[1] for key in works] == ["0", "1", "2"]
    assert [s.output["value"] for s in sorted((s for s in journal if s.name == "work"), key=lambda s: s.key)] == [
        10,
        20,
        30,
    ]


def test_inputs_that_are_not_an_object_are_refused_with_a_clear_error(runtime: Runtime) -> None:
    flow = programs.ChoiceFlow()
    with pytest.raises(InvalidInputError, match=r"a flow's inputs are a JSON object.*not list"):
        durable(flow, runtime=runtime).kickoff(["topic"])  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError, match=r"a flow's inputs are a JSON object.*not str"):
        flow_function(flow)("topic")
    with pytest.raises(ConfigurationError, match=r"not the class ChoiceFlow: pass an instance"):
        durable(programs.ChoiceFlow, runtime=runtime)
    assert runtime.client.list_executions(name="ChoiceFlow").items == []


def test_human_feedback_is_a_durable_wait_answered_by_a_signal(
    runtime: Runtime, side_effects: Callable[[], list[str]]
) -> None:
    flow = programs.ReviewFlow()
    with ThreadPoolExecutor(1) as pool:
        future: Future[Any] = pool.submit(durable(flow, runtime=runtime).kickoff, {"topic": "AI"})
        execution = _waiting(runtime, "ReviewFlow")
        assert execution.wait is not None and execution.wait.signal is not None
        signal_name = execution.wait.signal
        assert signal_name.startswith("human:")
        wait = next(s for s in runtime.client.get_journal(execution.id) if s.kind == "human")
        assert wait.input["method"] == "draft"
        assert wait.input["output"] == "a draft about AI"
        assert wait.input["message"] == "Please review this draft:"
        runtime.client.send_signal(execution.id, signal_name, "shorter, please")
        result = future.result(timeout=60)

    assert result == {"output": "a draft about AI", "feedback": "shorter, please"}
    assert side_effects() == ["draft", "publish"], "the reviewed method ran once"
    assert flow.state["topic"] == "AI"


def test_an_empty_answer_to_human_feedback_accepts_the_first_outcome(
    runtime: Runtime, side_effects: Callable[[], list[str]]
) -> None:
    flow = programs.ApprovalFlow()
    with ThreadPoolExecutor(1) as pool:
        future: Future[Any] = pool.submit(durable(flow, runtime=runtime).kickoff)
        execution = _waiting(runtime, "ApprovalFlow")
        assert execution.wait is not None and execution.wait.signal is not None
        wait = next(s for s in runtime.client.get_journal(execution.id) if s.kind == "human")
        assert wait.input["emit"] == ["approved", "rejected"]
        runtime.client.send_signal(execution.id, execution.wait.signal, "")
        result = future.result(timeout=60)

    assert result == "carried out plan A"
    assert side_effects() == ["propose", "carry out"]

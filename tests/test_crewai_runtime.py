"""CrewAI crews through ``AgentRuntime`` (``run``, ``start``, ``deploy``, ``serve``), the CLI, and human
input: a task with ``human_input=True`` waits on the server, across processes."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from crewai import LLM, Agent, Crew, Task
from crewai.crews.crew_output import CrewOutput
from crewai.tools import tool
from processes import TESTS, log_call, model_turns, stop, wait_until
from pydantic import BaseModel

from agentspan.agents import AgentRuntime
from agentspan.client import HttpClient
from agentspan.errors import ConfigurationError, ConflictError, InvalidInputError
from agentspan.runtime import ExecutionStatus, StepStatus
from agentspan.testing import FakeOpenAIServer


@tool("search")
def search(query: str) -> str:
    """Search the web for a query."""
    if os.environ.get("AGENT_LOG"):
        log_call(query, pause=0)
    return f"results for {query}"


def _llm(base_url: str | None = None) -> LLM:
    url = base_url or os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    return LLM(model="gpt-4o-mini", base_url=url, api_key="test", max_retries=0)


class Summary(BaseModel):
    title: str
    points: list[str]


def _writers(base_url: str | None = None, *, human: bool = True, pydantic: bool = False) -> Crew:
    writer = Agent(
        role="writer", goal="Write clearly", backstory="A careful writer.", llm=_llm(base_url), tools=[search]
    )
    task = Task(
        description="Write about {topic}",
        expected_output="a paragraph",
        agent=writer,
        human_input=human,
        output_pydantic=Summary if pydantic else None,
    )
    return Crew(agents=[writer], tasks=[task], name="writers")


# What `agentspan worker test_crewai_runtime:writers` serves (the model's URL comes from the environment).
writers = _writers()
plain = _writers(human=False)
plain.name = "plain-writers"


def test_runtime_run_returns_the_crew_output_and_its_parts(tmp_path: Path) -> None:
    answer = json.dumps({"title": "AI", "points": ["fast", "cheap"]})
    with FakeOpenAIServer([[("search", {"query": "AI"})], answer]) as fake:
        crew = _writers(fake.base_url, human=False, pydantic=True)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(crew, inputs={"topic": "AI"}, timeout=60)
            again = runtime.run(crew, inputs={"topic": "AI"}, timeout=60)  # a new run: fresh calls
            journal = runtime.client.get_journal(result.execution_id)
        assert fake.request_count == 4
    assert result.is_success, result.error
    assert isinstance(result.crew_output, CrewOutput)
    assert result.output == result.crew_output.raw
    assert result.structured == {"title": "AI", "points": ["fast", "cheap"]}
    assert isinstance(result.crew_output.pydantic, Summary)
    assert result.token_usage.total_tokens > 0
    assert again.output == result.output and again.execution_id != result.execution_id
    assert [(s.kind, s.name) for s in journal] == [
        ("task", "writer"),
        ("llm", "gpt-4o-mini"),
        ("tool", "search"),
        ("llm", "gpt-4o-mini"),
    ]
    first, second = (s.input for s in journal if s.kind == "llm")
    assert "after" not in first and second["after"] == len(first["messages"]), "the second records only what it adds"
    assert [m["role"] for m in second["messages"]] == ["assistant", "tool"]


def test_bad_targets_and_inputs_get_clear_errors(tmp_path: Path) -> None:
    crew = _writers("http://127.0.0.1:9/v1", human=False)
    with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        with pytest.raises(ConfigurationError, match="inputs"):
            runtime.run(crew, "write about AI")
        with pytest.raises(InvalidInputError, match="JSON object"):
            runtime.run(crew, inputs=["AI"])  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="not object"):
            runtime.start(object(), "hi")
        with pytest.raises(ConfigurationError, match="not int"):
            runtime.serve(crew, 3, handle_signals=False)
        with pytest.raises(ConfigurationError, match="not a prompt too"):
            runtime.start("writers", "hi", inputs={"topic": "AI"})
        definition = runtime.deploy(crew)
    assert definition.spec == {
        "framework": "crewai",
        "kind": "crew",
        "process": "sequential",
        "agents": ["writer"],
        "tasks": ["Write about {topic}"],
    }


def test_human_input_rounds_wait_on_the_server_and_replay_without_asking_again(tmp_path: Path) -> None:
    script = [[("search", {"query": "AI"})], "draft one", "draft two"]
    with FakeOpenAIServer(script) as fake:
        crew = _writers(fake.base_url)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            handle = runtime.start(crew, inputs={"topic": "AI"})
            wait_until(lambda: handle.pending_human_input(), "the first request for human input")
            first = handle.pending_human_input()
            assert handle.status is ExecutionStatus.WAITING
            with pytest.raises(InvalidInputError, match="feedback"):
                runtime.client.send_signal(handle.execution_id, first[0].signal, {"approved": True})
            assert handle.status is ExecutionStatus.WAITING, "a malformed answer is refused; the run still waits"
            with pytest.raises(ConflictError):
                handle.respond("x", signal="human:nope")
            handle.respond("make it longer")
            wait_until(
                lambda: [p.signal for p in handle.pending_human_input()] not in ([], [first[0].signal]),
                "the second round",
            )
            second = handle.pending_human_input()
            handle.respond("")
            result = handle.wait(60)
            with pytest.raises(ConflictError, match="not waiting"):
                handle.respond("late")
            journal = runtime.client.get_journal(handle.execution_id)
        turns = model_turns(fake.requests)
    assert first[0].details == {
        "task": "Write about AI",
        "expected_output": "a paragraph",
        "agent": "writer",
        "draft": "draft one",
        "round": 0,
        "framework": "crewai",
    }
    assert second[0].details["draft"] == "draft two" and second[0].details["round"] == 1
    assert result.is_success, result.error
    assert result.output == "draft two"
    assert turns == {1: 1, 2: 1, 3: 1}, "each model turn was asked once, across both resumptions"
    humans = [s for s in journal if s.kind == "human"]
    assert [s.status for s in humans] == [StepStatus.COMPLETED, StepStatus.COMPLETED]
    assert [s.output for s in humans] == ["make it longer", ""]


def _env(fake: FakeOpenAIServer, log: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OPENAI_BASE_URL": fake.base_url, "AGENT_LOG": str(log)}
    env.update(CREWAI_DISABLE_TELEMETRY="true", CREWAI_TRACING_ENABLED="false")
    env.pop("OPENAI_API_KEY", None)
    return env


def _worker(url: str, fake: FakeOpenAIServer, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentspan", "worker", "test_crewai_runtime:writers", "--server", url,
         "--lease-seconds", "2", "--poll-seconds", "1", "--max-executions", "1"],
        env=_env(fake, log), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.slow
def test_a_human_input_task_across_processes_the_answer_comes_over_http(server: str, tmp_path: Path) -> None:
    log = tmp_path / "tools.log"
    script = [[("search", {"query": "AI"})], "draft one", "draft two"]
    with FakeOpenAIServer(script) as fake, HttpClient(server) as client:
        execution = client.create_execution("writers", {"inputs": {"topic": "AI"}})
        first = _worker(server, fake, log)
        assert first.wait(timeout=120) == 0, "the worker ran its one execution to the wait, then exited"
        waiting = client.get_execution(execution.id)
        assert waiting.wait is not None
        signal = waiting.wait.signal
        # A human answers over the HTTP API, with no worker running.
        bad = httpx.post(f"{server}/executions/{execution.id}/signals/{signal}", json={"payload": 7})
        answer = httpx.post(f"{server}/executions/{execution.id}/signals/{signal}", json={"payload": "shorter"})
        second = _worker(server, fake, log)
        wait_until(lambda: (client.get_execution(execution.id).wait or waiting.wait).signal != signal, "round two")
        # The CLI accepts the second draft.
        cli = subprocess.run(
            [sys.executable, "-m", "agentspan", "executions", "respond", execution.id, "--server", server],
            env=_env(fake, log), capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert second.wait(timeout=120) == 0
        third = _worker(server, fake, log)
        wait_until(lambda: client.get_execution(execution.id).status.is_terminal, "the accepted run")
        stop(third)
        final = client.get_execution(execution.id)
        turns = model_turns(fake.requests)
    assert (waiting.status, bad.status_code, answer.status_code) == (ExecutionStatus.WAITING, 400, 200)
    assert "feedback" in bad.json()["error"]["message"]
    assert cli.returncode == 0, cli.stderr
    assert "accepted the draft" in cli.stderr
    assert final.status is ExecutionStatus.COMPLETED, final.error
    assert final.output["output"] == "draft two"
    lines = [line.split("\t") for line in log.read_text().splitlines()]
    assert collections.Counter(query for query, _ in lines) == {"AI": 1}, "the search before the wait ran once"
    assert lines[0][1] == str(first.pid)
    assert turns == {1: 1, 2: 1, 3: 1}, "nothing before a wait was asked of the model again"


@pytest.mark.slow
def test_the_cli_runs_a_crew_with_inputs_and_refuses_a_prompt(tmp_path: Path) -> None:
    log = tmp_path / "tools.log"
    with FakeOpenAIServer([[("search", {"query": "AI"})], "done"]) as fake:
        env = {**_env(fake, log), "AGENTSPAN_DB": str(tmp_path / "cli.db")}
        base = [sys.executable, "-m", "agentspan", "run", "test_crewai_runtime:plain"]
        ok = subprocess.run(
            [*base, "--inputs", '{"topic": "AI"}'], env=env, capture_output=True, text=True, timeout=120
        )
        prompt = subprocess.run([*base, "write"], env=env, capture_output=True, text=True, timeout=60)
        bad = subprocess.run([*base, "--inputs", "[1]"], env=env, capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "done" in ok.stdout
    assert (prompt.returncode, bad.returncode) == (2, 2)
    assert "give it --inputs" in prompt.stderr and "Traceback" not in prompt.stderr
    assert "must be a JSON object" in bad.stderr and "Traceback" not in bad.stderr


def test_the_drop_in_kickoff_says_what_it_waits_for_and_returns_once_answered(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from agentspan.adapters.crewai import durable
    from agentspan.durable import Runtime

    with FakeOpenAIServer(["draft one"]) as fake, Runtime(db=tmp_path / "a.db") as runtime:
        crew = durable(_writers(fake.base_url), runtime=runtime)
        with ThreadPoolExecutor(1) as pool:
            future = pool.submit(crew.kickoff, inputs={"topic": "AI"})
            wait_until(lambda: runtime.client.list_executions(status="waiting").items, "the wait for human input")
            waiting = runtime.client.list_executions(status="waiting").items[0]
            wait_until(lambda: "executions respond" in capfd.readouterr().err, "the line saying how to answer")
            assert waiting.wait is not None
            runtime.client.send_signal(waiting.id, waiting.wait.signal, {"feedback": ""})
            output = future.result(timeout=60)
    assert isinstance(output, CrewOutput)
    assert output.raw == "draft one"


def test_the_planner_model_calls_are_steps_too(tmp_path: Path) -> None:
    plan = json.dumps({"list_of_plans_per_task": [{"task_number": 1, "task": "Write about AI", "plan": "search"}]})
    with FakeOpenAIServer([plan, [("search", {"query": "AI"})], "written"], by_turn=False) as fake:
        crew = _writers(fake.base_url, human=False)
        crew.planning = True
        crew.planning_llm = _llm(fake.base_url)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(crew, inputs={"topic": "AI"}, timeout=60)
            journal = runtime.client.get_journal(result.execution_id)
        requests = fake.request_count
    assert result.is_success, result.error
    assert result.output == "written"
    model_steps = [s for s in journal if s.kind == "llm"]
    assert len(model_steps) == requests == 3, "every model request, the planner's too, is a step"
    parents = {s.parent.split(":")[0] for s in model_steps if s.parent}
    assert parents == {"Task Execution Planner", "writer"}, parents


@pytest.mark.slow
def test_agentspan_run_shows_the_draft_under_review_and_finishes_once_it_is_accepted(tmp_path: Path) -> None:
    log, err = tmp_path / "tools.log", tmp_path / "run.err"
    with FakeOpenAIServer([[("search", {"query": "AI"})], "draft one"]) as fake:
        env = {**_env(fake, log), "AGENTSPAN_DB": str(tmp_path / "cli.db")}
        command = [
            sys.executable,
            "-m",
            "agentspan",
            "run",
            "test_crewai_runtime:writers",
            "--inputs",
            '{"topic": "AI"}',
        ]
        with open(err, "w") as stderr:
            run = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=stderr, text=True)
        try:
            wait_until(lambda: "asks for review of: draft one" in err.read_text(), "the draft shown for review")
            execution_id = err.read_text().split("executions respond ")[1].split()[0]
            respond = [sys.executable, "-m", "agentspan", "executions", "respond", execution_id]
            answered = subprocess.run(respond, env=env, capture_output=True, text=True, timeout=60)
            out, _ = run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                run.kill()
                run.wait()
    assert answered.returncode == 0, answered.stderr
    assert run.returncode == 0, err.read_text()
    assert "draft one" in out
    assert "writer asks for review of: draft one" in err.read_text()

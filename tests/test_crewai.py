"""The CrewAI adapter in one process: CrewAI's own kickoff runs the crew, each model call, tool call and
task execution is a durable step.

The model is ``crewai.LLM`` against a ``FakeOpenAIServer`` (each agent's conversation scripted by its
role or task with ``routes``). A "crash" is a ``BaseException`` raised by a tool or a task callback: it
unwinds the worker without recording anything more, and the test expires the worker's lease and
resumes the run with a fresh worker (or a fresh runtime on the same SQLite file). The crash tests
across real processes killed with SIGKILL are in ``test_crewai_crash.py``.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

pytest.importorskip("crewai")

from crewai import LLM, Agent, Crew, Process, Task
from crewai.crews.crew_output import CrewOutput
from crewai.flow.flow import Flow, start
from crewai.llms.base_llm import BaseLLM
from crewai.tools import BaseTool, tool
from processes import TESTS, model_turns
from pydantic import BaseModel, Field

from agentspan.adapters.crewai import crew_function, durable, execution_input
from agentspan.adapters.crewai._patch import install, unpatch
from agentspan.durable import Runtime, current_step
from agentspan.errors import ConfigurationError, ExecutionFailedError, InvalidInputError
from agentspan.runtime import ExecutionStatus, Service, SQLiteStore, Step, StepStatus
from agentspan.testing import FakeOpenAIServer
from agentspan.worker import Worker

TELEMETRY = ("CREWAI_DISABLE_TELEMETRY", "CREWAI_TRACING_ENABLED", "CREWAI_DISABLE_VERSION_CHECK")


class Crash(BaseException):
    """Stands for the process dying."""


calls: list[tuple[str, str]] = []
"""Each tool call that ran: (tool, argument), in order."""


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    crash_at.clear()
    keys.clear()


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    with Runtime(db=tmp_path / "crew.db") as found:
        yield found


# --- CrewAI's quickstart crew ----------------------------------------------------------------------------
@tool("search")
def search(query: str) -> str:
    """Search the web for a query."""
    calls.append(("search", query))
    return f"found {query}"


class WordCountInput(BaseModel):
    text: str = Field(..., description="The text to count the words of.")


class WordCount(BaseTool):
    name: str = "word_count"
    description: str = "Count the words in a text."
    args_schema: type[BaseModel] = WordCountInput

    def _run(self, text: str) -> str:
        calls.append(("word_count", text))
        return f"{len(text.split())} words"


def llm(fake: FakeOpenAIServer) -> LLM:
    return LLM(model="gpt-4o-mini", base_url=fake.base_url, api_key="test")


def quickstart_crew(fake: FakeOpenAIServer, report: str) -> Crew:
    """CrewAI's documented quickstart (``crewai create crew``): a researcher and a reporting analyst."""
    researcher = Agent(
        role="{topic} Senior Data Researcher",
        goal="Uncover cutting-edge developments in {topic}",
        backstory="You're a seasoned researcher with a knack for uncovering the latest developments in {topic}."
        " Known for your ability to find the most relevant information and present it in a clear and concise"
        " manner.",
        llm=llm(fake),
        tools=[search],
    )
    reporting_analyst = Agent(
        role="{topic} Reporting Analyst",
        goal="Create detailed reports based on {topic} data analysis and research findings",
        backstory="You're a meticulous analyst with a keen eye for detail. You're known for your ability to turn"
        " complex data into clear and concise reports, making it easy for others to understand and act on the"
        " information you provide.",
        llm=llm(fake),
        tools=[WordCount()],
    )
    research_task = Task(
        description="Conduct a thorough research about {topic}. Make sure you find any interesting and relevant"
        " information given the current year is {current_year}.",
        expected_output="A list with 10 bullet points of the most relevant information about {topic}",
        agent=researcher,
    )
    reporting_task = Task(
        description="Review the context you got and expand each topic into a full section for a report. Make sure"
        " the report is detailed and contains any and all relevant information.",
        expected_output="A fully fledged report with the main topics, each with a full section of information."
        " Formatted as markdown without '```'",
        agent=reporting_analyst,
        output_file=report,
    )
    return Crew(
        agents=[researcher, reporting_analyst], tasks=[research_task, reporting_task], process=Process.sequential
    )


QUICKSTART_INPUTS = {"topic": "AI LLMs", "current_year": "2026"}
QUICKSTART = {
    "You are AI LLMs Senior Data Researcher": [
        [("search", {"query": "AI LLMs 2026"})],
        [("search", {"query": "AI LLMs agents"})],
        "- LLMs got cheaper\n- Agents went to production",
    ],
    "You are AI LLMs Reporting Analyst": [
        [("word_count", {"text": "LLMs got cheaper"})],
        "# AI LLMs\n## Cost\nLLMs got cheaper.\n## Agents\nAgents went to production.",
    ],
}


def _tasks(output: CrewOutput) -> list[dict[str, Any]]:
    return [task.model_dump() for task in output.tasks_output]


def test_the_quickstart_crew_with_only_durable_added_returns_what_the_plain_run_returns(
    runtime: Runtime, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # CrewAI writes output files relative to the working directory
    with FakeOpenAIServer(routes=QUICKSTART) as fake:
        unpatch()
        try:
            plain = quickstart_crew(fake, "plain.md").kickoff(inputs=QUICKSTART_INPUTS)
        finally:
            install()
        plain_calls, plain_requests = list(calls), fake.request_count
        calls.clear()
        result = durable(quickstart_crew(fake, "durable.md"), runtime=runtime).kickoff(inputs=QUICKSTART_INPUTS)
        durable_requests = fake.request_count - plain_requests
    assert isinstance(result, CrewOutput)
    assert result.raw == plain.raw == "# AI LLMs\n## Cost\nLLMs got cheaper.\n## Agents\nAgents went to production."
    assert _tasks(result) == _tasks(plain)
    assert result.token_usage == plain.token_usage
    assert (
        calls
        == plain_calls
        == [("search", "AI LLMs 2026"), ("search", "AI LLMs agents"), ("word_count", "LLMs got cheaper")]
    )
    assert durable_requests == plain_requests == 5
    assert (tmp_path / "durable.md").read_text() == (tmp_path / "plain.md").read_text()
    journal = _journal(runtime, "crew")
    assert sorted(s.kind for s in journal) == ["llm"] * 5 + ["task"] * 2 + ["tool"] * 3
    assert all(s.status is StepStatus.COMPLETED for s in journal)


def _journal(runtime: Runtime, name: str) -> list[Step]:
    return [s for e in runtime.client.list_executions(name=name).items for s in runtime.client.get_journal(e.id)]


# --- replay, structured output ---------------------------------------------------------------------------
class Report(BaseModel):
    title: str
    points: list[str]


@tool("note")
def note(text: str) -> str:
    """Take a note."""
    calls.append(("note", text))
    return "noted"


STRUCTURED = {
    # CrewAI's converter, asking for output_pydantic with a JSON schema (response_format).
    '"type": "json_schema"': ['{"title": "Agents", "points": ["x", "y"]}'],
    "Current Task: Summarise": [[("note", {"text": "AI"})], "The title is AI and the points are a and b."],
    "Current Task: Outline": ["An outline: title Agents, points x and y."],
}
# Instructor (output_json conversion) asks with the summary text alone: the default script.
INSTRUCTOR = [[("Report", {"title": "AI", "points": ["a", "b"]})]]


crash_after_outline: list[bool] = []


def crash_after_the_last_task(output: Any) -> None:
    """A task callback: the process "dies" once the last task's calls have all finished."""
    if crash_after_outline and output.description.startswith("Outline"):
        crash_after_outline.clear()
        raise Crash("the process dies after the last call")


def structured_crew(fake: FakeOpenAIServer) -> Crew:
    """Two tasks whose agent answers in prose: CrewAI converts the answers (the agent has tools, so it is
    not asked for the schema itself), ``output_json`` through instructor, ``output_pydantic`` through
    ``llm.call(response_model=...)``."""
    writer = Agent(role="Writer", goal="Write", backstory="Careful.", llm=llm(fake), tools=[note])
    summary = Task(description="Summarise.", expected_output="A report", agent=writer, output_json=Report)
    outline = Task(description="Outline.", expected_output="A report", agent=writer, output_pydantic=Report)
    return Crew(agents=[writer], tasks=[summary, outline], name="structured", task_callback=crash_after_the_last_task)


def test_a_run_whose_calls_all_finished_replays_in_a_fresh_runtime_with_no_model_request_and_its_structured_output(
    tmp_path: Path,
) -> None:
    db = tmp_path / "crew.db"
    with FakeOpenAIServer(INSTRUCTOR, routes=STRUCTURED) as fake:
        service = Service(SQLiteStore(db))
        crash_after_outline.append(True)
        fn = crew_function(structured_crew(fake))
        execution = service.create_execution("structured", execution_input({}))
        worker = Worker(service, [fn])
        with pytest.raises(Crash):
            worker.run_once()
        assert service.expire_leases([worker.worker_id])
        journal = service.get_journal(execution.id)
        service.close()
        requests, ran = fake.request_count, list(calls)

        with Runtime(db=db) as fresh:
            result = durable(structured_crew(fake), runtime=fresh).kickoff(inputs={})
            executions = fresh.client.list_executions(name="structured").items
        assert fake.request_count == requests, "every call was replayed: no model request"
    assert calls == ran == [("note", "AI")], "the tool call was replayed, not run again"
    assert [(e.id, e.status) for e in executions] == [(execution.id, ExecutionStatus.COMPLETED)]
    instructor = [s for s in journal if s.name.startswith("instructor:")]
    assert [s.status for s in instructor] == [StepStatus.COMPLETED], "the instructor conversion is a step"
    assert result.tasks_output[0].json_dict == {"title": "AI", "points": ["a", "b"]}
    assert result.tasks_output[1].pydantic == Report(title="Agents", points=["x", "y"])
    assert type(result.pydantic) is Report and result.pydantic == Report(title="Agents", points=["x", "y"])


class Aliased(BaseModel):
    title: str = Field(alias="Title")


def test_a_recorded_crew_output_comes_back_equal_with_its_pydantic_outputs_as_their_own_classes() -> None:
    from crewai.tasks.task_output import TaskOutput

    from agentspan.adapters.crewai._output import crew_output_json, crew_output_of

    task = TaskOutput(description="d", raw='{"Title": "t"}', agent="a", pydantic=Aliased(Title="t"))
    output = CrewOutput(raw=task.raw, pydantic=task.pydantic, tasks_output=[task])
    data = json.loads(json.dumps(crew_output_json(output)))
    rebuilt = crew_output_of(data)
    assert rebuilt == output
    assert type(rebuilt.pydantic) is Aliased and type(rebuilt.tasks_output[0].pydantic) is Aliased


# --- parallel native tool calls --------------------------------------------------------------------------
side_by_side = threading.Barrier(2, timeout=20)


@tool("lookup")
def lookup(query: str) -> str:
    """Look a query up."""
    calls.append(("lookup", query))
    if query == "together":
        side_by_side.wait()  # returns only when both calls run at once (in threads); else it breaks
    return f"{query} in {threading.current_thread().name}"


def test_parallel_native_tool_calls_run_in_threads_and_are_keyed_by_call_id_the_same_in_two_runs(
    runtime: Runtime,
) -> None:
    script = [
        [("lookup", {"query": "together"}), ("lookup", {"query": "together"}), ("lookup", {"query": "b"})],
        "done",
    ]
    with FakeOpenAIServer(script) as fake:
        agent = Agent(role="Researcher", goal="Research", backstory="Careful.", llm=llm(fake), tools=[lookup])
        crew = Crew(agents=[agent], tasks=[Task(description="Research.", expected_output="Notes", agent=agent)])
        first = durable(crew, runtime=runtime).kickoff()
        second = durable(crew, runtime=runtime).kickoff()
    executions = runtime.client.list_executions(name="crew").items
    assert len(executions) == 2 and first.raw == second.raw == "done"
    assert len(calls) == 6 and not side_by_side.broken, "the calls of each reply ran side by side"
    journals = [runtime.client.get_journal(e.id) for e in executions]
    tools = [sorted((s.key, s.input["call_id"]) for s in journal if s.kind == "tool") for journal in journals]
    assert tools[0] == tools[1], "the same keys in both runs"
    assert sorted(str(call_id) for _, call_id in tools[0]) == ["call_1", "call_2", "call_3"], "keyed by the model's ids"
    assert all(s.status is StepStatus.COMPLETED for journal in journals for s in journal)


# --- the ReAct text path, with a user-defined LLM class ---------------------------------------------------
class TextLLM(BaseLLM):
    """CrewAI's documented custom LLM: its own ``call``, no function calling, so agents use ReAct text."""

    def call(
        self,
        messages: Any,
        tools: Any = None,
        callbacks: Any = None,
        available_functions: Any = None,
        from_task: Any = None,
        from_agent: Any = None,
        response_model: Any = None,
    ) -> str:
        if isinstance(messages, str):
            messages = [{"role": "user", "content": messages}]
        reply = httpx.post(f"{self.base_url}/chat/completions", json={"model": self.model, "messages": messages})
        reply.raise_for_status()
        return str(reply.json()["choices"][0]["message"]["content"])

    def supports_function_calling(self) -> bool:
        return False


crash_at: set[str] = set()
keys: dict[str, set[str]] = {}


@tool("find")
def find(query: str) -> str:
    """Find a query."""
    calls.append(("find", query))
    step = current_step()
    keys.setdefault(query, set()).add(step.idempotency_key if step else "-")
    if query in crash_at:
        crash_at.discard(query)
        raise Crash(query)
    return f"found {query}"


def _react(query: str) -> str:
    return f'Thought: I should look it up.\nAction: find\nAction Input: {{"query": "{query}"}}'


def test_react_tool_calls_of_a_custom_llm_are_keyed_by_tool_and_arguments_and_resume_without_repeating(
    tmp_path: Path,
) -> None:
    script = [_react("q1"), _react("q2"), _react("q1"), _react("q3"), "Thought: done.\nFinal Answer: all found"]
    with FakeOpenAIServer(script) as fake:
        agent = Agent(
            role="Finder",
            goal="Find",
            backstory="Careful.",
            llm=TextLLM(model="text", base_url=fake.base_url),
            tools=[find],
        )
        crew = Crew(
            agents=[agent], tasks=[Task(description="Find.", expected_output="Facts", agent=agent)], name="react"
        )
        service = Service(SQLiteStore(tmp_path / "crew.db"))
        try:
            execution = service.create_execution("react", execution_input({}))
            crash_at.add("q3")
            worker = Worker(service, [crew_function(crew)])
            with pytest.raises(Crash):
                worker.run_once()
            assert service.expire_leases([worker.worker_id])
            requests_at_crash = fake.request_count
            assert Worker(service, [crew_function(crew)]).run_once()
            final = service.get_execution(execution.id)
            journal = service.get_journal(execution.id)
        finally:
            service.close()
        resumed = fake.requests[requests_at_crash:]
    assert final.status is ExecutionStatus.COMPLETED, final.error
    assert final.output["output"] == "all found"
    assert [query for _, query in calls] == ["q1", "q2", "q1", "q3", "q3"], "only the call in flight ran again"
    assert len(keys["q3"]) == 1, "with the same idempotency key"
    tools = [s for s in journal if s.kind == "tool"]
    assert [(s.input["arguments"], s.input["call_id"]) for s in tools] == [
        ({"query": q}, None) for q in ("q1", "q2", "q1", "q3")
    ]
    assert len({s.key for s in tools}) == 4, "the same call made twice is two steps"
    assert model_turns(resumed) == {5: 1}, "the resumed run asked the model only for the last turn"


# --- kickoff variants ------------------------------------------------------------------------------------
def topic_crew(fake: FakeOpenAIServer) -> Crew:
    agent = Agent(role="Researcher", goal="Research", backstory="Careful.", llm=llm(fake), tools=[find])
    task = Task(description="Research {topic}.", expected_output="Notes", agent=agent)
    return Crew(agents=[agent], tasks=[task], name="topics")


TOPICS = {
    "Current Task: Research cats.": [[("find", {"query": "cats"})], "cats purr"],
    "Current Task: Research dogs.": [[("find", {"query": "dogs"})], "dogs bark"],
}


def test_kickoff_for_each_gives_each_input_its_own_scope(runtime: Runtime) -> None:
    with FakeOpenAIServer(routes=TOPICS) as fake:
        results = durable(topic_crew(fake), runtime=runtime).kickoff_for_each(
            inputs=[{"topic": "cats"}, {"topic": "dogs"}]
        )
    assert [r.raw for r in results] == ["cats purr", "dogs bark"]
    journal = _journal(runtime, "topics")
    kickoffs = [s for s in journal if s.kind == "crew"]
    assert [s.input for s in kickoffs] == [
        {"index": 0, "inputs": {"topic": "cats"}},
        {"index": 1, "inputs": {"topic": "dogs"}},
    ]
    for kickoff, topic in zip(kickoffs, ("cats", "dogs"), strict=True):
        inner = [s for s in journal if s.key.startswith(kickoff.key + "/")]
        assert sorted(s.kind for s in inner) == ["llm", "llm", "task", "tool"]
        assert [s.input["arguments"] for s in inner if s.kind == "tool"] == [{"query": topic}]
    assert len(journal) == 2 + 2 * 4, "every call is inside its input's scope"


def test_kickoff_for_each_resumed_after_a_crash_does_not_kick_off_the_finished_inputs_again(tmp_path: Path) -> None:
    with FakeOpenAIServer(routes=TOPICS) as fake:
        fn = crew_function(topic_crew(fake))
        service = Service(SQLiteStore(tmp_path / "crew.db"))
        try:
            inputs = [{"topic": "cats"}, {"topic": "dogs"}]
            execution = service.create_execution("topics", execution_input(inputs, mode="for_each"))
            crash_at.add("dogs")
            worker = Worker(service, [fn])
            with pytest.raises(Crash):
                worker.run_once()
            assert service.expire_leases([worker.worker_id])
            requests_at_crash = fake.request_count
            assert Worker(service, [fn]).run_once()
            final = service.get_execution(execution.id)
        finally:
            service.close()
        resumed = fake.requests[requests_at_crash:]
    assert final.status is ExecutionStatus.COMPLETED, final.error
    assert [output["value"]["raw"] for output in final.output["crew_outputs"]] == ["cats purr", "dogs bark"]
    assert calls == [("find", "cats"), ("find", "dogs"), ("find", "dogs")], "only the call in flight ran again"
    assert [r["messages"][1]["content"].split("\n")[1] for r in resumed] == ["Current Task: Research dogs."], (
        "the finished input was replayed whole; of the second, only the turn after the crash was asked for"
    )


def test_each_run_reports_the_tokens_of_its_own_calls_not_those_of_earlier_runs_in_the_process(
    runtime: Runtime,
) -> None:
    with FakeOpenAIServer(routes=TOPICS) as fake:
        crew = durable(topic_crew(fake), runtime=runtime)
        first, second = crew.kickoff(inputs={"topic": "cats"}), crew.kickoff(inputs={"topic": "cats"})
        each = crew.kickoff_for_each(inputs=[{"topic": "cats"}, {"topic": "cats"}])
    assert first.token_usage.total_tokens > 0
    assert first.token_usage == second.token_usage == each[0].token_usage == each[1].token_usage


def test_kickoff_async_and_akickoff_return_the_crew_output(runtime: Runtime) -> None:
    with FakeOpenAIServer(routes=TOPICS) as fake:
        crew = durable(topic_crew(fake), runtime=runtime)

        async def both() -> tuple[CrewOutput, CrewOutput]:
            return await crew.kickoff_async(inputs={"topic": "cats"}), await crew.akickoff(inputs={"topic": "dogs"})

        cats, dogs = asyncio.run(both())
    assert (cats.raw, dogs.raw) == ("cats purr", "dogs bark")
    assert calls == [("find", "cats"), ("find", "dogs")]
    executions = runtime.client.list_executions(name="topics").items
    assert sorted(e.input.get("mode", "kickoff") for e in executions) == ["akickoff", "kickoff"]
    assert all(e.status is ExecutionStatus.COMPLETED for e in executions)
    for execution in executions:
        assert sorted(s.kind for s in runtime.client.get_journal(execution.id)) == ["llm", "llm", "task", "tool"]


# --- bad input -------------------------------------------------------------------------------------------
class Plan(Flow):  # type: ignore[type-arg]
    @start()
    def begin(self) -> str:
        return "begun"


def test_durable_of_something_that_is_not_a_crew_or_flow_instance_says_what_to_pass() -> None:
    with pytest.raises(ConfigurationError, match="durable\\(\\) takes a CrewAI Crew or Flow instance, not object"):
        durable(object())
    with pytest.raises(ConfigurationError, match="not the class Plan: pass an instance"):
        durable(Plan)
    with pytest.raises(ConfigurationError, match="not the class Crew: pass an instance"):
        durable(Crew)


def test_bad_inputs_and_options_are_refused_before_anything_runs(runtime: Runtime) -> None:
    with FakeOpenAIServer(routes=TOPICS) as fake:
        crew = durable(topic_crew(fake), runtime=runtime)
        with pytest.raises(InvalidInputError, match="a crew's inputs are a JSON object of placeholder values"):
            crew.kickoff(inputs=["x"])
        with pytest.raises(InvalidInputError, match="kickoff_for_each takes a list of input objects"):
            crew.kickoff_for_each(inputs={"topic": "cats"})
        with pytest.raises(ConfigurationError, match="durable kickoff\\(\\) takes the inputs only, not input_files"):
            crew.kickoff(inputs={"topic": "cats"}, input_files={})
        with pytest.raises(ConfigurationError, match="takes the inputs only"):
            asyncio.run(crew.akickoff(inputs={"topic": "cats"}, stream=True))
        assert fake.request_count == 0
    assert runtime.client.list_executions(name="topics").items == []


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque>"


@tool("fetch_blob")
def fetch_blob(url: str) -> Any:
    """Fetch a blob."""
    calls.append(("fetch_blob", url))
    return Opaque()


def test_a_tool_result_that_cannot_be_recorded_fails_the_run_naming_the_tool(runtime: Runtime) -> None:
    with FakeOpenAIServer([[("fetch_blob", {"url": "u"})], "done", "done"]) as fake:
        agent = Agent(role="Fetcher", goal="Fetch", backstory="Careful.", llm=llm(fake), tools=[fetch_blob])
        crew = Crew(agents=[agent], tasks=[Task(description="Fetch.", expected_output="A blob", agent=agent)])
        with pytest.raises(ExecutionFailedError) as failed:
            durable(crew, runtime=runtime).kickoff()
    message = str(failed.value)
    assert "tool 'fetch_blob' returned a value that cannot be recorded" in message, message
    assert "return text, JSON-compatible data or a pydantic model" in message
    assert calls == [("fetch_blob", "u")]


# --- telemetry -------------------------------------------------------------------------------------------
NETWORK_PROBE = textwrap.dedent(
    """
    import atexit, json, os, socket, sys

    seen = set()
    real_connect, real_resolve = socket.socket.connect, socket.getaddrinfo

    def connect(self, address):
        seen.add(str(address[0]) if isinstance(address, tuple) else str(address))
        return real_connect(self, address)

    def resolve(host, *args, **kwargs):
        seen.add(str(host))
        return real_resolve(host, *args, **kwargs)

    socket.socket.connect, socket.getaddrinfo = connect, resolve
    # Registered first, so it runs last: after CrewAI's exporters flush at exit.
    atexit.register(lambda: print(json.dumps({"hosts": sorted(seen), "env": inside}), flush=True))
    inside = {}

    from crewai import LLM, Agent, Crew, Task
    from crewai.tools import tool
    from agentspan.adapters.crewai import durable
    from agentspan.durable import Runtime, current_step

    @tool("probe")
    def probe(x: str) -> str:
        \"\"\"Probe.\"\"\"
        from crewai.telemetry import Telemetry

        inside.update({name: os.environ.get(name) for name in TELEMETRY_NAMES})
        inside["telemetry disabled"] = Telemetry._is_telemetry_disabled()
        return "ok"

    model = LLM(model="gpt-4o-mini", base_url=sys.argv[1], api_key="test")
    agent = Agent(role="Prober", goal="Probe", backstory="Careful.", llm=model, tools=[probe])
    crew = Crew(agents=[agent], tasks=[Task(description="Probe.", expected_output="ok", agent=agent)])
    with Runtime(db=sys.argv[2]) as runtime:
        print(durable(crew, runtime=runtime).kickoff().raw)
    """
).replace("TELEMETRY_NAMES", repr(TELEMETRY))


def test_a_durable_crew_switches_crewai_telemetry_off_and_connects_to_nothing_but_loopback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in TELEMETRY and k != "OTEL_SDK_DISABLED"}
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS.parent), env.get("PYTHONPATH", "")])
    with FakeOpenAIServer([[("probe", {"x": "1"})], "probed"]) as fake:
        run = subprocess.run(
            [sys.executable, "-c", NETWORK_PROBE, fake.base_url, str(tmp_path / "probe.db")],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert run.returncode == 0, run.stderr[-3000:]
    answer, report = run.stdout.strip().splitlines()[-2:]
    seen = json.loads(report)
    assert answer == "probed"
    assert seen["hosts"] and set(seen["hosts"]) <= {"127.0.0.1"}, f"connections beyond loopback: {seen['hosts']}"
    assert seen["env"] == {
        "CREWAI_DISABLE_TELEMETRY": "true",
        "CREWAI_TRACING_ENABLED": "false",
        "CREWAI_DISABLE_VERSION_CHECK": "true",
        "telemetry disabled": True,
    }

"""Google ADK agents run durably by ADK's own Runner: every model call and tool call is a step, the
user's callbacks run on replayed calls, tools' state changes survive a resume, ADK's ids are
deterministic. The model is ADK's default Gemini model against the test's ``FakeOpenAIServer``."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

pytest.importorskip("google.adk")

import adk_program
from processes import TESTS, kill_after_and_resume, model_turns, stop, wait_until

from agentspan.adapters.google_adk import agent_function, execution_input
from agentspan.agents import AgentRuntime, Message, ModelResponse, ToolCall
from agentspan.client import HttpClient
from agentspan.errors import ConfigurationError
from agentspan.runtime import ExecutionStatus, Service, Step, StepStatus
from agentspan.testing import FakeOpenAIServer
from agentspan.worker import Worker
from agentspan.worker._aio import run_async

pytestmark = pytest.mark.filterwarnings(
    # google-genai's async client subclasses aiohttp's ClientSession, which aiohttp warns about.
    "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning"
)

UUID = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")
CITIES = ["Paris", "Rome", "Oslo"]


class Crash(BaseException):
    """Stands for the process dying in a tool: nothing catches it, the step stays in doubt."""


def _calls_without_ids(script: list[Any]) -> list[Any]:
    """``script`` with its function calls sent as Gemini sends them: without ids (ADK then draws them)."""
    found: list[Any] = []
    for turn in script:
        if isinstance(turn, list):
            calls = [ToolCall(id="", name=name, arguments=json.dumps(args)) for name, args in turn]
            turn = ModelResponse(message=Message(role="assistant", tool_calls=calls))
        found.append(turn)
    return found


def _weather_script(calls: int = 3, *, ids: bool = True) -> list[Any]:
    script = FakeOpenAIServer.research_script(calls, "get_weather", lambda i: {"city": CITIES[i]}, answer="All sunny.")
    return script if ids else _calls_without_ids(script)


@contextmanager
def _gemini(monkeypatch: pytest.MonkeyPatch, script: list[Any]) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(script) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.gemini_base_url)
        monkeypatch.setenv("GOOGLE_API_KEY", "test")
        monkeypatch.setenv("GOOGLE_GENAI_USE_ENTERPRISE", "false")
        monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
        yield fake


@pytest.fixture
def agents() -> Iterator[list[Any]]:
    """Agents made by a test; their Gemini clients (on the workers' event loop) are closed after it."""
    made: list[Any] = []
    yield made
    for agent in made:
        run_async(agent.canonical_model.api_client.aio.aclose())


def _weather_agent(agents: list[Any], ran: list[str], name: str = "weather", **options: Any) -> Any:
    from google.adk.agents import LlmAgent
    from google.adk.tools.tool_context import ToolContext

    crash_at = options.pop("crash_at", None)

    def get_weather(city: str, tool_context: ToolContext) -> dict[str, str]:
        """The weather in a city."""
        ran.append(city)
        if crash_at == (city, ran.count(city)):
            raise Crash(city)
        tool_context.state["visited"] = [*tool_context.state.get("visited", []), city]
        return {"city": city, "weather": "sunny"}

    agent = LlmAgent(name=name, model="gemini-2.5-flash", instruction="Answer about the weather.", tools=[get_weather],
                     **options)  # fmt: skip
    agents.append(agent)
    return agent


def _kinds(journal: list[Step]) -> list[tuple[str, str]]:
    return [(step.kind, step.name) for step in journal]


# --- runtime.run -----------------------------------------------------------------------------------------
def test_an_llm_agent_with_a_function_tool_runs_through_runtime_run_each_call_a_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, agents: list[Any]
) -> None:
    ran: list[str] = []
    with _gemini(monkeypatch, _weather_script(ids=False)) as fake:
        agent = _weather_agent(agents, ran)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(agent, "Weather in Paris, Rome and Oslo?")
            journal = runtime.client.get_journal(result.execution_id)
            execution = runtime.client.get_execution(result.execution_id)
        requests = fake.requests
    assert result.is_success, result.error
    assert result.output == "All sunny."
    assert ran == CITIES
    assert _kinds(journal) == [("llm", "gemini-2.5-flash"), ("tool", "get_weather")] * 3 + [("llm", "gemini-2.5-flash")]
    assert all(step.status is StepStatus.COMPLETED for step in journal)
    for step in journal:
        assert not UUID.search(step.key), f"a random id in step key {step.key}"
    tool_steps = [step for step in journal if step.kind == "tool"]
    assert [step.input["arguments"] for step in tool_steps] == [{"city": city} for city in CITIES]
    assert all(step.input["call_id"].startswith("adk-run-") for step in tool_steps), "keyed by ADK's call id"
    assert model_turns(requests) == collections.Counter({1: 1, 2: 1, 3: 1, 4: 1})
    assert [call["name"] for call in result.tool_calls] == ["get_weather"] * 3
    assert result.token_usage.total_tokens > 0
    output = execution.output
    assert output["state"]["visited"] == CITIES
    assert output["events"][0]["author"] == "user" and output["events"][-1]["content"]["parts"] == [
        {"text": "All sunny."}
    ]
    recorded = journal[2].input
    assert recorded["after"] == 1 and len(recorded["contents"]) == 2, "a model step records only the new contents"
    assert "config" not in recorded and "get_weather" in json.dumps(journal[0].input["config"]), "and a new config"


# --- replay ------------------------------------------------------------------------------------------------
def _run_crashing(service: Service, fn: Any, prompt: str) -> str:
    """Run ``fn`` until its tool crashes (the worker dies with it), then resume it with a fresh worker."""
    execution = service.create_execution(Worker(service, [fn]).names[0], execution_input(prompt))
    first = Worker(service, [fn], lease_seconds=30)
    with pytest.raises(Crash):
        first.run_once()
    assert service.expire_leases([first.worker_id]), "the dead worker's lease is expired"
    assert Worker(service, [fn], lease_seconds=30).run_once()
    return execution.id


def _comparable(output: dict[str, Any], tag: str) -> Any:
    """An execution's output without what differs between executions: its id tag, event timestamps."""
    events = [{k: v for k, v in event.items() if k != "timestamp"} for event in output["events"]]
    return json.loads(json.dumps({**output, "events": events}).replace(tag, "TAG"))


def _tag(output: dict[str, Any]) -> str:
    found = re.match(r"e-(as[0-9a-f]{8})-\d+$", output["events"][0]["invocation_id"])
    assert found, output["events"][0]["invocation_id"]
    return found.group(1)


@pytest.mark.parametrize("ids", [True, False], ids=["model-ids", "adk-ids"])
def test_a_run_that_crashed_in_a_tool_resumes_with_the_state_and_events_of_an_uninterrupted_run(
    ids: bool, monkeypatch: pytest.MonkeyPatch, service: Service, agents: list[Any]
) -> None:
    """Completed calls replay (their tools do not run again, their state changes are restored), the
    user's callbacks see replayed calls as live ones, and the session ends as an uninterrupted run's."""
    from google.adk.agents.callback_context import CallbackContext
    from google.adk.models.llm_response import LlmResponse

    def count(*, callback_context: CallbackContext, llm_response: LlmResponse) -> None:
        callback_context.state["responses_seen"] = callback_context.state.get("responses_seen", 0) + 1

    ran: list[str] = []
    calm_ran: list[str] = []
    with _gemini(monkeypatch, _weather_script(ids=ids)) as fake:
        agent = _weather_agent(agents, ran, crash_at=("Rome", 1), after_model_callback=count)
        crashed_id = _run_crashing(service, agent_function(agent), "Weather?")
        requests = fake.requests
        calm = _weather_agent(agents, calm_ran, after_model_callback=count)
        calm_execution = service.create_execution("calm", execution_input("Weather?"))
        assert Worker(service, [agent_function(calm, "calm")]).run_once()
    crashed, uninterrupted = service.get_execution(crashed_id), service.get_execution(calm_execution.id)
    assert crashed.status is ExecutionStatus.COMPLETED, crashed.error
    assert ran == ["Paris", "Rome", "Rome", "Oslo"], "only the call in flight at the crash ran again"
    assert model_turns(requests) == collections.Counter({1: 1, 2: 1, 3: 1, 4: 1}), "no model turn was asked twice"
    assert crashed.output["state"] == {"visited": CITIES, "responses_seen": 4}
    assert calm_ran == CITIES
    assert _comparable(crashed.output, _tag(crashed.output)) == _comparable(
        uninterrupted.output, _tag(uninterrupted.output)
    )
    journal = service.get_journal(crashed_id)
    rome = [step for step in journal if step.kind == "tool" and step.input["arguments"] == {"city": "Rome"}]
    assert [step.status for step in rome] == [StepStatus.COMPLETED], "one step, run again"


def test_two_fresh_runs_of_an_agent_whose_model_gives_no_call_ids_have_the_same_step_keys(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, agents: list[Any]
) -> None:
    with _gemini(monkeypatch, _weather_script(ids=False)):
        agent = _weather_agent(agents, [])
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            first = runtime.run(agent, "Weather?", idempotency_key="one")
            second = runtime.run(agent, "Weather?", idempotency_key="two")
            keys = [[step.key for step in runtime.client.get_journal(r.execution_id)] for r in (first, second)]
            outputs = [runtime.client.get_execution(r.execution_id).output for r in (first, second)]
    assert first.is_success and second.is_success
    assert len(keys[0]) == 7 and keys[0] == keys[1]
    tags = [_tag(output) for output in outputs]
    assert tags[0] != tags[1], "ids differ between executions"
    call_ids = [[p["function_call"]["id"] for e in o["events"] for p in e["content"]["parts"] if "function_call" in p]
                for o in outputs]  # fmt: skip
    assert len(call_ids[0]) == 3 and all(re.fullmatch(f"adk-{tags[0]}-\\d+", i) for i in call_ids[0]), call_ids
    assert [i.replace(tags[1], tags[0]) for i in call_ids[1]] == call_ids[0]


# --- bad input -------------------------------------------------------------------------------------------
def test_something_that_is_not_an_adk_agent_is_refused_saying_what_is_expected(tmp_path: Path) -> None:
    from google.adk.agents import LlmAgent

    with pytest.raises(ConfigurationError, match="expected a Google ADK agent .* not object"):
        agent_function(object())
    with pytest.raises(ConfigurationError, match="not the class LlmAgent: create one"):
        agent_function(LlmAgent)
    with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        with pytest.raises(ConfigurationError, match="Google ADK agent or App"):
            runtime.start(object(), "hi")  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError, match="on a prompt \\(text\\), not dict"):
            runtime.start(LlmAgent(name="x", model="gemini-2.5-flash"), {"q": 1})


@pytest.mark.parametrize("swallowed", [False, True], ids=["raised", "caught-by-a-callback"])
def test_a_tool_whose_result_cannot_be_stored_fails_the_run_naming_the_tool(
    swallowed: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, agents: list[Any]
) -> None:
    """Also when an ``on_tool_error_callback`` hands the error to the model: the result is lost."""
    from google.adk.agents import LlmAgent

    def make_thing(name: str) -> object:
        """Make a thing."""
        return object()

    def answer_errors(**_: Any) -> dict[str, str]:
        return {"error": "try something else"}

    options = {"on_tool_error_callback": answer_errors} if swallowed else {}
    script = [[("make_thing", {"name": "a"})], "made", "made"]
    with _gemini(monkeypatch, script):
        agent = LlmAgent(name="maker", model="gemini-2.5-flash", tools=[make_thing], **options)
        agents.append(agent)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(agent, "make one")
    assert result.status is ExecutionStatus.FAILED
    assert result.error is not None and "tool 'make_thing' returned a value that cannot be recorded" in result.error


# --- a real crash -------------------------------------------------------------------------------------------
def _worker(url: str, fake: FakeOpenAIServer, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    env.update(AGENT_LOG=str(log), GOOGLE_GEMINI_BASE_URL=fake.gemini_base_url, GOOGLE_API_KEY="test")
    env.update(GOOGLE_GENAI_USE_ENTERPRISE="false", OTEL_SDK_DISABLED="true")
    env.pop("GOOGLE_GENAI_USE_VERTEXAI", None)
    env.pop("AGENTSPAN_SERVER_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "agentspan", "worker", "adk_program:researcher", "--server", url,
         "--lease-seconds", "2", "--poll-seconds", "1", "--max-executions", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _tools_done(client: HttpClient, execution_id: str) -> set[str]:
    return {
        str(step.input["arguments"]["query"])
        for step in client.get_journal(execution_id)
        if step.kind == "tool" and step.status is StepStatus.COMPLETED
    }


@pytest.mark.slow
def test_an_agent_killed_after_tool_call_18_of_20_resumes_at_19_in_a_fresh_worker(server: str, tmp_path: Path) -> None:
    """``agentspan worker`` processes: the first is SIGKILLed once 18 tool calls are recorded; the second
    repeats no completed model or tool call (at most the one in flight, with the same idempotency key),
    and the run ends with the session state of an uninterrupted run."""
    script = _calls_without_ids(
        FakeOpenAIServer.research_script(20, "search", lambda i: {"query": f"q{i + 1}"}, answer="compared")
    )
    log = tmp_path / "tools.log"
    name = "adk_researcher"
    with FakeOpenAIServer(script) as fake, HttpClient(server) as client:
        execution = client.create_execution(name, execution_input(adk_program.PROMPT))
        run = kill_after_and_resume(
            client, execution.id, fake, lambda: _worker(server, fake, log), lambda: _tools_done(client, execution.id)
        )
        total_requests = fake.request_count
        calm = client.create_execution(name, execution_input(adk_program.PROMPT), idempotency_key="calm")
        third = _worker(server, fake, tmp_path / "calm.log")
        wait_until(lambda: client.get_execution(calm.id).status.is_terminal, "the uninterrupted run")
        stop(third)
        uninterrupted = client.get_execution(calm.id)

    final = run.final
    assert final.status is ExecutionStatus.COMPLETED, final.error
    assert final.output["output"] == "compared"
    lines = [line.split("\t") for line in log.read_text().splitlines()]
    runs = collections.Counter(query for query, _, _ in lines)
    assert set(runs) == {f"q{i}" for i in range(1, 21)}
    for query in run.done_at_kill:
        assert runs[query] == 1, f"tool call {query} completed before the kill but ran again"
    again = [query for query, count in runs.items() if count > 1]
    assert len(again) <= 1, f"only the call in flight at the kill may run again, not {again}"
    for query in again:
        assert len({key for q, key, _ in lines if q == query}) == 1, "the call in flight ran again with the same key"
    assert all(count == 1 for count in model_turns(run.requests_before).values()), "worker 1 asked for no turn twice"
    resumed_turns = model_turns(run.requests_after)
    assert resumed_turns and min(resumed_turns) > len(run.done_at_kill), f"turns asked again: {sorted(resumed_turns)}"
    assert total_requests <= 21 + 1, "every model turn was requested once (plus at most the one in flight)"
    assert len({pid for _, _, pid in lines}) == 2, "two worker processes ran the tools"
    assert final.output["state"] == {
        "searched": [f"q{i}" for i in range(1, 21)], "responses_seen": 21, "results_seen": 20,
    }  # fmt: skip
    assert uninterrupted.status is ExecutionStatus.COMPLETED
    assert _comparable(final.output, _tag(final.output)) == _comparable(
        uninterrupted.output, _tag(uninterrupted.output)
    )


# --- the CLI, deploy, streaming ----------------------------------------------------------------------------
def _env(fake: FakeOpenAIServer, log: Path) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    env.update(AGENT_LOG=str(log), GOOGLE_GEMINI_BASE_URL=fake.gemini_base_url, GOOGLE_API_KEY="test")
    env.update(GOOGLE_GENAI_USE_ENTERPRISE="false", OTEL_SDK_DISABLED="true")
    env.pop("GOOGLE_GENAI_USE_VERTEXAI", None)
    env.pop("AGENTSPAN_SERVER_URL", None)
    return env


def test_agentspan_run_runs_an_adk_agent_named_by_module_and_attribute(tmp_path: Path) -> None:
    script = _calls_without_ids([[("search", {"query": "durable"})], "Durable execution records every step."])
    log = tmp_path / "tools.log"
    with FakeOpenAIServer(script) as fake:
        done = subprocess.run(
            [sys.executable, "-m", "agentspan", "run", "adk_program:researcher", "compare", "--db", str(tmp_path / "a.db")],
            env=_env(fake, log), capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "Durable execution records every step." in done.stdout
    assert "tool calls: 1" in done.stdout
    assert [line.split("\t")[0] for line in log.read_text().splitlines()] == ["durable"]


@pytest.mark.filterwarnings("ignore:SequentialAgent is deprecated:DeprecationWarning")
def test_deploy_registers_an_adk_agent_tree_with_its_models_and_tools(tmp_path: Path) -> None:
    from google.adk.agents import LlmAgent, SequentialAgent
    from google.adk.apps import App

    helper = adk_program.make_researcher("helper")
    pipeline = SequentialAgent(name="pipeline", sub_agents=[helper, LlmAgent(name="writer", model="gemini-2.5-flash")])
    with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        definition = runtime.deploy(App(name="reports", root_agent=pipeline))
    assert definition.name == "reports" and definition.kind == "agent"
    assert definition.spec == {
        "framework": "google-adk", "kind": "app", "name": "pipeline", "type": "SequentialAgent", "model": None,
        "tools": [], "sub_agents": [
            {"name": "helper", "type": "LlmAgent", "model": "gemini-2.5-flash", "tools": ["search"], "sub_agents": []},
            {"name": "writer", "type": "LlmAgent", "model": "gemini-2.5-flash", "tools": [], "sub_agents": []},
        ],
    }  # fmt: skip


def test_a_streamed_call_yields_its_partial_responses_live_and_a_replayed_one_its_final_response_once(
    monkeypatch: pytest.MonkeyPatch, service: Service, agents: list[Any]
) -> None:
    from google.adk.agents.callback_context import CallbackContext
    from google.adk.agents.run_config import RunConfig, StreamingMode
    from google.adk.models.llm_response import LlmResponse

    seen: list[list[bool]] = [[]]  # per attempt: whether each response the callback saw was partial

    def watch(*, callback_context: CallbackContext, llm_response: LlmResponse) -> None:
        seen[-1].append(bool(llm_response.partial))

    ran: list[str] = []
    intro = "Let me look up the weather in each of the three cities one after the other for you."
    first = ModelResponse(
        message=Message(role="assistant", content=intro, tool_calls=[ToolCall(id="", name="get_weather",
                                                                              arguments='{"city": "Paris"}')])
    )  # fmt: skip
    script = [first, [("get_weather", {"city": "Rome"})], "Sunny in Paris and Rome."]
    with _gemini(monkeypatch, _calls_without_ids(script)) as fake:
        agent = _weather_agent(agents, ran, crash_at=("Rome", 1), after_model_callback=watch)
        fn = agent_function(agent, run_config=RunConfig(streaming_mode=StreamingMode.SSE, max_llm_calls=10))
        execution = service.create_execution("weather", execution_input("Weather?"))
        worker = Worker(service, [fn], lease_seconds=30)
        with pytest.raises(Crash):
            worker.run_once()
        assert service.expire_leases([worker.worker_id])
        seen.append([])
        assert Worker(service, [fn], lease_seconds=30).run_once()
        requests = fake.requests
    done = service.get_execution(execution.id)
    assert done.status is ExecutionStatus.COMPLETED, done.error
    assert done.output["output"] == "Sunny in Paris and Rome."
    assert ran == ["Paris", "Rome", "Rome"] and done.output["state"]["visited"] == ["Paris", "Rome"]
    assert all(request["stream"] for request in requests)
    assert model_turns(requests) == collections.Counter({1: 1, 2: 1, 3: 1}), "no model turn was asked twice"
    live, resumed = seen
    assert live.count(True) > 1 and live[:2] == [True, True], "the first call's text streamed in parts"
    assert resumed[:2] == [False, False], "each replayed call yields its final response, not its parts"
    assert resumed[2:].count(True) > 0, "the live call after the resume streams again"
    first_text = done.output["events"][1]["content"]["parts"][0]["text"]
    assert first_text == intro


def test_an_app_runs_with_its_plugins_which_see_replayed_model_and_tool_calls_as_live_ones(
    monkeypatch: pytest.MonkeyPatch, service: Service, agents: list[Any]
) -> None:
    from google.adk.apps import App
    from google.adk.plugins.base_plugin import BasePlugin

    class Counting(BasePlugin):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__(name="counting")
            self.seen: list[str] = []

        async def after_model_callback(self, *, callback_context: Any, llm_response: Any) -> None:
            self.seen.append("model")

        async def after_tool_callback(self, *, tool: Any, tool_args: Any, tool_context: Any, result: Any) -> None:
            self.seen.append(f"tool {tool_args['city']}")

    plugin = Counting()
    ran: list[str] = []
    with _gemini(monkeypatch, _weather_script(2, ids=False)):
        app = App(name="weather_app", root_agent=_weather_agent(agents, ran, crash_at=("Rome", 1)), plugins=[plugin])
        execution_id = _run_crashing(service, agent_function(app), "Weather?")
    done = service.get_execution(execution_id)
    assert done.status is ExecutionStatus.COMPLETED, done.error
    assert done.name == "weather_app"
    assert ran == ["Paris", "Rome", "Rome"]
    # The first attempt: model, Paris, model, then the crash in Rome; the second replays all of them.
    assert plugin.seen == ["model", "tool Paris", "model"] + ["model", "tool Paris", "model", "tool Rome", "model"]
    assert done.output["state"] == {"visited": ["Paris", "Rome"]}


# AgentTool runs its agent with a Runner given plugins=, which ADK 2.x itself deprecates.
@pytest.mark.filterwarnings("ignore:The `plugins` argument is deprecated:DeprecationWarning")
def test_an_agent_tool_runs_its_agent_as_nested_steps_and_a_replay_of_it_keeps_the_ids_after_it(
    monkeypatch: pytest.MonkeyPatch, service: Service, agents: list[Any]
) -> None:
    """A replayed ``AgentTool`` does not run its agent, which drew ids when it ran: the calls after it
    still get the ids they had, so their records are found (the tool in ``Paris`` does not run again)."""
    from google.adk.agents import LlmAgent
    from google.adk.tools.agent_tool import AgentTool

    ran: list[str] = []
    helper = _weather_agent(agents, ran, name="helper")
    helper.instruction = "You are the helper."
    outer = _weather_agent(agents, ran, crash_at=("Rome", 1))
    outer.tools.append(AgentTool(agent=helper))
    assert isinstance(outer, LlmAgent)
    script = [[("helper", {"request": "Oslo?"})], [("get_weather", {"city": "Paris"})],
              [("get_weather", {"city": "Rome"})], "All sunny."]  # fmt: skip
    inner = [[("get_weather", {"city": "Oslo"})], "Oslo is sunny."]
    with FakeOpenAIServer(
        _calls_without_ids(script), routes={"You are the helper.": _calls_without_ids(inner)}
    ) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.gemini_base_url)
        monkeypatch.setenv("GOOGLE_API_KEY", "test")
        monkeypatch.setenv("GOOGLE_GENAI_USE_ENTERPRISE", "false")
        execution_id = _run_crashing(service, agent_function(outer), "Weather?")
        requests = fake.requests
    done = service.get_execution(execution_id)
    assert done.status is ExecutionStatus.COMPLETED, done.error
    assert ran == ["Oslo", "Paris", "Rome", "Rome"], "only the call in flight at the crash ran again"
    assert len(requests) == 6, "no model call was asked twice"
    journal = service.get_journal(execution_id)
    [agent_step] = [step for step in journal if step.kind == "tool" and step.name == "helper"]
    nested = [(step.kind, step.name) for step in journal if step.parent == agent_step.key]
    assert nested == [("llm", "gemini-2.5-flash"), ("tool", "get_weather"), ("llm", "gemini-2.5-flash")]


class Report(BaseModel):
    city: str
    weather: str


def test_an_agent_with_an_output_schema_returns_its_answer_as_structured_output(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, agents: list[Any]
) -> None:
    """The request's schema is a class, which pydantic cannot dump as JSON: it is keyed by its JSON schema."""
    from google.adk.agents import LlmAgent

    with _gemini(monkeypatch, ['{"city": "Paris", "weather": "sunny"}']):
        agent = LlmAgent(name="reporter", model="gemini-2.5-flash", output_schema=Report, output_key="report")
        agents.append(agent)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(agent, "Weather in Paris?")
            [step] = runtime.client.get_journal(result.execution_id)
            state = runtime.client.get_execution(result.execution_id).output["state"]
    assert result.is_success, result.error
    assert result.structured == {"city": "Paris", "weather": "sunny"}
    assert state == {"report": {"city": "Paris", "weather": "sunny"}}
    assert step.input["config"]["response_schema"]["schema"] == Report.model_json_schema()


def test_parallel_calls_of_one_response_are_keyed_by_call_id_and_a_crash_in_one_repeats_only_it(
    monkeypatch: pytest.MonkeyPatch, service: Service, agents: list[Any]
) -> None:
    ran: list[str] = []
    script = [[("get_weather", {"city": city}) for city in CITIES], "All sunny."]
    with _gemini(monkeypatch, _calls_without_ids(script)) as fake:
        agent = _weather_agent(agents, ran, crash_at=("Oslo", 1))
        execution_id = _run_crashing(service, agent_function(agent), "Weather?")
        requests = fake.requests
    done = service.get_execution(execution_id)
    assert done.status is ExecutionStatus.COMPLETED, done.error
    assert collections.Counter(ran) == {"Paris": 1, "Rome": 1, "Oslo": 2}
    assert sorted(done.output["state"]["visited"]) == sorted(CITIES)
    assert model_turns(requests) == collections.Counter({1: 1, 2: 1})
    tools = [step for step in service.get_journal(execution_id) if step.kind == "tool"]
    assert len(tools) == 3 and len({step.input["call_id"] for step in tools}) == 3


def test_a_tool_runs_only_once_the_model_response_that_asked_for_it_is_recorded(
    service: Service, agents: list[Any]
) -> None:
    """Else a crash in between would ask the model again while the tool's record of the first answer
    replays. The model is a user-defined class (patched when the run starts) that goes on working after
    its last response, so the tools would run first if that response were handed on at once."""
    from google.adk.agents import LlmAgent
    from google.adk.models.base_llm import BaseLlm
    from google.adk.models.llm_response import LlmResponse
    from google.genai import types

    from agentspan.durable import current_step

    class SlowToClose(BaseLlm):  # type: ignore[misc]
        model: str = "slow-to-close"

        async def generate_content_async(self, llm_request: Any, stream: bool = False) -> Any:
            answered = sum(1 for c in llm_request.contents for p in c.parts or [] if p.function_response)
            if answered < 2:
                call = types.FunctionCall(name="look", args={"query": "ab"[answered]})
                yield LlmResponse(content=types.Content(role="model", parts=[types.Part(function_call=call)]))
            else:
                yield LlmResponse(content=types.Content(role="model", parts=[types.Part(text="done")]))
            for _ in range(20):  # closing connections, say
                await asyncio.sleep(0)

    seen: list[list[StepStatus]] = []

    def look(query: str) -> str:
        """Look something up."""
        step = current_step()
        assert step is not None
        seen.append([s.status for s in service.get_journal(step.execution_id) if s.kind == "llm"])
        return "found"

    agent = LlmAgent(name="looker", model=SlowToClose(), tools=[look])
    service.create_execution("looker", execution_input("look twice"))
    assert Worker(service, [agent_function(agent)]).run_once()
    journal = service.get_journal(service.list_executions(name="looker").items[0].id)
    assert [(step.kind, step.name) for step in journal][:2] == [("llm", "slow-to-close"), ("tool", "look")]
    assert seen == [[StepStatus.COMPLETED], [StepStatus.COMPLETED] * 2]


@pytest.mark.filterwarnings("ignore:SequentialAgent is deprecated:DeprecationWarning")
def test_a_sequential_agent_that_crashed_in_its_second_agent_replays_the_first_and_ends_as_an_uninterrupted_run(
    monkeypatch: pytest.MonkeyPatch, service: Service, agents: list[Any]
) -> None:
    from google.adk.agents import SequentialAgent

    def pipeline(ran: list[str], name: str, crash: bool) -> Any:
        first = _weather_agent(agents, ran, name="forecaster")
        first.instruction, first.output_key = "You forecast.", "forecast"
        second = _weather_agent(agents, ran, name="checker", crash_at=("Rome", 1) if crash else None)
        second.instruction = "You check."
        return SequentialAgent(name=name, sub_agents=[first, second])

    forecast = [[("get_weather", {"city": "Paris"})], "Paris: sunny."]
    check = [[("get_weather", {"city": "Rome"})], "Checked: sunny."]
    routes = {"You forecast.": _calls_without_ids(forecast), "You check.": _calls_without_ids(check)}
    ran: list[str] = []
    with FakeOpenAIServer(["unused"], routes=routes) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.gemini_base_url)
        monkeypatch.setenv("GOOGLE_API_KEY", "test")
        monkeypatch.setenv("GOOGLE_GENAI_USE_ENTERPRISE", "false")
        crashed_id = _run_crashing(service, agent_function(pipeline(ran, "pipeline", True)), "Weather?")
        requests = fake.request_count
        calm = service.create_execution("calm", execution_input("Weather?"))
        assert Worker(service, [agent_function(pipeline([], "pipeline", False), "calm")]).run_once()
    crashed, uninterrupted = service.get_execution(crashed_id), service.get_execution(calm.id)
    assert crashed.status is ExecutionStatus.COMPLETED, crashed.error
    assert ran == ["Paris", "Rome", "Rome"]
    assert requests == 4, "no model call was asked twice"
    assert crashed.output["output"] == "Checked: sunny."
    assert crashed.output["state"] == {"visited": ["Paris", "Rome"], "forecast": "Paris: sunny."}
    assert _comparable(crashed.output, _tag(crashed.output)) == _comparable(
        uninterrupted.output, _tag(uninterrupted.output)
    )


def test_the_output_is_the_agents_last_text_never_the_users_own_message() -> None:
    from google.adk.events import Event
    from google.genai import types

    from agentspan.adapters.google_adk._agent import run_output

    def said(author: str, text: str) -> Event:
        return Event(author=author, content=types.Content(role="user" if author == "user" else "model",
                                                          parts=[types.Part(text=text)]))  # fmt: skip

    assert run_output(None, [said("user", "pay my bill")], {})["output"] == ""
    assert run_output(None, [said("user", "pay my bill"), said("billing", "paid")], {})["output"] == "paid"

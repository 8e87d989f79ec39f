"""The drop-in ``Runner`` / ``InMemoryRunner`` for Google ADK (each ``run_async`` call a durable
execution, its events appended to the caller's session once) and ``DurablePlugin``. The model is ADK's
default Gemini model against the test's ``FakeOpenAIServer``."""

from __future__ import annotations

import asyncio
import collections
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.adk")

from google.adk.agents import LlmAgent
from google.adk.apps import App
from google.adk.runners import InMemoryRunner as AdkInMemoryRunner
from google.adk.runners import Runner as AdkRunner
from google.adk.sessions import InMemorySessionService
from google.adk.sessions.sqlite_session_service import SqliteSessionService
from google.adk.tools.tool_context import ToolContext
from google.genai import types
from processes import TESTS, model_turns, wait_until

import agentspan.adapters.google_adk as adk
from agentspan import durable
from agentspan.durable import Runtime
from agentspan.errors import ConfigurationError
from agentspan.runtime import ExecutionStatus, Service, SQLiteStore, StepStatus
from agentspan.testing import FakeOpenAIServer
from agentspan.worker._aio import run_async

pytestmark = pytest.mark.filterwarnings(
    # google-genai's async client subclasses aiohttp's ClientSession, which aiohttp warns about.
    "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning"
)

CITIES = ["Paris", "Rome", "Oslo"]
GEMINI_ENV = {"GOOGLE_API_KEY": "test", "GOOGLE_GENAI_USE_ENTERPRISE": "false"}


@contextmanager
def _gemini(monkeypatch: pytest.MonkeyPatch, script: list[Any], **options: Any) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(script, **options) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.gemini_base_url)
        for name, value in GEMINI_ENV.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
        yield fake


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Runtime]:
    """The drop-in Runner's runtime: embedded, in a fresh SQLite file."""
    found = Runtime(db=tmp_path / "runner.db", lease_seconds=30)
    adk.use_runtime(found)
    try:
        yield found
    finally:
        found.close()


@pytest.fixture
def agents() -> Iterator[list[Any]]:
    """Agents run by the drop-in (on the workers' event loop): their Gemini clients are closed after."""
    made: list[Any] = []
    yield made
    for agent in made:
        run_async(agent.canonical_model.api_client.aio.aclose())


def _weather_agent(ran: list[str], name: str = "weather") -> LlmAgent:
    def get_weather(city: str, tool_context: ToolContext) -> dict[str, str]:
        """The weather in a city."""
        ran.append(city)
        tool_context.state["visited"] = [*tool_context.state.get("visited", []), city]
        return {"city": city, "weather": "sunny"}

    return LlmAgent(name=name, model="gemini-2.5-flash", instruction="Answer about the weather.", tools=[get_weather])


def _message(text: str) -> types.Content:
    return types.Content(role="user", parts=[types.Part(text=text)])


def _comparable(events: list[Any]) -> list[dict[str, Any]]:
    """What an event says (author, content, actions), without what differs between runs (ids, times)."""
    found = []
    for event in events:
        dumped = event.model_dump(mode="json", exclude_none=True)
        found.append({key: dumped.get(key) for key in ("author", "content", "actions", "partial")})
    return found


async def _run(runner: Any, text: str, session_id: str = "s1") -> list[Any]:
    if await runner.session_service.get_session(app_name=runner.app_name, user_id="u1", session_id=session_id) is None:
        await runner.session_service.create_session(app_name=runner.app_name, user_id="u1", session_id=session_id)
    return [e async for e in runner.run_async(user_id="u1", session_id=session_id, new_message=_message(text))]


async def _session(runner: Any, session_id: str = "s1") -> Any:
    return await runner.session_service.get_session(app_name=runner.app_name, user_id="u1", session_id=session_id)


class Crash(BaseException):
    """Stands for the process dying in a tool: nothing catches it, the step stays in doubt."""


# --- the same events as ADK's own Runner -------------------------------------------------------------------
def test_the_drop_in_runner_yields_the_events_of_adks_runner_each_call_a_durable_execution(
    monkeypatch: pytest.MonkeyPatch, runtime: Runtime, agents: list[Any]
) -> None:
    script = FakeOpenAIServer.research_script(3, "get_weather", lambda i: {"city": CITIES[i]}, answer="All sunny.")
    plain_ran: list[str] = []
    ran: list[str] = []

    async def plain() -> tuple[list[Any], Any]:
        agent = _weather_agent(plain_ran)
        runner = AdkInMemoryRunner(agent=agent, app_name="weather")
        try:
            return await _run(runner, "Weather?"), await _session(runner)
        finally:
            await agent.canonical_model.api_client.aio.aclose()

    with _gemini(monkeypatch, script):
        expected, expected_session = asyncio.run(plain())
    with _gemini(monkeypatch, script) as fake:
        agent = _weather_agent(ran)
        agents.append(agent)
        runner = adk.InMemoryRunner(agent=agent, app_name="weather")
        events = asyncio.run(_run(runner, "Weather?"))
        session = asyncio.run(_session(runner))
        requests = fake.requests
    assert isinstance(runner, AdkInMemoryRunner) and isinstance(runner, AdkRunner)
    assert ran == plain_ran == CITIES
    assert _comparable(events) == _comparable(expected), "ADK's events: function calls, responses, text"
    assert [e.get_function_calls()[0].name for e in events if e.get_function_calls()] == ["get_weather"] * 3
    assert events[-1].content.parts[0].text == "All sunny."
    assert model_turns(requests) == collections.Counter({1: 1, 2: 1, 3: 1, 4: 1})
    assert _comparable(session.events) == _comparable(expected_session.events), "the session got the run's events"
    assert [e.id for e in session.events][1:] == [e.id for e in events], "the ones yielded, once each"
    assert session.state == expected_session.state == {"visited": CITIES}
    [execution] = runtime.client.list_executions(name="weather").items
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert execution.input == {
        "app_name": "weather",
        "user_id": "u1",
        "session_id": "s1",
        "after": None,
        "message": {"parts": [{"text": "Weather?"}], "role": "user"},
        "state_delta": None,
        "invocation_id": None,
    }
    kinds = [(step.kind, step.status) for step in runtime.client.get_journal(execution.id)]
    assert kinds == [("llm", StepStatus.COMPLETED), ("tool", StepStatus.COMPLETED)] * 3 + [
        ("llm", StepStatus.COMPLETED)
    ]


def test_the_sync_run_and_a_second_message_in_the_session_are_calls_of_their_own(
    monkeypatch: pytest.MonkeyPatch, runtime: Runtime, agents: list[Any]
) -> None:
    """The same message sent again in the same session is a new call (the session grew), not a resume."""
    ran: list[str] = []
    with _gemini(monkeypatch, ["Hi!", "Hi again!"]):
        agent = _weather_agent(ran)
        agents.append(agent)
        sessions = InMemorySessionService()
        runner = adk.Runner(agent=agent, app_name="chat", session_service=sessions)
        asyncio.run(sessions.create_session(app_name="chat", user_id="u1", session_id="s1"))
        first = list(runner.run(user_id="u1", session_id="s1", new_message=_message("hello")))
        second = list(runner.run(user_id="u1", session_id="s1", new_message=_message("hello")))
        session = asyncio.run(_session(runner))
    assert [e.content.parts[0].text for e in first + second] == ["Hi!", "Hi again!"]
    assert [e.author for e in session.events] == ["user", "weather", "user", "weather"]
    assert len({e.id for e in session.events}) == 4
    executions = runtime.client.list_executions(name="chat").items
    assert sorted(e.input["after"] is None for e in executions) == [False, True]
    assert all(e.status is ExecutionStatus.COMPLETED for e in executions)


def test_in_streaming_mode_partial_events_reach_the_caller_live_and_the_session_keeps_only_final_ones(
    monkeypatch: pytest.MonkeyPatch, runtime: Runtime, agents: list[Any]
) -> None:
    from google.adk.agents.run_config import RunConfig, StreamingMode

    answer = "It is sunny in Paris today, with a light breeze from the west and no rain expected at all."
    with _gemini(monkeypatch, [answer]) as fake:
        agent = _weather_agent([])
        agents.append(agent)
        runner = adk.InMemoryRunner(agent=agent, app_name="weather")
        asyncio.run(runner.session_service.create_session(app_name="weather", user_id="u1", session_id="s1"))
        events = list(
            runner.run(
                user_id="u1",
                session_id="s1",
                new_message=_message("Weather?"),
                run_config=RunConfig(streaming_mode=StreamingMode.SSE),
            )
        )
        session = asyncio.run(_session(runner))
        requests = fake.requests
    assert all(request["stream"] for request in requests), "the caller's run_config reached ADK's Runner"
    partial = [e for e in events if e.partial]
    assert len(partial) > 1 and "".join(e.content.parts[0].text for e in partial) == answer
    assert not events[-1].partial and events[-1].content.parts[0].text == answer
    assert [bool(e.partial) for e in session.events] == [False, False], "the user's message and the final answer"


def test_bad_calls_are_refused_saying_what_to_do(
    monkeypatch: pytest.MonkeyPatch, runtime: Runtime, agents: list[Any]
) -> None:
    from google.adk.errors.session_not_found_error import SessionNotFoundError

    agent = _weather_agent([])
    runner = adk.InMemoryRunner(agent=agent, app_name="weather")

    async def call(**options: Any) -> None:
        async for _ in runner.run_async(user_id="u1", session_id="nope", **options):
            pass

    with pytest.raises(SessionNotFoundError, match="create_session"):
        asyncio.run(call(new_message=_message("hi")))
    with pytest.raises(ConfigurationError, match="abort_signal"):
        asyncio.run(call(new_message=_message("hi"), abort_signal=asyncio.Event()))
    with pytest.raises(ValueError, match="new_message or an invocation_id"):
        asyncio.run(call())
    assert runtime.client.list_executions(name="weather").items == []


def test_a_call_that_ended_before_its_events_were_kept_is_not_run_again_its_events_are_kept(
    monkeypatch: pytest.MonkeyPatch, runtime: Runtime, agents: list[Any]
) -> None:
    """The process died after the execution completed and before the session got its events: the same
    call again keeps the recorded events, asking the model nothing."""
    import agentspan.adapters.google_adk._runner as runner_module

    kept = runner_module._append_new

    async def dies(*args: Any) -> None:
        raise Crash("died before the events were appended")

    ran: list[str] = []
    script = FakeOpenAIServer.research_script(1, "get_weather", lambda i: {"city": CITIES[i]}, answer="Sunny.")
    with _gemini(monkeypatch, script) as fake:
        agent = _weather_agent(ran)
        agents.append(agent)
        runner = adk.InMemoryRunner(agent=agent, app_name="weather")
        monkeypatch.setattr(runner_module, "_append_new", dies)
        with pytest.raises(Crash):
            asyncio.run(_run(runner, "Weather?"))
        assert asyncio.run(_session(runner)).events == []
        monkeypatch.setattr(runner_module, "_append_new", kept)
        requests_before = fake.request_count
        events = asyncio.run(_run(runner, "Weather?"))
        session = asyncio.run(_session(runner))
        assert fake.request_count == requests_before, "the model was not asked again"
    assert ran == ["Paris"]
    assert [e.author for e in events] == ["user", "weather", "weather", "weather"]
    assert [e.id for e in session.events] == [e.id for e in events]
    assert session.state == {"visited": ["Paris"]}
    [execution] = runtime.client.list_executions(name="weather").items
    assert execution.status is ExecutionStatus.COMPLETED


def test_a_call_nobody_waits_for_is_run_by_the_worker_which_keeps_its_events(
    monkeypatch: pytest.MonkeyPatch, runtime: Runtime, agents: list[Any]
) -> None:
    """An unfinished call whose caller is gone (its process died, and another copy of the program runs a
    different call) is run by this process's worker, with the runner's services."""
    from agentspan.adapters.google_adk._runner import call_input, runner_function

    ran: list[str] = []
    script = FakeOpenAIServer.research_script(1, "get_weather", lambda i: {"city": CITIES[i]}, answer="Sunny.")
    with _gemini(monkeypatch, script):
        agent = _weather_agent(ran)
        agents.append(agent)
        runner = adk.InMemoryRunner(agent=agent, app_name="weather")
        session = asyncio.run(runner.session_service.create_session(app_name="weather", user_id="u1", session_id="s1"))
        data = call_input("weather", "u1", session, _message("Weather?"))
        execution = runtime.client.create_execution("weather", data)
        runtime.ensure_worker(runner_function(runner))
        wait_until(lambda: runtime.client.get_execution(execution.id).status.is_terminal, "the run")
        session = asyncio.run(_session(runner))
    assert runtime.client.get_execution(execution.id).status is ExecutionStatus.COMPLETED
    assert ran == ["Paris"]
    assert [e.author for e in session.events] == ["user", "weather", "weather", "weather"]
    assert session.state == {"visited": ["Paris"]}


# --- ADK's documented examples, with only the import changed ---------------------------------------------
QUICKSTART_ROUTES = {
    "answer questions about the time and weather": [
        [("get_weather", {"city": "New York"}), ("get_current_time", {"city": "New York"})],
        "It is sunny in New York.",
    ],
    "You are the main Weather Agent": [[("transfer_to_agent", {"agent_name": "greeting_agent"})]],
    "You are the Greeting Agent": [[("say_hello", {"name": "Ana"})], "Hello, Ana!"],
}
TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d")


def _printed(stdout: str) -> list[dict[str, Any]]:
    events = [json.loads(line) for line in stdout.splitlines()]
    return [
        json.loads(TIME.sub("TIME", json.dumps({key: e.get(key) for key in ("author", "content", "actions")})))
        for e in events
    ]


def test_adks_quickstart_and_agent_team_examples_run_with_only_the_import_changed(tmp_path: Path) -> None:
    source = (TESTS / "adk_quickstart.py").read_text()
    original = "from google.adk.runners import Runner\n"
    assert original in source
    changed = tmp_path / "adk_quickstart_durable.py"
    changed.write_text(source.replace(original, "from agentspan.adapters.google_adk import Runner\n"))
    db = tmp_path / "quickstart.db"
    with FakeOpenAIServer(["unused"], routes=QUICKSTART_ROUTES) as fake:
        env = {**os.environ, **GEMINI_ENV, "PYTHONPATH": os.pathsep.join([os.getcwd(), str(TESTS)])}
        env.update(GOOGLE_GEMINI_BASE_URL=fake.gemini_base_url, AGENTSPAN_DB=str(db))
        env.pop("GOOGLE_GENAI_USE_VERTEXAI", None)
        env.pop("AGENTSPAN_SERVER_URL", None)
        runs = [
            subprocess.run([sys.executable, str(program)], env=env, capture_output=True, text=True, timeout=180)
            for program in (TESTS / "adk_quickstart.py", changed)
        ]
    for run in runs:
        assert run.returncode == 0, run.stderr
    plain, durable_run = (_printed(run.stdout) for run in runs)
    assert durable_run == plain
    authors = [e["author"] for e in plain]
    assert authors == ["weather_time_agent"] * 3 + ["weather_agent_v2"] * 2 + ["greeting_agent"] * 3
    assert plain[4]["actions"]["transfer_to_agent"] == "greeting_agent"
    assert plain[-1]["content"]["parts"] == [{"text": "Hello, Ana!"}]
    service = Service(SQLiteStore(db))
    try:
        executions = {e.name: e for e in service.list_executions().items}
        assert set(executions) == {"weather_tutorial_app", "weather_team_app"}
        assert all(e.status is ExecutionStatus.COMPLETED for e in executions.values())
        team = [(s.kind, s.name) for s in service.get_journal(executions["weather_team_app"].id)]
    finally:
        service.close()
    assert team == [
        ("llm", "gemini-2.0-flash"),
        ("tool", "transfer_to_agent"),
        ("llm", "gemini-2.0-flash"),
        ("tool", "say_hello"),
        ("llm", "gemini-2.0-flash"),
    ]


# --- a crash: the program runs again and resumes ---------------------------------------------------------
def test_a_program_using_the_drop_in_runner_killed_after_tool_call_18_resumes_when_run_again(tmp_path: Path) -> None:
    """And its persistent session (ADK's SqliteSessionService) ends with each event once."""
    script = FakeOpenAIServer.research_script(20, "search", lambda i: {"query": f"q{i + 1}"}, answer="compared")
    log, db, sessions_db = tmp_path / "tools.log", tmp_path / "program.db", tmp_path / "sessions.db"
    with FakeOpenAIServer(script) as fake:
        env = {**os.environ, **GEMINI_ENV, "PYTHONPATH": os.pathsep.join([os.getcwd(), str(TESTS)])}
        env.update(GOOGLE_GEMINI_BASE_URL=fake.gemini_base_url, AGENT_LOG=str(log), AGENTSPAN_DB=str(db))
        env.update(ADK_SESSIONS=str(sessions_db))
        env.pop("GOOGLE_GENAI_USE_VERTEXAI", None)
        env.pop("AGENTSPAN_SERVER_URL", None)
        program = [sys.executable, str(TESTS / "adk_runner_program.py")]
        first = subprocess.Popen(program, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        service = Service(SQLiteStore(db))
        try:
            wait_until(lambda: log.exists() and len(log.read_text().splitlines()) >= 18, "18 tool calls", 120)
            wait_until(lambda: _journal_tools(service) >= 18, "18 recorded tool calls")
            first.send_signal(signal.SIGKILL)
            first.wait()
            done_at_kill = _journal_tools(service)
            requests_at_kill = fake.request_count
            second = subprocess.run(program, env=env, capture_output=True, text=True, timeout=180)
            executions = service.list_executions(name="adk-runner-program").items
        finally:
            service.close()
        resumed_requests = fake.requests[requests_at_kill:]
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip() == "compared"
    assert [e.status for e in executions] == [ExecutionStatus.COMPLETED], "one execution, resumed"
    lines = [line.split("\t") for line in log.read_text().splitlines()]
    runs = collections.Counter(query for query, _, _ in lines)
    keys = {query: {key for q, key, _ in lines if q == query} for query in runs}
    assert all(len(found) == 1 and "-" not in found for found in keys.values()), f"one key per call: {keys}"
    assert set(runs) == {f"q{i}" for i in range(1, 21)}
    assert sorted(runs.values())[:done_at_kill] == [1] * done_at_kill
    assert sum(runs.values()) <= 20 + 1, "at most the one call in flight at the kill ran twice"
    resumed_turns = model_turns(resumed_requests)
    assert resumed_turns and min(resumed_turns) > done_at_kill, f"turns asked for again: {sorted(resumed_turns)}"

    async def stored() -> Any:
        return await SqliteSessionService(str(sessions_db)).get_session(
            app_name="adk-runner-program", user_id="u1", session_id="s1"
        )

    session = asyncio.run(stored())
    ids = [event.id for event in session.events]
    assert len(ids) == len(set(ids)) == 1 + 20 * 2 + 1, "the user's message, 20 calls and results, the answer"
    assert [e.author for e in session.events][:2] == ["user", "adk_runner_program"]
    assert session.state["searched"] == [f"q{i}" for i in range(1, 21)], "each tool's state change once"


def _journal_tools(service: Any) -> int:
    done = 0
    for execution in service.list_executions(name="adk-runner-program").items:
        done += sum(s.kind == "tool" and s.status is StepStatus.COMPLETED for s in service.get_journal(execution.id))
    return done


# --- DurablePlugin ---------------------------------------------------------------------------------------
def _without_ids(script: list[Any]) -> list[Any]:
    """``script`` with its function calls sent as Gemini sends them: without ids (ADK then draws them)."""
    from agentspan.agents import Message, ModelResponse, ToolCall

    found: list[Any] = []
    for turn in script:
        if isinstance(turn, list):
            calls = [ToolCall(id="", name=name, arguments=json.dumps(args)) for name, args in turn]
            turn = ModelResponse(message=Message(role="assistant", tool_calls=calls))
        found.append(turn)
    return found


@pytest.mark.parametrize("plugin", [True, False], ids=["with-plugin", "without"])
def test_an_app_with_the_durable_plugin_run_by_adks_runner_in_a_durable_function_resumes_after_a_crash(
    plugin: bool, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, agents: list[Any]
) -> None:
    """ADK's own Runner, inside a durable function: with the plugin every model and tool call is a step
    and ADK's function-call ids are deterministic, so a crash in a tool repeats only that tool."""
    from agentspan.worker import Worker

    ran: list[str] = []

    def get_weather(city: str) -> dict[str, str]:
        """The weather in a city."""
        ran.append(city)
        if ran == ["Paris", "Rome"]:
            raise Crash(city)
        return {"city": city, "weather": "sunny"}

    agent = LlmAgent(name="weather", model="gemini-2.5-flash", instruction="Weather.", tools=[get_weather])
    agents.append(agent)
    app = App(name="weather_app", root_agent=agent, plugins=[adk.DurablePlugin()] if plugin else [])

    @durable.function(name="plugin-run")
    async def answer(question: str) -> str:
        sessions = InMemorySessionService()
        await sessions.create_session(app_name="weather_app", user_id="u1", session_id="s1")
        runner = AdkRunner(app=app, session_service=sessions)
        text = ""
        async for event in runner.run_async(user_id="u1", session_id="s1", new_message=_message(question)):
            if event.is_final_response() and event.content and event.content.parts:
                text = event.content.parts[0].text or ""
        return text

    script = FakeOpenAIServer.research_script(3, "get_weather", lambda i: {"city": CITIES[i]}, answer="All sunny.")
    service = Service(SQLiteStore(tmp_path / "plugin.db"))
    try:
        with _gemini(monkeypatch, _without_ids(script)) as fake:
            execution = service.create_execution("plugin-run", {"question": "Weather?"})
            first = Worker(service, [answer], lease_seconds=30)
            with pytest.raises(Crash):
                first.run_once()
            assert service.expire_leases([first.worker_id])
            assert Worker(service, [answer], lease_seconds=30).run_once()
            requests = fake.requests
        final = service.get_execution(execution.id)
        journal = service.get_journal(execution.id)
    finally:
        service.close()
    assert final.status is ExecutionStatus.COMPLETED, final.error
    assert final.output == "All sunny."
    if not plugin:  # what the plugin adds: without it nothing is recorded, everything runs again
        assert journal == []
        assert ran == ["Paris", "Rome", "Paris", "Rome", "Oslo"]
        return
    assert ran == ["Paris", "Rome", "Rome", "Oslo"], "only the call in flight at the crash ran again"
    assert model_turns(requests) == collections.Counter({1: 1, 2: 1, 3: 1, 4: 1}), "no model turn asked twice"
    assert [(s.kind, s.status) for s in journal] == [
        ("llm", StepStatus.COMPLETED),
        ("tool", StepStatus.COMPLETED),
    ] * 3 + [("llm", StepStatus.COMPLETED)]
    tool_ids = [s.input["call_id"] for s in journal if s.kind == "tool"]
    assert all(call_id.startswith("adk-run-") for call_id in tool_ids), f"deterministic call ids: {tool_ids}"


def test_the_durable_plugin_does_nothing_outside_a_durable_function(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    script = FakeOpenAIServer.research_script(1, "get_weather", lambda i: {"city": CITIES[i]}, answer="Sunny.")
    ran: list[str] = []

    async def main() -> list[Any]:
        agent = _weather_agent(ran)
        app = App(name="weather_app", root_agent=agent, plugins=[adk.DurablePlugin()])
        try:
            return await _run(AdkInMemoryRunner(app=app), "Weather?")
        finally:
            await agent.canonical_model.api_client.aio.aclose()

    with _gemini(monkeypatch, _without_ids(script)):
        events = asyncio.run(main())
    assert ran == ["Paris"]
    [call] = events[0].get_function_calls()
    assert call.id.startswith("adk-") and not call.id.startswith("adk-as"), "ADK's own random ids"

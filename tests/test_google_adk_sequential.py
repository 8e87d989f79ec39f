"""A ``SequentialAgent`` of three agents killed (SIGKILL) in a real ``agentspan worker`` while its
second agent runs, resumed by a fresh worker: the first agent's calls do not run again, no completed
call repeats, and the session ends as an uninterrupted run's. And ``LiteLlm`` models: every model call
is a step with a stable key, a crash asks the model no turn twice, and litellm makes no network call
other than to the model server (``LITELLM_LOCAL_MODEL_COST_MAP=True``, else it fetches a cost map)."""

from __future__ import annotations

import os

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # before anything imports litellm

import collections
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.adk")

import adk_sequential_program as program
from processes import TESTS, model_turns, stop, wait_until
from test_fake_gemini import _Connections, connections  # noqa: F401 (a fixture)
from test_google_adk import UUID, Crash, _calls_without_ids, _comparable, _run_crashing, _tag
from test_google_adk_agents import _calls, _check_calls, _lines, _tools_done
from test_google_adk_agents import _comparable as _comparable_by_branch

from agentspan.adapters.google_adk import agent_function, execution_input
from agentspan.agents import AgentRuntime
from agentspan.client import HttpClient
from agentspan.runtime import ExecutionStatus, Service, StepStatus
from agentspan.testing import FakeOpenAIServer
from agentspan.worker import Worker

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning"
)

CALLS = {"scout": 3, "builder": 5, "checker": 3}
"""How many tool calls each stage makes."""


def _stage_script(name: str) -> list[Any]:
    return [*(_calls("survey", {"spot": f"{name}{i}"}) for i in range(1, CALLS[name] + 1)), f"{name} done."]


def _worker(url: str, fake: FakeOpenAIServer, log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    env.update(AGENT_LOG=str(log), GOOGLE_GEMINI_BASE_URL=fake.gemini_base_url, GOOGLE_API_KEY="test")
    env.update(GOOGLE_GENAI_USE_ENTERPRISE="false", OTEL_SDK_DISABLED="true")
    env.pop("GOOGLE_GENAI_USE_VERTEXAI", None)
    env.pop("AGENTSPAN_SERVER_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "agentspan", "worker", "adk_sequential_program:pipeline", "--server", url,
         "--lease-seconds", "2", "--poll-seconds", "1", "--max-executions", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:SequentialAgent is deprecated:DeprecationWarning")
def test_a_sequential_agent_killed_in_its_second_agent_resumes_there_repeating_no_completed_call(
    server: str, tmp_path: Path
) -> None:
    routes = {text: _stage_script(name) for name, text in program.STAGES.items()}
    log = tmp_path / "tools.log"
    with FakeOpenAIServer(["unused"], routes=routes) as fake, HttpClient(server) as client:
        execution = client.create_execution("pipeline", execution_input(program.PROMPT))
        first = _worker(server, fake, log)
        wait_until(lambda: "builder1" in _tools_done(client, execution.id), "the builder's first tool call")
        first.send_signal(signal.SIGKILL)
        first.wait()
        done = [s for s in client.get_journal(execution.id) if s.kind == "llm" and s.status is StepStatus.COMPLETED]
        at_kill = {"tools": _tools_done(client, execution.id), "models": len(done), "requests": fake.request_count}
        second = _worker(server, fake, log)
        wait_until(lambda: client.get_execution(execution.id).status.is_terminal, "the resumed run")
        stop(second)
        stop(first)
        at_kill["requests_after"] = fake.request_count - at_kill["requests"]
        calm = client.create_execution("pipeline", execution_input(program.PROMPT), idempotency_key="calm")
        third = _worker(server, fake, tmp_path / "calm.log")
        wait_until(lambda: client.get_execution(calm.id).status.is_terminal, "the uninterrupted run")
        stop(third)
        final, uninterrupted = client.get_execution(execution.id), client.get_execution(calm.id)
    assert final.status is ExecutionStatus.COMPLETED, final.error
    assert {f"scout{i}" for i in range(1, CALLS["scout"] + 1)} <= at_kill["tools"], "the first agent had finished"
    assert f"builder{CALLS['builder']}" not in at_kill["tools"], "the second agent was still running at the kill"
    assert not any(label.startswith("checker") for label in at_kill["tools"]), "the third had not started"
    runs = _check_calls(log, at_kill, sum(CALLS.values()) + len(CALLS), running=1)
    assert all(runs[f"scout{i}"] == 1 for i in range(1, CALLS["scout"] + 1)), "the first agent's calls ran once"
    assert set(runs) == {f"{name}{i}" for name, n in CALLS.items() for i in range(1, n + 1)}
    assert [line[0] for line in _lines(log)][: CALLS["scout"]] == ["scout1", "scout2", "scout3"]
    expected = {f"{name}_surveyed": [f"{name}{i}" for i in range(1, n + 1)] for name, n in CALLS.items()}
    assert final.output["state"] == expected
    assert final.output["output"] == "checker done."
    assert uninterrupted.status is ExecutionStatus.COMPLETED
    assert [e["author"] for e in final.output["events"]] == [e["author"] for e in uninterrupted.output["events"]]
    assert _comparable_by_branch(final.output) == _comparable_by_branch(uninterrupted.output)


# --- LiteLlm -----------------------------------------------------------------------------------------------
CITIES = ["Paris", "Rome", "Oslo"]


def _lite_agent(fake: FakeOpenAIServer, ran: list[str], crash_at: tuple[str, int] | None = None) -> Any:
    from google.adk.agents import LlmAgent
    from google.adk.models.lite_llm import LiteLlm
    from google.adk.tools.tool_context import ToolContext

    def get_weather(city: str, tool_context: ToolContext) -> dict[str, str]:
        """The weather in a city."""
        ran.append(city)
        if crash_at == (city, ran.count(city)):
            raise Crash(city)
        tool_context.state["visited"] = [*tool_context.state.get("visited", []), city]
        return {"city": city, "weather": "sunny"}

    model = LiteLlm(model="openai/gpt-4o-mini", api_base=fake.base_url, api_key="test")
    return LlmAgent(name="weather", model=model, instruction="Answer about the weather.", tools=[get_weather])


def _script(*, ids: bool = True) -> list[Any]:
    """Three weather calls and an answer; without ids, litellm hands ADK calls without ids, and ADK's id
    provider (deterministic in a run) names them."""
    script = FakeOpenAIServer.research_script(3, "get_weather", lambda i: {"city": CITIES[i]}, answer="All sunny.")
    return (
        script if ids else _calls_without_ids([[("get_weather", {"city": city})] for city in CITIES] + ["All sunny."])
    )


def test_a_litellm_agent_runs_through_runtime_run_each_model_call_a_step_keyed_without_uuids(
    tmp_path: Path,
    connections: _Connections,  # noqa: F811
) -> None:
    ran: list[str] = []
    with FakeOpenAIServer(_script()) as fake:
        agent = _lite_agent(fake, ran)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(agent, "Weather in Paris, Rome and Oslo?")
            journal = runtime.client.get_journal(result.execution_id)
        requests, port = fake.requests, fake.port
    assert result.is_success, result.error
    assert result.output == "All sunny."
    assert ran == CITIES
    kinds = [(step.kind, step.name) for step in journal]
    assert kinds == [("llm", "openai/gpt-4o-mini"), ("tool", "get_weather")] * 3 + [("llm", "openai/gpt-4o-mini")]
    assert all(step.status is StepStatus.COMPLETED for step in journal)
    for step in journal:
        assert not UUID.search(step.key), f"a random id in step key {step.key}"
    assert [step.input["call_id"] for step in journal if step.kind == "tool"] == ["call_1", "call_2", "call_3"]
    assert model_turns(requests) == collections.Counter({1: 1, 2: 1, 3: 1, 4: 1})
    assert all(request["model"] == "gpt-4o-mini" for request in requests)
    to_the_fake = {("socket.connect", ("127.0.0.1", port)), ("socket.getaddrinfo", "127.0.0.1")}
    assert connections.seen, "the watch saw the connections to the fake"
    assert set(connections.seen) - to_the_fake == set(), "no connection or name lookup other than to the fake"


def test_litellm_makes_no_network_call_at_import_with_its_local_cost_map(tmp_path: Path) -> None:
    """litellm fetches its model cost map from the internet at import unless told to use its own copy."""
    code = textwrap.dedent("""
        import sys
        seen = []
        sys.addaudithook(lambda e, a: seen.append((e, a[1] if e == "socket.connect" else a[0]))
                         if e in ("socket.connect", "socket.getaddrinfo") else None)
        import agentspan.adapters.google_adk
        from google.adk.models.lite_llm import LiteLlm
        import litellm
        LiteLlm(model="openai/gpt-4o-mini", api_base="http://127.0.0.1:9/v1", api_key="test")
        print(repr(seen))
    """)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "OTEL_SDK_DISABLED": "true"}
    found = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip().splitlines()[-1] == "[]", found.stdout


@pytest.mark.parametrize("ids", [True, False], ids=["model-ids", "no-ids"])
def test_a_litellm_agent_that_crashed_in_a_tool_resumes_asking_the_model_no_turn_twice(
    ids: bool, service: Service
) -> None:
    ran: list[str] = []
    calm_ran: list[str] = []
    with FakeOpenAIServer(_script(ids=ids)) as fake:
        crashed_id = _run_crashing(service, agent_function(_lite_agent(fake, ran, ("Rome", 1))), "Weather?")
        requests = fake.requests
        calm = service.create_execution("calm", execution_input("Weather?"))
        assert Worker(service, [agent_function(_lite_agent(fake, calm_ran), "calm")]).run_once()
    crashed, uninterrupted = service.get_execution(crashed_id), service.get_execution(calm.id)
    assert crashed.status is ExecutionStatus.COMPLETED, crashed.error
    assert ran == ["Paris", "Rome", "Rome", "Oslo"], "only the call in flight at the crash ran again"
    assert model_turns(requests) == collections.Counter({1: 1, 2: 1, 3: 1, 4: 1}), "no model turn was asked twice"
    assert crashed.output["state"] == {"visited": CITIES}
    journal = service.get_journal(crashed_id)
    for step in journal:
        assert not UUID.search(step.key), f"a random id in step key {step.key}"
    call_ids = [step.input["call_id"] for step in journal if step.kind == "tool"]
    assert call_ids == ["call_1", "call_2", "call_3"] if ids else all(i.startswith("adk-run-") for i in call_ids)
    assert _comparable(crashed.output, _tag(crashed.output)) == _comparable(
        uninterrupted.output, _tag(uninterrupted.output)
    )

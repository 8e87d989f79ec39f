"""Native agents: @tool, Agent validation, the durable loop on a scripted model, AgentRuntime."""

from __future__ import annotations

import asyncio
import collections
import threading
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agentspan.agents import Agent, AgentRuntime, ModelSettings, ToolContext, ToolDefinition, ToolError, tool
from agentspan.agents._loop import agent_function
from agentspan.errors import ConfigurationError
from agentspan.runtime import ExecutionStatus, Service, SQLiteStore, StepStatus
from agentspan.testing import ScriptedModel
from agentspan.worker import Worker

calls: collections.Counter[str] = collections.Counter()
contexts: list[ToolContext] = []


class Crash(BaseException):
    """Stands for the process dying."""


crash_on: set[str] = set()


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    contexts.clear()
    crash_on.clear()


@tool
def search_web(query: str, limit: int = 3) -> str:
    """Search the web for information.

    Args:
        query: What to look for.
        limit: How many results.
    """
    calls[query] += 1
    if query in crash_on:
        crash_on.discard(query)
        raise Crash(query)
    return f"{limit} results for {query}"


@tool(timeout=0.2)
async def slow_lookup(key: str, ctx: ToolContext) -> str:
    """Look something up slowly."""
    contexts.append(ctx)
    await asyncio.sleep(float(key))
    return f"value of {key}"


@tool
def broken(x: int) -> str:
    """Always fails."""
    raise ValueError(f"cannot handle {x}")


@tool
def refuse(x: int) -> str:
    """Refuses politely."""
    raise ToolError("not today")


@pytest.fixture
def runtime(db_path: Path) -> Any:
    rt = AgentRuntime(db=db_path, serve_http=False, lease_seconds=5)
    yield rt
    rt.close()


def _tool_turns(queries: list[str], final: str = "done") -> list[Any]:
    return [[("search_web", {"query": q})] for q in queries] + [final]


# --- @tool --------------------------------------------------------------------------------------------
def test_a_tool_schema_comes_from_type_hints_and_docstring() -> None:
    definition = ToolDefinition.of(search_web)
    assert definition.name == "search_web"
    assert definition.description == "Search the web for information."
    props = definition.parameters["properties"]
    assert props["query"] == {"type": "string", "description": "What to look for."}
    assert props["limit"]["default"] == 3 and props["limit"]["type"] == "integer"
    assert definition.parameters["required"] == ["query"]
    assert search_web("direct") == "3 results for direct", "the decorated function stays callable"


def test_the_context_parameter_is_injected_not_shown_to_the_model() -> None:
    definition = ToolDefinition.of(slow_lookup)
    assert definition.context_param == "ctx"
    assert list(definition.parameters["properties"]) == ["key"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"limit": 2}', "query: Field required"),
        ('{"query": "x", "limit": "many"}', "limit: Input should be a valid integer"),
        ('{"query": "x", "extra": 1}', "extra: Extra inputs are not permitted"),
    ],
)
def test_bad_arguments_become_a_tool_error_for_the_model(arguments: str, message: str) -> None:
    with pytest.raises(ToolError, match=message):
        ToolDefinition.of(search_web).parse(arguments)


def test_tool_definitions_are_validated() -> None:
    with pytest.raises(ConfigurationError, match="tool name"):
        tool(name="has space")(lambda: None)
    with pytest.raises(ConfigurationError, match=r"\*args"):

        @tool
        def variadic(*items: str) -> str:
            return ""


# --- Agent ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": "bad name", "model": "openai/x"}, "agent name"),
        ({"name": "a", "model": "gpt-4o"}, "provider/model"),
        ({"name": "a", "model": "openai/x", "max_turns": 0}, "max_turns"),
        ({"name": "a", "model": "openai/x", "tools": [search_web, search_web]}, "two tools"),
        ({"name": "a", "model": "openai/x", "output_type": dict}, "output_type"),
    ],
)
def test_an_agent_is_validated_when_it_is_built(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        Agent(**kwargs)


def test_an_agent_is_immutable() -> None:
    agent = Agent(name="a", model="openai/gpt-4o-mini")
    with pytest.raises(AttributeError):
        agent.name = "b"  # type: ignore[misc]


# --- the loop ---------------------------------------------------------------------------------------------
def test_the_loop_calls_tools_until_a_final_answer(runtime: AgentRuntime) -> None:
    model = ScriptedModel(_tool_turns(["a", "b", "c"], final="three searches"))
    agent = Agent(name="researcher", model=model, instructions="Research.", tools=[search_web])
    result = runtime.run(agent, "compare things")
    assert result.is_success and result.output == "three searches"
    assert result.finish_reason == "stop"
    assert [c["name"] for c in result.tool_calls] == ["search_web"] * 3
    assert calls == {"a": 1, "b": 1, "c": 1}
    assert len(model.requests) == 4
    assert model.requests[-1].messages[-1].content == "3 results for c"
    journal = runtime.client.get_journal(result.execution_id)
    assert [s.kind for s in journal] == ["llm", "tool", "llm", "tool", "llm", "tool", "llm"]
    assert all(s.status is StepStatus.COMPLETED for s in journal)


def test_outside_an_execution_the_same_loop_runs_with_durability_off() -> None:
    from agentspan.agents._loop import run_agent

    seen: list[ToolContext] = []

    @tool
    def lookup(query: str, ctx: ToolContext) -> str:
        """Look something up."""
        seen.append(ctx)
        return f"found {query}"

    model = ScriptedModel([[("lookup", {"query": "a"})], "done"])
    result = asyncio.run(run_agent(Agent(name="plain", model=model, tools=[lookup]), "go"))
    assert result["output"] == "done"
    assert [c["result"] for c in result["tool_calls"]] == ["found a"]
    assert [(c.execution_id, c.step_key, c.attempt) for c in seen] == [("", "", 1)]
    assert seen[0].idempotency_key.startswith("call-")


def test_parallel_tool_calls_run_in_one_turn(runtime: AgentRuntime) -> None:
    model = ScriptedModel([[("search_web", {"query": q}) for q in ("x", "y", "z")], "all three"])
    agent = Agent(name="fanout", model=model, tools=[search_web])
    result = runtime.run(agent, "go")
    assert result.output == "all three"
    tool_messages = [m for m in model.requests[1].messages if m.role == "tool"]
    assert [m.content for m in tool_messages] == ["3 results for x", "3 results for y", "3 results for z"]


def test_tool_problems_are_reported_to_the_model_not_raised(runtime: AgentRuntime) -> None:
    model = ScriptedModel(
        [
            [("nope", {}), ("broken", {"x": 1}), ("refuse", {"x": 2}), ("search_web", {"limit": 1})],
            [("slow_lookup", {"key": "1"})],
            "coped",
        ]
    )
    agent = Agent(name="resilient", model=model, tools=[search_web, broken, refuse, slow_lookup])
    result = runtime.run(agent, "try")
    assert result.output == "coped"
    first = [m.content for m in model.requests[1].messages if m.role == "tool"]
    assert "there is no tool named 'nope'" in first[0]
    assert first[1] == "Error: ValueError: cannot handle 1"
    assert first[2] == "Error: not today"
    assert "query: Field required" in first[3]
    timeout = [m.content for m in model.requests[2].messages if m.role == "tool"][-1]
    assert "did not answer within 0.2 s" in timeout
    assert contexts and contexts[0].agent_name == "resilient" and contexts[0].idempotency_key.startswith("as-")


def test_max_turns_ends_the_run(runtime: AgentRuntime) -> None:
    model = ScriptedModel(_tool_turns(["1", "2", "3", "4"]))
    result = runtime.run(Agent(name="bounded", model=model, tools=[search_web], max_turns=2), "loop")
    assert result.finish_reason == "max_turns"
    assert len(model.requests) == 2


class Comparison(BaseModel):
    winner: str
    reasons: list[str]


def test_structured_output_is_parsed_into_the_output_type(runtime: AgentRuntime) -> None:
    model = ScriptedModel(['{"winner": "agentspan", "reasons": ["durable", "fast"]}'])
    agent = Agent(name="judge", model=model, output_type=Comparison, settings=ModelSettings(temperature=0))
    result = runtime.run(agent, "who wins?")
    assert result.structured == Comparison(winner="agentspan", reasons=["durable", "fast"])
    assert model.requests[0].output_schema == Comparison.model_json_schema()
    assert model.requests[0].settings.temperature == 0


def test_sub_agents_are_tools_whose_steps_nest(runtime: AgentRuntime) -> None:
    helper = Agent(
        name="helper", model=ScriptedModel([[("search_web", {"query": "deep"})], "found deep"]), tools=[search_web]
    )
    boss = Agent(name="boss", model=ScriptedModel([[("helper", {"request": "dig"})], "boss done"]), agents=[helper])
    result = runtime.run(boss, "delegate")
    assert result.output == "boss done"
    journal = runtime.client.get_journal(result.execution_id)
    parent = next(s for s in journal if s.kind == "agent")
    children = [s.kind for s in journal if s.parent == parent.key]
    assert children == ["llm", "tool", "llm"]
    assert calls["deep"] == 1


def test_token_usage_counts_the_sub_agents_model_calls(runtime: AgentRuntime) -> None:
    helper = Agent(
        name="helper", model=ScriptedModel([[("search_web", {"query": "deep"})], "found deep"]), tools=[search_web]
    )
    boss = Agent(name="boss", model=ScriptedModel([[("helper", {"request": "dig"})], "boss done"]), agents=[helper])
    result = runtime.run(boss, "delegate")
    llm = [s for s in runtime.client.get_journal(result.execution_id) if s.kind == "llm"]
    assert len(llm) == 4 and all(s.usage for s in llm)
    for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert getattr(result.token_usage, field) == sum(s.usage[field] for s in llm if s.usage), field


# --- durability -------------------------------------------------------------------------------------------
def test_a_crashed_run_resumes_without_repeating_model_or_tool_calls(db_path: Path, capsys: Any) -> None:
    model = ScriptedModel(_tool_turns([f"q{i}" for i in range(1, 6)], final="five"))
    agent = Agent(name="crashy", model=model, tools=[search_web])
    crash_on.add("q4")
    service = Service(SQLiteStore(db_path))
    execution = service.create_execution("crashy", {"prompt": "research"})
    dying = Worker(service, [agent_function(agent)])
    with pytest.raises(Crash):
        dying.run_once()  # the "process" dies inside tool call 4
    service.expire_leases([dying.worker_id])
    service.close()
    assert len(model.requests) == 4

    with AgentRuntime(db=db_path, serve_http=False) as again:
        result = again.run(agent, "research")  # the same script, run again
    assert result.execution_id == execution.id
    assert result.output == "five"
    assert calls == {"q1": 1, "q2": 1, "q3": 1, "q4": 2, "q5": 1}
    assert len(model.requests) == 6, "only the two model calls after the crash were made"
    assert f"resuming execution {execution.id} of crashy at step 8" in capsys.readouterr().err


def test_a_deployed_agent_starts_by_name_where_its_code_is_not(runtime: AgentRuntime, db_path: Path) -> None:
    agent = Agent(name="named", model=ScriptedModel(["hello by name"]))
    definition = runtime.deploy(agent)
    assert definition.kind == "agent" and definition.spec["model"] == "scripted/scripted"
    handle = runtime.start("named", "hi")  # no code here: nobody runs it yet
    assert handle.status is ExecutionStatus.QUEUED
    worker_runtime = AgentRuntime(db=db_path, serve_http=False)
    thread = threading.Thread(target=worker_runtime.serve, args=(agent,), kwargs={"handle_signals": False})
    thread.start()
    try:
        assert handle.wait(timeout=10).output == "hello by name"
    finally:
        worker_runtime.close()
        thread.join(timeout=5)
    assert not thread.is_alive(), "closing the runtime stops the worker it serves"


def test_a_handle_follows_events_and_cancels(runtime: AgentRuntime) -> None:
    agent = Agent(name="eventful", model=ScriptedModel(_tool_turns(["e1"], final="ok")), tools=[search_web])
    handle = runtime.start(agent, "go")
    types = [event.type for event in handle.events()]
    assert types[0] == "execution.queued" and types[-1] == "execution.completed"
    assert types.count("step.completed") == 3  # llm, tool, llm
    assert handle.wait(timeout=5).output == "ok"

    runtime.client.put_definition("nobody-serves-this")  # deployed, so it may be started; no worker runs it
    parked = runtime.start("nobody-serves-this", "wait")
    parked.cancel()
    result = parked.wait(timeout=5)
    assert result.status is ExecutionStatus.CANCELLED and result.finish_reason == "cancelled"


def test_a_prompt_must_be_text(runtime: AgentRuntime) -> None:
    with pytest.raises(ConfigurationError, match="prompt must be a string"):
        runtime.start(Agent(name="typed", model=ScriptedModel(["x"])), {"not": "text"})  # type: ignore[arg-type]


def test_a_model_made_from_its_provider_string_is_closed_when_the_run_ends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A worker runs many executions: each run's connection pool must not outlive it."""
    import gc
    import warnings

    from agentspan.agents._loop import run_agent
    from agentspan.testing import FakeOpenAIServer

    with FakeOpenAIServer(["hello"]) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        agent = Agent(name="closer", model="openai/gpt-4o-mini")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            outputs = [asyncio.run(run_agent(agent, "hi"))["output"] for _ in range(2)]
            gc.collect()
    assert outputs == ["hello", "hello"] and fake.request_count == 2
    assert not [w for w in caught if issubclass(w.category, ResourceWarning)]

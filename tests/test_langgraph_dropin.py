"""LangGraph as users call it: a string input, a graph started by name or deployed, and the one-line
drop-in ``durable(graph)`` returning exactly what LangGraph returns."""

from __future__ import annotations

import asyncio
import collections
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.types import Command, Interrupt
from test_langgraph import (  # the fakes of the adapter's main tests, and their reset fixture
    PROMPT,
    _reset,  # noqa: F401
    calls,
    crash_at,
    loop_graph,
    research,
    search,
    start,
    work,
)
from test_langgraph_waits import approval_graph

import agentspan.adapters.langgraph as lg
from agentspan.adapters.langgraph._graph import execution_input
from agentspan.agents import AgentRuntime
from agentspan.errors import ConfigurationError, ConflictError
from agentspan.runtime import ExecutionStatus, Service, StepStatus
from agentspan.worker import Worker


def _plain(messages: list[BaseMessage]) -> list[tuple[str, Any]]:
    return [(type(m).__name__, m.content) for m in messages]


@pytest.fixture
def runtime(tmp_path: Path) -> Any:
    with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as found:
        yield found


# --- string input, by name, deploy ---------------------------------------------------------------------
def test_a_string_input_is_one_user_message(runtime: AgentRuntime) -> None:
    graph = loop_graph(research(1), name="string-input")
    result = runtime.run(graph, "compare the offers", timeout=60)
    assert result.is_success and result.output == "compared"
    assert [m["type"] for m in result.messages] == ["human", "ai", "tool", "ai"]
    assert result.messages[0]["data"]["content"] == "compare the offers"


def test_an_execution_started_by_name_passes_its_prompt_as_the_user_message(service: Service) -> None:
    graph = loop_graph(research(1), name="by-name")
    eid = service.create_execution("by-name", {"prompt": "compare the offers"}).id
    assert Worker(service, [lg.graph_function(graph)], lease_seconds=30).run_once()
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    messages = execution.output["messages"]
    assert messages[0]["data"]["content"] == "compare the offers" and messages[-1]["data"]["content"] == "compared"


def test_deploy_registers_a_graph_that_is_then_started_by_name(runtime: AgentRuntime) -> None:
    graph = loop_graph(research(1), name="deployed-graph")
    definition = runtime.deploy(graph)
    assert definition.name == "deployed-graph" and definition.kind == "agent"
    assert definition.spec == {"framework": "langgraph", "nodes": ["agent"]}
    handle = runtime.start("deployed-graph", "compare the offers")
    runtime._runtime.ensure_worker(lg.graph_function(graph))  # a worker serving it, as `serve` would run
    assert handle.wait(60).is_success
    output = runtime.client.get_execution(handle.execution_id).output
    assert output["messages"][-1]["data"]["content"] == "compared"
    with pytest.raises(ConfigurationError, match="deploy\\(\\) takes an Agent"):
        runtime.deploy(object())  # type: ignore[arg-type]


# --- the drop-in ---------------------------------------------------------------------------------------
def test_durable_invoke_returns_what_the_graph_returns(runtime: AgentRuntime) -> None:
    graph = loop_graph(research(2), name="dropin")
    expected = graph.invoke(PROMPT)
    calls.clear()
    app = lg.durable(graph, runtime=runtime)
    state = app.invoke(PROMPT)
    assert set(state) == set(expected) == {"messages"}
    assert all(isinstance(m, BaseMessage) for m in state["messages"])
    assert _plain(state["messages"]) == _plain(expected["messages"])
    assert isinstance(state["messages"][-1], AIMessage) and state["messages"][-1].usage_metadata is not None
    assert calls["model"] == 3 and calls["tool:q1"] == 1
    journal = runtime.client.list_executions(name="dropin").items
    assert len(journal) == 1 and journal[0].status is ExecutionStatus.COMPLETED
    assert app.get_graph() is not None and app.name == "dropin"  # everything else is the graph's


def test_durable_ainvoke_and_astream(runtime: AgentRuntime) -> None:
    graph = loop_graph(research(1), name="dropin-async")
    expected_updates = [list(update) for update in graph.stream(PROMPT, stream_mode="updates")]
    app = lg.durable(graph, runtime=runtime)

    async def go() -> tuple[Any, list[Any]]:
        state = await app.ainvoke({"messages": [("user", "compare the offers")]})
        items = [item async for item in app.astream(PROMPT, stream_mode="updates")]
        return state, items

    state, items = asyncio.run(go())
    assert _plain(state["messages"])[-1] == ("AIMessage", "compared")
    assert [list(item) for item in items] == expected_updates == [["agent"]]
    values = list(app.stream(PROMPT))
    assert isinstance(values[-1]["messages"][-1], AIMessage) and values[-1]["messages"][-1].content == "compared"


def test_durable_invoke_resumes_a_crashed_run_without_repeating_calls(runtime: AgentRuntime) -> None:
    graph = loop_graph(research(3), name="dropin-crash")
    service = runtime._runtime.service
    assert service is not None
    crash_at.add("q2")
    eid = start(service, graph, PROMPT)
    work(service, graph, crash=True)  # the process died during the second tool call
    state = lg.durable(graph, runtime=runtime).invoke(PROMPT)
    assert state["messages"][-1].content == "compared"
    assert [calls[f"tool:q{i}"] for i in (1, 2, 3)] == [1, 2, 1] and calls["model"] == 4
    assert service.get_execution(eid).status is ExecutionStatus.COMPLETED  # that execution, resumed


def test_an_interrupt_returns_as_langgraph_returns_it_and_command_resume_answers_it(runtime: AgentRuntime) -> None:
    graph = approval_graph(InMemorySaver(), name="dropin-approval")
    app = lg.durable(graph, runtime=runtime)
    config = {"configurable": {"thread_id": "t-1"}}
    paused = app.invoke(PROMPT, config)
    assert paused["__interrupt__"] == [Interrupt(value="approve?", id="interrupt:1#1")]
    assert _plain(paused["messages"])[-1] == ("AIMessage", "")  # the state so far, as LangGraph shows it
    [waiting] = runtime.client.list_executions(status=ExecutionStatus.WAITING).items
    assert waiting.wait is not None and waiting.wait.signal == "interrupt:1"

    final = app.invoke(Command(resume="yes"), config)
    assert final["approval"] == "yes" and final["messages"][-1].content == "approved and compared"
    assert isinstance(final["messages"][-2], ToolMessage) and "__interrupt__" not in final
    assert runtime.client.get_execution(waiting.id).status is ExecutionStatus.COMPLETED
    with pytest.raises(ConflictError, match="no run of dropin-approval on thread 't-1' is waiting"):
        app.invoke(Command(resume="again"), config)


def test_the_drop_in_refuses_what_it_cannot_honour(runtime: AgentRuntime) -> None:
    app = lg.durable(loop_graph(research(1), name="dropin-refuses"), runtime=runtime)
    with pytest.raises(ConfigurationError, match="does not take interrupt_before"):
        app.invoke(PROMPT, interrupt_before=["agent"])
    with pytest.raises(ConfigurationError, match="needs the interrupted run's config"):
        app.invoke(Command(resume="x"))
    with pytest.raises(ConfigurationError, match="compiled LangGraph graph"):
        lg.durable(object())
    with pytest.raises(ConfigurationError, match="Runtime or an AgentRuntime"):
        lg.durable(loop_graph(research(1)), runtime="nope")


def test_use_runtime_sets_where_the_drop_in_keeps_its_executions(runtime: AgentRuntime) -> None:
    lg.use_runtime(runtime)
    state = lg.durable(loop_graph(research(1), name="dropin-default")).invoke(PROMPT)
    assert state["messages"][-1].content == "compared"
    assert [e.name for e in runtime.client.list_executions().items] == ["dropin-default"]


# --- tool calls are matched by id, not by position --------------------------------------------------------
def _listing_graph(orders: collections.deque[list[str]]) -> Any:
    """A plan node (no model: not a step) that lists the same two tool calls in a new order each run."""

    def plan(state: MessagesState) -> dict[str, Any]:
        order = orders.popleft()
        tool_calls = [{"name": "search", "args": {"query": q}, "id": f"call_{q}"} for q in order]
        return {"messages": [AIMessage("", tool_calls=tool_calls)]}

    builder = StateGraph(MessagesState)
    builder.add_node("plan", plan)
    builder.add_node("tools", ToolNode([search]))
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", tools_condition)
    return builder.compile(name="listing")


def test_a_rerun_that_lists_the_tool_calls_in_another_order_matches_them_by_id(service: Service) -> None:
    graph = _listing_graph(collections.deque([["a", "b"], ["b", "a"]]))
    crash_at.add("b")
    eid = service.create_execution("listing", execution_input({"messages": [HumanMessage("go")]})).id
    work(service, graph, crash=True)  # "a" finished, "b" was running when the process died
    work(service, graph)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED
    assert calls["tool:a"] == 1 and calls["tool:b"] == 2
    tools = {
        m["data"]["tool_call_id"]: m["data"]["content"] for m in execution.output["messages"] if m["type"] == "tool"
    }
    assert tools == {"call_a": "results for a", "call_b": "results for b"}
    steps = [s for s in service.get_journal(eid) if s.kind == "tool" and s.status is StepStatus.COMPLETED]
    assert sorted(s.input["tool_call_id"] for s in steps) == ["call_a", "call_b"]

"""The LangGraph adapter's waits and streams: ``interrupt()`` as a durable wait, ``AgentRuntime.stream``.

An interrupted run suspends its execution (no worker holds it) until the signal ``interrupt:<n>`` brings
the answer; a fresh worker then replays everything before it and resumes the graph with
``Command(resume=answer)``. Fakes and crash patterns come from test_langgraph.py.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage, message_to_dict
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode
from langgraph.types import interrupt
from test_langgraph import (  # the fakes of the adapter's main tests, and their reset fixture
    PROMPT,
    Crash,
    TurnModel,
    _reset,  # noqa: F401
    calls,
    crash_at,
    delays,
    fail_once,
    research,
    search,
    start,
    tool_node_graph,
)

import agentspan.adapters.langgraph as lg
from agentspan.adapters.langgraph._result import GraphHandle
from agentspan.agents import AgentRuntime
from agentspan.durable import ExecutionHandle
from agentspan.errors import ConflictError, ExecutionFailedError
from agentspan.runtime import ExecutionStatus, Service, StepStatus
from agentspan.worker import Worker


class ApprovalState(MessagesState):
    approval: Any
    second: Any


def approval_graph(checkpointer: Any, *, twice: bool = False, name: str = "approval") -> Any:
    """agent (a model call asking for a tool) → approve (``interrupt("approve?")``) → tools → agent."""
    model = TurnModel(
        responses=[
            AIMessage("", tool_calls=[{"name": "search", "args": {"query": "offers"}, "id": "call_1"}]),
            AIMessage("approved and compared"),
        ]
    )

    def agent(state: ApprovalState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def approve(state: ApprovalState) -> dict[str, Any]:
        calls["approve"] += 1
        answer = interrupt("approve?")
        update = {"approval": answer}
        if twice:
            update["second"] = interrupt({"question": "really?", "after": answer})
        return update

    def route(state: ApprovalState) -> str:
        last = state["messages"][-1]
        return "approve" if isinstance(last, AIMessage) and last.tool_calls else END

    builder = StateGraph(ApprovalState)
    builder.add_node("agent", agent)
    builder.add_node("approve", approve)
    builder.add_node("tools", ToolNode([search]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["approve", END])
    builder.add_edge("approve", "tools")
    builder.add_edge("tools", "agent")
    return builder.compile(name=name, checkpointer=checkpointer)


def handle(service: Service, eid: str) -> GraphHandle:
    return GraphHandle(ExecutionHandle(service, eid))


def run(service: Service, graph: Any, *, crash: bool = False) -> None:
    worker = Worker(service, [lg.graph_function(graph)], lease_seconds=30)
    if crash:
        with pytest.raises(Crash):
            worker.run_once()
        assert service.expire_leases([worker.worker_id])
    else:
        assert worker.run_once()


def assert_waiting(service: Service, eid: str, signal: str) -> None:
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.WAITING
    assert execution.worker_id is None and execution.lease_expires_at is None
    assert execution.wait is not None and execution.wait.signal == signal


@pytest.fixture
def sqlite_saver(tmp_path: Path) -> Iterator[Any]:
    """Opens SqliteSaver checkpointers on one file, as separate processes would."""
    connections: list[sqlite3.Connection] = []

    def open_saver() -> SqliteSaver:
        connection = sqlite3.connect(tmp_path / "checkpoints.db", check_same_thread=False)
        connections.append(connection)
        return SqliteSaver(connection)

    yield open_saver
    for connection in connections:
        connection.close()


# --- interrupt() as a durable wait ----------------------------------------------------------------------
def test_an_interrupt_waits_durably_and_the_answer_resumes_the_graph_in_process(service: Service) -> None:
    graph = approval_graph(InMemorySaver())
    eid = start(service, graph)
    run(service, graph)
    assert_waiting(service, eid, "interrupt:1")
    assert (calls["model"], calls["tool:offers"]) == (1, 0)
    pending = handle(service, eid).pending_interrupt()
    assert pending is not None and pending.signal == "interrupt:1" and pending.value == "approve?"

    handle(service, eid).resume({"ok": True})
    run(service, graph)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED
    assert execution.output["approval"] == {"ok": True}
    assert execution.output["messages"][-1]["data"]["content"] == "approved and compared"
    assert calls["model:turn0"] == 1 and calls["model:turn1"] == 1, "the call before the wait is replayed"
    assert calls["tool:offers"] == 1
    assert handle(service, eid).pending_interrupt() is None
    with pytest.raises(ConflictError):
        handle(service, eid).resume("again")
    thread = graph.get_state({"configurable": {"thread_id": eid}})
    assert thread.next == () and thread.values["approval"] == {"ok": True}
    journal = service.get_journal(eid)
    asked = [s for s in journal if s.name == "langgraph.interrupt"]
    assert [(s.input, s.output) for s in asked] == [({"signal": "interrupt:1"}, ["approve?"])]
    assert [s.status for s in journal if s.kind == "interrupt"] == [StepStatus.COMPLETED]
    assert not [e for e in service.get_events(eid) if e.type == "divergence"]


def test_a_fresh_worker_with_a_sqlite_checkpointer_resumes_after_the_answer(
    service: Service, sqlite_saver: Any
) -> None:
    first = approval_graph(sqlite_saver())
    eid = start(service, first)
    run(service, first)
    assert_waiting(service, eid, "interrupt:1")
    handle(service, eid).resume("yes")

    crash_at.add("offers")  # the resumed run dies in the tool; another fresh worker finishes
    second = approval_graph(sqlite_saver())
    run(service, second, crash=True)
    third = approval_graph(sqlite_saver())
    run(service, third)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED
    assert execution.output["approval"] == "yes"
    assert calls["model:turn0"] == 1 and calls["model:turn1"] == 1
    assert calls["tool:offers"] == 2, "in doubt at the crash: run again once, never before the answer"
    thread = approval_graph(sqlite_saver()).get_state({"configurable": {"thread_id": eid}})
    assert thread.next == () and thread.values["approval"] == "yes"
    assert thread.values["messages"][-1].content == "approved and compared"


def test_several_interrupts_each_wait_for_their_own_signal(service: Service, sqlite_saver: Any) -> None:
    graph = approval_graph(sqlite_saver(), twice=True, name="twice")
    eid = start(service, graph)
    run(service, graph)
    assert_waiting(service, eid, "interrupt:1")
    handle(service, eid).resume("first")
    run(service, approval_graph(sqlite_saver(), twice=True, name="twice"))
    assert_waiting(service, eid, "interrupt:2")
    pending = handle(service, eid).pending_interrupt()
    assert pending is not None and pending.value == {"question": "really?", "after": "first"}
    handle(service, eid).resume("second")
    run(service, approval_graph(sqlite_saver(), twice=True, name="twice"))
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED
    assert (execution.output["approval"], execution.output["second"]) == ("first", "second")
    assert calls["model"] == 2 and calls["tool:offers"] == 1


def test_an_interrupt_without_a_checkpointer_fails_the_run_with_advice(service: Service) -> None:
    graph = approval_graph(None, name="unsaved")
    eid = start(service, graph)
    run(service, graph)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.FAILED
    assert execution.error is not None and "checkpointer" in execution.error.message


def test_agent_runtime_start_pending_interrupt_and_resume(tmp_path: Path) -> None:
    graph = approval_graph(InMemorySaver(), name="runtime-approval")
    with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        started = runtime.start(graph, PROMPT)
        assert isinstance(started, GraphHandle)
        deadline = time.monotonic() + 10
        while (pending := started.pending_interrupt()) is None:
            assert time.monotonic() < deadline, "the run should wait at the interrupt"
            time.sleep(0.01)
        assert pending.value == "approve?"
        again = runtime.handle(started.execution_id, graph)
        assert isinstance(again, GraphHandle)
        again.resume("go")
        result = started.wait(timeout=30)
    assert result.is_success and result.output == "approved and compared"
    assert result.structured["approval"] == "go"
    assert calls["model"] == 2 and calls["tool:offers"] == 1


# --- stream ---------------------------------------------------------------------------------------------
def plain(value: Any) -> Any:
    """Stream items compared without random message ids and per-run metadata."""
    if isinstance(value, BaseMessage):
        data = message_to_dict(value)
        return {**data, "data": {k: v for k, v in data["data"].items() if k != "id"}}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    if isinstance(value, tuple):
        if len(value) == 2 and isinstance(value[0], BaseMessage) and isinstance(value[1], dict):
            return (plain(value[0]), {k: value[1].get(k) for k in ("langgraph_node", "langgraph_step")})
        return tuple(plain(v) for v in value)
    return value


@pytest.mark.parametrize("stream_mode", ["values", "updates", "messages", ["updates", "messages", "values"]])
def test_stream_yields_what_langgraph_yields_and_records_the_steps(tmp_path: Path, stream_mode: Any) -> None:
    expected = [plain(item) for item in tool_node_graph(research(2)).stream(PROMPT, stream_mode=stream_mode)]
    calls.clear()
    graph = tool_node_graph(research(2), name="streamed")
    with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        stream = runtime.stream(graph, PROMPT, stream_mode=stream_mode)
        items = [plain(item) for item in stream]
        journal = runtime.client.get_journal(stream.execution_id)
        result = stream.handle.wait(timeout=10)
    assert items == expected and items
    assert result.is_success and result.output == "compared"
    assert [(s.kind, s.status) for s in journal if s.kind in ("llm", "tool")] == [
        (kind, StepStatus.COMPLETED) for kind in ("llm", "tool", "llm", "tool", "llm")
    ]
    assert calls["model"] == 3 and calls["tool:q1"] == calls["tool:q2"] == 1


def test_stream_items_arrive_while_the_graph_runs(tmp_path: Path) -> None:
    delays["q2"] = 0.5
    graph = tool_node_graph(research(2), name="live")
    with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        stream = runtime.stream(graph, PROMPT, stream_mode="updates")
        first = next(stream)
        assert "agent" in first and calls["tool:q2"] == 0, "the first update comes before the run ends"
        rest = list(stream)
    assert [next(iter(item)) for item in rest] == ["tools", "agent", "tools", "agent"]


def test_a_stream_ends_at_an_interrupt_and_the_run_resumes_after_the_answer(tmp_path: Path) -> None:
    graph = approval_graph(InMemorySaver(), name="streamed-approval")
    with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        stream = runtime.stream(graph, PROMPT, stream_mode="updates")
        updates = list(stream)
        assert [next(iter(item)) for item in updates] == ["agent", "__interrupt__"]
        assert stream.handle.status is ExecutionStatus.WAITING
        stream.handle.resume("fine")
        result = stream.handle.wait(timeout=30)
    assert result.is_success and result.structured["approval"] == "fine"
    assert calls["model"] == 2 and calls["tool:offers"] == 1


def test_a_failed_streamed_run_raises_after_its_items(tmp_path: Path) -> None:
    fail_once.add("q1")
    graph = tool_node_graph(research(1), name="failing")
    with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        seen: list[Any] = []
        with pytest.raises(ExecutionFailedError, match="q1 failed"):
            for item in runtime.stream(graph, PROMPT, stream_mode="updates"):
                seen.append(item)
    assert [next(iter(item)) for item in seen] == ["agent"]

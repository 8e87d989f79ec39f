"""The LangGraph adapter's cost, side by side with LangGraph's own SQLite checkpointer.

    python benchmarks/langgraph_overhead.py [--turns 50] [--rounds 5]

One ReAct-style graph (an ``agent`` node calling a fake chat model, a ``ToolNode`` with a no-op
tool, ``tools_condition`` between them), ``--turns`` model calls and ``--turns - 1`` tool calls,
run three ways in one process: plain (no checkpointer), with ``SqliteSaver`` (LangGraph's durability:
a checkpoint per superstep), and under the Agentspan adapter (a durable step per model and tool call,
embedded runtime, SQLite FULL). Each turn is two supersteps and two calls, so the per-superstep cost
of the checkpointer and the per-call cost of the adapter compare directly.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from _stats import runs as run_stats
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from agentspan.adapters.langgraph import graph_function
from agentspan.adapters.langgraph._graph import execution_input
from agentspan.runtime import Service, SQLiteStore
from agentspan.worker import Worker


@tool
def noop(i: int) -> str:
    """Does nothing."""
    return "ok"


class TurnModel(FakeMessagesListChatModel):
    """Answers by turn: the number of AI messages so far picks the reply."""

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        turn = sum(isinstance(m, AIMessage) for m in messages)
        return ChatResult(generations=[ChatGeneration(message=self.responses[turn])])

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


def build(turns: int, checkpointer: Any = None) -> Any:
    replies: list[BaseMessage] = [
        AIMessage("", tool_calls=[{"name": "noop", "args": {"i": i}, "id": f"call_{i}"}]) for i in range(turns - 1)
    ]
    replies.append(AIMessage("done"))
    model = TurnModel(responses=replies)

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([noop]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer, name="bench")


def plain(turns: int) -> float:
    graph = build(turns)
    start = time.perf_counter()
    graph.invoke({"messages": [("user", "go")]}, {"recursion_limit": turns * 3})
    return time.perf_counter() - start


def with_sqlite_saver(turns: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        saver = SqliteSaver(sqlite3.connect(f"{tmp}/lg.sqlite", check_same_thread=False))
        graph = build(turns, saver)
        start = time.perf_counter()
        graph.invoke({"messages": [("user", "go")]}, {"configurable": {"thread_id": "t"}, "recursion_limit": turns * 3})
        return time.perf_counter() - start


def with_adapter(turns: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        service = Service(SQLiteStore(Path(tmp) / "agentspan.db"))
        graph = build(turns)
        fn = graph_function(graph, "bench")
        execution = service.create_execution("bench", execution_input({"messages": [("user", "go")]}, None))
        worker = Worker(service, [fn])
        start = time.perf_counter()
        assert worker.run_once()
        elapsed = time.perf_counter() - start
        assert service.get_execution(execution.id).status.value == "completed"
        service.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    calls = 2 * args.turns - 1  # model calls + tool calls
    supersteps = 2 * args.turns - 1  # agent + tools supersteps
    plain(5)  # warm up imports
    runs: dict[str, list[float]] = {"plain": [], "saver": [], "adapter": []}
    for _ in range(args.rounds):
        runs["plain"].append(plain(args.turns))
        runs["saver"].append(with_sqlite_saver(args.turns))
        runs["adapter"].append(with_adapter(args.turns))
    base = statistics.median(runs["plain"])
    saver = statistics.median(runs["saver"])
    adapter = statistics.median(runs["adapter"])
    per_superstep = (saver - base) / supersteps
    per_call = (adapter - base) / calls
    print(
        f"\nReAct graph, {args.turns} turns ({calls} model+tool calls, {supersteps} supersteps), {args.rounds} runs\n"
    )
    print("| run | total (median run) | mean run | slowest run | vs plain (median) | durability cost (median run) |")
    print("|---|---|---|---|---|---|")
    rows = (
        ("plain", "plain graph (no checkpointer)", "–"),
        ("saver", "LangGraph SqliteSaver", f"{per_superstep * 1e3:.3f} ms per superstep"),
        ("adapter", "Agentspan adapter (SQLite FULL)", f"{per_call * 1e3:.3f} ms per call"),
    )
    for key, label, cost in rows:
        found = run_stats(runs[key])
        print(
            f"| {label} | {found['median_ms']:.1f} ms | {found['mean_ms']:.1f} ms | {found['max_ms']:.1f} ms |"
            f" {found['median_ms'] / 1e3 / base:.2f}× | {cost} |"
        )
    print(f"\nadapter cost per call / checkpointer cost per superstep: {per_call / per_superstep:.2f}")


if __name__ == "__main__":
    main()

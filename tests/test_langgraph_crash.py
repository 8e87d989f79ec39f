"""A LangGraph graph's worker process killed with SIGKILL after tool call 18 of 20, resumed by another:
no model request and no tool call is repeated for completed calls.

The worker subprocesses serve this module's ``graph`` (``agentspan worker test_langgraph_crash:graph``):
``ChatOpenAI`` against the test's ``FakeOpenAIServer`` (``OPENAI_BASE_URL``), every tool call appending
``<query>\\t<pid>`` to the file named by ``AGENT_LOG``.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from langchain.agents import create_agent
from langchain_core.tools import tool
from langchain_openai import ChatOpenAI
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from processes import TESTS, kill_after_and_resume, log_call, model_turns, stop, wait_until

from agentspan.adapters.langgraph._graph import execution_input
from agentspan.client import HttpClient
from agentspan.runtime import ExecutionStatus, StepStatus
from agentspan.testing import FakeOpenAIServer

pytestmark = pytest.mark.slow


@tool
def search(query: str) -> str:
    """Search for information."""
    log_call(query)
    return f"results for {query}"


def _model() -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4o-mini",
        base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"),
        api_key="test",  # type: ignore[arg-type]
        max_retries=0,
    )


def _graph() -> Any:
    model = _model().bind_tools([search])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([search]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(name="lg-researcher")


def _loop_graph() -> Any:
    """A custom StateGraph whose single agent node loops over model and tool calls itself."""
    model = _model().bind_tools([search])

    def agent(state: MessagesState) -> dict[str, Any]:
        messages = list(state["messages"])
        while True:
            reply = model.invoke(messages)
            messages.append(reply)
            if not reply.tool_calls:
                break
            messages += [search.invoke(call) for call in reply.tool_calls]
        return {"messages": messages[len(state["messages"]) :]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_edge(START, "agent")
    return builder.compile(name="lg-loop")


graph = _graph()
loop_graph = _loop_graph()
# The same agent built with LangChain's prebuilt create_agent (its own model and tools nodes).
agent_graph = create_agent(_model(), tools=[search], name="lg-create-agent")
PROMPT = {"messages": [("user", "compare")]}


def _worker(url: str, fake: FakeOpenAIServer, log: Path, target: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(TESTS), "OPENAI_BASE_URL": fake.base_url, "AGENT_LOG": str(log)}
    env.pop("LANGSMITH_TRACING", None)
    return subprocess.Popen(
        [sys.executable, "-m", "agentspan", "worker", f"test_langgraph_crash:{target}", "--server", url,
         "--lease-seconds", "2", "--poll-seconds", "1", "--max-executions", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _tools_done(client: HttpClient, execution_id: str) -> set[str]:
    return {
        s.input["input"]["query"]
        for s in client.get_journal(execution_id)
        if s.kind == "tool" and s.status is StepStatus.COMPLETED
    }


@pytest.mark.parametrize(
    ("target", "name"),
    [("graph", "lg-researcher"), ("agent_graph", "lg-create-agent"), ("loop_graph", "lg-loop")],
)
def test_killed_after_tool_call_18_the_graph_resumes_at_19(server: str, tmp_path: Path, target: str, name: str) -> None:
    script = FakeOpenAIServer.research_script(20, "search", lambda i: {"query": f"q{i + 1}"}, answer="compared")
    log = tmp_path / "tools.log"
    with FakeOpenAIServer(script) as fake, HttpClient(server) as client:
        execution = client.create_execution(name, execution_input(PROMPT))
        run = kill_after_and_resume(
            client, execution.id, fake, lambda: _worker(server, fake, log, target),
            lambda: _tools_done(client, execution.id),
        )  # fmt: skip
        done_at_kill, before_requests, resumed_requests = run.done_at_kill, run.requests_before, run.requests_after
        final, total_requests = run.final, fake.request_count

        # The same run without a crash, for comparison.
        calm = client.create_execution(name, execution_input(PROMPT), idempotency_key=f"calm-{name}")
        third = _worker(server, fake, tmp_path / "calm.log", target)
        wait_until(lambda: client.get_execution(calm.id).status.is_terminal, "the uninterrupted run")
        stop(third)
        uninterrupted = client.get_execution(calm.id)

    assert final.status is ExecutionStatus.COMPLETED, final.error
    assert final.output["messages"][-1]["data"]["content"] == "compared"
    assert len(final.output["messages"]) == 1 + 20 * 2 + 1
    lines = [line.split("\t") for line in log.read_text().splitlines()]
    runs = collections.Counter(query for query, _ in lines)
    assert set(runs) == {f"q{i}" for i in range(1, 21)}
    for query in done_at_kill:
        assert runs[query] == 1, f"tool call {query} completed before the kill but ran again"
    assert sum(runs.values()) <= 20 + 1, "at most the one call in flight at the kill ran twice"
    assert all(count == 1 for count in model_turns(before_requests).values()), "worker 1 asked for no turn twice"
    resumed_turns = model_turns(resumed_requests)
    assert resumed_turns and all(turn > len(done_at_kill) for turn in resumed_turns), (
        f"the resumed run asked again for turns {sorted(resumed_turns)}; {len(done_at_kill)} were done"
    )
    assert total_requests <= 21 + 1, "every model turn was requested once (plus at most the one in flight)"
    assert len({pid for _, pid in lines}) == 2, "two worker processes ran the tools"

    def contents(execution: Any) -> list[tuple[str, Any, Any]]:
        # Message ids are random per run (LangGraph's add_messages); everything else must match.
        return [
            (m["type"], m["data"]["content"], [c["name"] for c in m["data"].get("tool_calls", [])])
            for m in execution.output["messages"]
        ]

    assert uninterrupted.status is ExecutionStatus.COMPLETED
    assert contents(final) == contents(uninterrupted)

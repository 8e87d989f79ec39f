"""Budgets on framework runs in this process: the OpenAI Agents SDK (handoffs and an agent used as a
tool) and LangGraph; the result's usage and cost add up every model call in the journal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_budgets import fixed_usage
from test_openai_agents import crew

from agentspan.agents import AgentRuntime, Budget, Price
from agentspan.runtime import ExecutionStatus
from agentspan.testing import FakeOpenAIServer


def test_sdk_usage_counts_handoffs_and_agents_used_as_tools(db_path: Path) -> None:
    triage, models = crew()
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        result = runtime.run(triage, "compare the offers", budget=Budget(max_tokens=10_000))
    assert result.is_success and result.output == "done"
    calls = sum(m.requests for m in models.values())
    assert calls == 7, "triage 2, translator (as a tool) 2, specialist (after the handoff) 3"
    assert result.token_usage.total_tokens == 7 * 15
    assert result.cost_usd is None and result.cost_note is not None, "the test model has no price"


def test_sdk_budget_stops_the_run_before_the_handed_off_agent_calls_its_model(db_path: Path) -> None:
    triage, models = crew()
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        result = runtime.run(triage, "compare the offers", budget=Budget(max_tokens=60))
    assert result.status is ExecutionStatus.FAILED and result.finish_reason == "budget", result.error
    assert {name: m.requests for name, m in models.items()} == {"translator": 2, "specialist": 0, "triage": 2}
    assert result.token_usage.total_tokens == 60


def _graph(base_url: str) -> Any:
    from langchain_core.tools import tool
    from langchain_openai import ChatOpenAI
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    @tool
    def search(query: str) -> str:
        """Search for information."""
        return f"results for {query}"

    model = ChatOpenAI(model="gpt-4o-mini", base_url=base_url, api_key="test", max_retries=0).bind_tools([search])  # type: ignore[arg-type]

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([search]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    return builder.compile(name="budget-graph")


@pytest.mark.parametrize(("max_tokens", "calls", "reason"), [(350, 4, "budget"), (10_000, 6, "stop")])
def test_a_graph_run_is_held_to_its_budget_with_its_cost(
    db_path: Path, max_tokens: int, calls: int, reason: str
) -> None:
    script = fixed_usage(FakeOpenAIServer.research_script(5, "search", lambda i: {"query": f"q{i}"}, answer="ok"))
    prices = {"gpt-4o-mini": Price(input=1.0, output=2.0)}
    with FakeOpenAIServer(script) as fake, AgentRuntime(db=db_path, serve_http=False) as runtime:
        result = runtime.run(
            _graph(fake.base_url), {"messages": [("user", "go")]}, budget=Budget(max_tokens=max_tokens, prices=prices)
        )
        assert fake.request_count == calls
    assert result.finish_reason == reason, result.error
    assert result.token_usage.total_tokens == 100 * calls
    assert result.cost_usd == pytest.approx(calls * (60 * 1.0 + 40 * 2.0) / 1e6)

"""The framework agents of the UI scenarios: a LangGraph graph and OpenAI Agents SDK agents with a handoff."""

from __future__ import annotations

from typing import Any

import httpx
import openai
from agents import Agent, OpenAIChatCompletionsModel, function_tool
from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

__all__ = ["TRIAGE_ROUTES", "GraphTurnModel", "support_graph", "triage"]


# --- LangGraph ----------------------------------------------------------------------------------------------
class GraphTurnModel(FakeMessagesListChatModel):
    """LangChain's fake list model answering by turn (the AI messages already in the conversation), so a
    replayed run gets the reply its turn needs; accepts tool binding."""

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        turn = sum(isinstance(m, AIMessage) for m in messages)
        return ChatResult(generations=[ChatGeneration(message=self.responses[turn])])

    def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
        return self


@tool
def lookup_stock(item: str) -> str:
    """How many of an item are in stock."""
    return f"{item}: 12 in stock"


def support_graph() -> Any:
    """``support-graph``: ``agent`` (a chat model) ↔ ``tools`` (``ToolNode``), then ``summarize``."""
    model = GraphTurnModel(
        responses=[
            AIMessage(
                "",
                tool_calls=[{"name": "lookup_stock", "args": {"item": "blue mug"}, "id": "call_stock"}],
                usage_metadata={"input_tokens": 30, "output_tokens": 8, "total_tokens": 38},
            ),
            AIMessage(
                "Yes: 12 blue mugs are in stock.",
                usage_metadata={"input_tokens": 52, "output_tokens": 9, "total_tokens": 61},
            ),
        ]
    )

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    def summarize(state: MessagesState) -> dict[str, Any]:
        return {"messages": [AIMessage(f"Summary: {state['messages'][-1].content}")]}

    def route(state: MessagesState) -> str:
        return "tools" if tools_condition(dict(state)) == "tools" else "summarize"

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([lookup_stock]))
    builder.add_node("summarize", summarize)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", "summarize"])
    builder.add_edge("tools", "agent")
    builder.add_edge("summarize", END)
    return builder.compile(name="support-graph")


# --- OpenAI Agents SDK ------------------------------------------------------------------------------------
TRIAGE_INSTRUCTIONS = "You are triage: route customers to the right team."
BILLING_INSTRUCTIONS = "You are billing: fix charges."
POLICY_INSTRUCTIONS = "You are policy: quote the refund policy."

TRIAGE_ROUTES: dict[str, list[Any]] = {
    TRIAGE_INSTRUCTIONS: [[("check_order", {"order": 7}), ("ask_policy", {"input": "double charge"})],
                          [("transfer_to_billing", {})]],
    POLICY_INSTRUCTIONS: ["Double charges are refunded in full."],
    # The billing agent gets the whole conversation, triage's two turns included: its turns are 2 and 3.
    BILLING_INSTRUCTIONS: ["(triage's turn)", "(triage's turn)", [("issue_credit", {"order": 7, "amount": 20})],
                           "You were charged twice; I credited 20 EUR to order 7."],
}  # fmt: skip
"""The :class:`~agentspan.testing.FakeOpenAIServer` routes that script both agents' conversations."""


@function_tool
def check_order(order: int) -> str:
    """Look an order's charges up."""
    return f"order {order}: charged twice, 20 EUR each"


@function_tool
def issue_credit(order: int, amount: int) -> str:
    """Credit an amount back to an order."""
    return f"credited {amount} EUR to order {order}"


def triage(base_url: str) -> Agent[Any]:
    """``triage`` (tools ``check_order`` and ``ask_policy``, the ``policy`` agent as a tool; hands off to
    ``billing``, whose tool is ``issue_credit``), on Chat Completions at ``base_url``."""
    # The worker runs each execution in its own event loop: pooled connections would outlive theirs.
    pool = openai.DefaultAsyncHttpxClient(limits=httpx.Limits(max_keepalive_connections=0))
    client = openai.AsyncOpenAI(base_url=base_url, api_key="test", max_retries=0, http_client=pool)
    model = OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client)
    billing = Agent(name="billing", instructions=BILLING_INSTRUCTIONS, model=model, tools=[issue_credit])
    policy = Agent(name="policy", instructions=POLICY_INSTRUCTIONS, model=model)
    ask_policy = policy.as_tool(tool_name="ask_policy", tool_description="Ask the policy team.")
    return Agent(
        name="triage",
        instructions=TRIAGE_INSTRUCTIONS,
        model=model,
        tools=[check_order, ask_policy],
        handoffs=[billing],
    )

"""ADK agents for the Google ADK adapter's tests, imported by the test and by worker processes
(``agentspan worker adk_program:researcher``).

``researcher`` is an ``LlmAgent`` on ADK's default Gemini model (its endpoint is ``GOOGLE_GEMINI_BASE_URL``,
the test's ``FakeOpenAIServer``) whose ``search`` tool appends ``<query>\\t<idempotency key>\\t<pid>`` to the
file named by ``AGENT_LOG`` and records each query in the session state (``searched``). Its callbacks
count, in the session state too, the model responses and tool results they saw: they must see
replayed calls as they see live ones.
"""

from __future__ import annotations

import os
from typing import Any

from google.adk.agents import LlmAgent
from google.adk.agents.callback_context import CallbackContext
from google.adk.models.llm_response import LlmResponse
from google.adk.tools.base_tool import BaseTool
from google.adk.tools.tool_context import ToolContext

from agentspan.durable import current_step

MODEL = "gemini-2.5-flash"
PROMPT = "Research durable execution, then compare."


def search(query: str, tool_context: ToolContext) -> dict[str, str]:
    """Search for information."""
    step = current_step()
    with open(os.environ["AGENT_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{query}\t{step.idempotency_key if step else '-'}\t{os.getpid()}\n")
        log.flush()
        os.fsync(log.fileno())
    tool_context.state["searched"] = [*tool_context.state.get("searched", []), query]
    return {"query": query, "results": f"results for {query}"}


def count_responses(*, callback_context: CallbackContext, llm_response: LlmResponse) -> LlmResponse | None:
    """An ``after_model_callback``: counts final model responses in the state."""
    if not llm_response.partial:
        callback_context.state["responses_seen"] = callback_context.state.get("responses_seen", 0) + 1
    return None


def count_results(*, tool: BaseTool, args: dict[str, Any], tool_context: ToolContext, tool_response: Any) -> None:
    """An ``after_tool_callback``: counts tool results in the state."""
    tool_context.state["results_seen"] = tool_context.state.get("results_seen", 0) + 1


def make_researcher(name: str = "adk-researcher") -> LlmAgent:
    """The researcher agent (a fresh one, for tests that change how it is run)."""
    return LlmAgent(
        name=name.replace("-", "_"),
        model=MODEL,
        instruction="Research, then compare.",
        tools=[search],
        after_model_callback=count_responses,
        after_tool_callback=count_results,
    )


researcher = make_researcher()

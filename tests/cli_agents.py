"""Agents the CLI tests run with ``agentspan run module:attribute`` (the model: ``OPENAI_BASE_URL``)."""

from __future__ import annotations

import os
import time

from agentspan.agents import Agent, tool


@tool
def search(query: str) -> str:
    """Search for information."""
    with open(os.environ.get("AGENT_LOG", os.devnull), "a", encoding="utf-8") as log:
        log.write(f"{query}\n")
    time.sleep(float(os.environ.get("AGENT_TOOL_DELAY", "0")))  # the work a real search does
    return f"results for {query}"


bounded = Agent(name="bounded", model="openai/gpt-4o-mini", instructions="Research.", tools=[search], max_turns=2)
"""Stops at ``max_turns`` when the model keeps calling tools."""

researcher = Agent(name="cli-researcher", model="openai/gpt-4o-mini", instructions="Research.", tools=[search])


@tool(approval_required=True)
def refund(amount: int) -> str:
    """Refund an amount to the customer."""
    with open(os.environ.get("AGENT_LOG", os.devnull), "a", encoding="utf-8") as log:
        log.write(f"refund {amount}\n")
    return f"refunded {amount}"


refunder = Agent(name="refunder", model="openai/gpt-4o-mini", instructions="Refund.", tools=[refund])
"""Waits for a person to approve each refund."""

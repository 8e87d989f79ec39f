"""The agent the demo runs in its worker processes: a researcher with one side-effecting tool."""

from __future__ import annotations

import os
import time

from ..agents import Agent, ToolContext, tool


@tool
def search_web(query: str, ctx: ToolContext) -> str:
    """Search the web for information."""
    # The side effect shows how often each call really ran, in which process, with which idempotency key.
    with open(os.environ["AGENTSPAN_DEMO_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{query}\t{ctx.idempotency_key}\t{ctx.attempt}\t{os.getpid()}\n")
    time.sleep(float(os.environ.get("AGENTSPAN_DEMO_DELAY", "0")))  # the work a real search does
    return f"Results for: {query}"


agent = Agent(
    name="research-agent",
    model=os.environ.get("AGENTSPAN_DEMO_MODEL", "openai/demo-model"),
    instructions=(
        "Research the topic thoroughly. Call search_web 20 times, one query at a time, each more specific"
        " than the last; then write a short comparison."
    ),
    tools=[search_web],
    max_turns=30,
)

"""Agents that the cross-process crash tests serve in worker subprocesses (``agentspan worker``).

The model is OpenAI over HTTP (``OPENAI_BASE_URL`` points at the test's ``FakeOpenAIServer``); every
tool call appends ``<query>\\t<idempotency key>`` to the file named by ``AGENT_LOG``.
"""

from __future__ import annotations

import os
import random
import time

from agentspan.agents import Agent, ToolContext, tool


@tool
def search(query: str, ctx: ToolContext) -> str:
    """Search for information."""
    with open(os.environ["AGENT_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{query}\t{ctx.idempotency_key}\n")
        log.flush()
        os.fsync(log.fileno())
    time.sleep(float(os.environ.get("AGENT_TOOL_DELAY", "0.1")))
    return f"results for {query}"


@tool
def fetch(page: int, ctx: ToolContext) -> str:
    """Fetch one page; pages take different times."""
    with open(os.environ["AGENT_LOG"], "a", encoding="utf-8") as log:
        log.write(f"page {page}\t{ctx.idempotency_key}\n")
        log.flush()
        os.fsync(log.fileno())
    time.sleep(random.Random(page).uniform(0.05, 1.5))
    return f"page {page} text"


researcher = Agent(
    name="researcher", model="openai/gpt-4o-mini", instructions="Research.", tools=[search], max_turns=30
)
reader = Agent(name="reader", model="openai/gpt-4o-mini", instructions="Read all pages.", tools=[fetch])

agents = [researcher, reader]

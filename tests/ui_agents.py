"""The agent the UI scenarios' crash story serves in worker subprocesses (``agentspan worker ui_agents:steady``).

Its model is OpenAI over HTTP (``OPENAI_BASE_URL`` points at the scenario's ``FakeOpenAIServer``, which
answers by turn, so a second worker process gets the reply the killed one would have got). Every tool call
appends ``<query>\\t<pid>`` to the file named by ``AGENT_LOG`` and then takes ``AGENT_TOOL_DELAY`` seconds.
"""

from __future__ import annotations

import os
import time

from agentspan.agents import Agent, tool


@tool
def lookup(query: str) -> str:
    """Look something up."""
    with open(os.environ["AGENT_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{query}\t{os.getpid()}\n")
        log.flush()
        os.fsync(log.fileno())
    time.sleep(float(os.environ.get("AGENT_TOOL_DELAY", "0.2")))
    return f"notes on {query}"


steady = Agent(name="steady", model="openai/gpt-4o-mini", instructions="Look things up.", tools=[lookup])

"""Crash and resume: run this, kill it (Ctrl-C or kill -9) in the middle, and run it again.

The second run says "resuming execution ... at step N" and continues: the tool calls and model calls
that completed before the crash are not made again (watch calls.log: each query appears once).
"""

import time

from agentspan.agents import Agent, AgentRuntime, ToolContext, tool


@tool
def search_web(query: str, ctx: ToolContext) -> str:
    """Search the web for information."""
    with open("calls.log", "a") as log:
        log.write(f"{query}  attempt {ctx.attempt}  key {ctx.idempotency_key}\n")
    time.sleep(1)  # slow enough to kill the process in the middle
    return f"Results for: {query}"


agent = Agent(
    name="slow-researcher",
    model="openai/gpt-4o-mini",
    instructions="Research the topic with at least ten specific searches, one at a time.",
    tools=[search_web],
)

with AgentRuntime() as runtime:
    runtime.run(agent, "The history of durable execution engines").print_result()

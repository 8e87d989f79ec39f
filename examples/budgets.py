"""Token budgets: one run fails when its budget is spent; another waits, is raised, and finishes."""

from agentspan.agents import Agent, AgentRuntime, Budget, tool
from agentspan.runtime import ExecutionStatus


@tool
def search_web(query: str) -> str:
    """Search the web for information."""
    return f"Results for: {query}"


agent = Agent(
    name="budgeted-researcher",
    model="openai/gpt-4o-mini",
    instructions="Research the topic with the search tool, then answer.",
    tools=[search_web],
)

with AgentRuntime() as runtime:
    # on_exhausted="fail" (the default): the model call that would start past the budget does not start.
    result = runtime.run(agent, "Survey durable execution engines", budget=Budget(max_tokens=300))
    print(f"fail: finish={result.finish_reason} tokens={result.token_usage.total_tokens} cost=${result.cost_usd:.6f}")

    # on_exhausted="wait": the run waits, holding no process, until someone raises its budget
    # (here the handle; from a shell: agentspan budget raise <execution id> --tokens 1000).
    handle = runtime.start(agent, "Survey agent frameworks", budget=Budget(max_tokens=300, on_exhausted="wait"))
    for _ in handle.events():
        if handle.status is ExecutionStatus.WAITING:
            break
    print(f"wait: {handle.status.value}; raising the budget by 1000 tokens")
    handle.raise_budget(tokens=1000)
    result = handle.wait()
    print(f"wait: finish={result.finish_reason} tokens={result.token_usage.total_tokens} output={result.output!r}")

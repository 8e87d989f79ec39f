"""Sub-agents as tools: the planner delegates research to a researcher agent."""

from agentspan.agents import Agent, AgentRuntime, tool


@tool
def search_web(query: str) -> str:
    """Search the web for information."""
    return f"Results for: {query}"


researcher = Agent(
    name="researcher",
    model="openai/gpt-4o-mini",
    instructions="Find facts with the search tool and report them briefly.",
    tools=[search_web],
)

planner = Agent(
    name="planner",
    model="openai/gpt-4o-mini",
    instructions="Break the question into parts, ask the researcher about each, then answer.",
    agents=[researcher],
)

with AgentRuntime() as runtime:
    runtime.run(planner, "What makes an agent runtime durable?").print_result()

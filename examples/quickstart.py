"""The quickstart: a research agent with one tool, run durably on the embedded runtime.

Needs OPENAI_API_KEY (or OPENAI_BASE_URL pointing at any OpenAI-compatible endpoint).
"""

from agentspan.agents import Agent, AgentRuntime, tool


@tool
def search_web(query: str) -> str:
    """Search the web for information."""
    return f"Results for: {query}"


agent = Agent(
    name="research-agent",
    model="openai/gpt-4o-mini",
    instructions="Research the topic thoroughly. Call the search tool multiple times with specific queries.",
    tools=[search_web],
)

with AgentRuntime() as runtime:
    result = runtime.run(agent, "Compare the top workflow orchestration tools for AI agents")
    result.print_result()

"""Deploy, serve and start by name, from three processes.

    agentspan server &                                  # the runtime server
    python deploy_serve_start.py serve &                # a worker that has the code
    python deploy_serve_start.py start "a question"     # any process: start by name, wait, print

With AGENTSPAN_SERVER_URL unset the clients use http://localhost:6767/api.
"""

import sys

from agentspan.agents import Agent, AgentRuntime, tool


@tool
def search_web(query: str) -> str:
    """Search the web for information."""
    return f"Results for: {query}"


agent = Agent(name="support-agent", model="openai/gpt-4o-mini", instructions="Answer briefly.", tools=[search_web])

if __name__ == "__main__":
    with AgentRuntime("http://localhost:6767/api") as runtime:
        if sys.argv[1:2] == ["serve"]:
            runtime.deploy(agent)
            runtime.serve(agent)  # until SIGTERM: finishes or releases the current step
        else:
            runtime.run("support-agent", " ".join(sys.argv[2:]) or "hello").print_result()

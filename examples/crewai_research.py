"""A CrewAI crew made durable by one changed line, with its writer's draft reviewed by a human.

Before:   result = crew.kickoff(inputs={"topic": topic})
After:    result = durable(crew).kickoff(inputs={"topic": topic})

The researcher searches (each search a durable tool call, each model call a durable step); the writer's
task has ``human_input=True``, so the run waits on the runtime for your feedback, holding no process.
Answer from another terminal with ``agentspan executions respond <execution id> "<feedback>"`` (an
empty answer accepts the draft), as the line printed while it waits says. Kill the process at any
point and run it again: the run goes on from where it was, without searching or asking the model
again for what it already did. ``--no-review`` leaves the human out.

Needs OPENAI_API_KEY (or OPENAI_BASE_URL pointing at an OpenAI-compatible endpoint) and Agentspan
installed from its repository with ``pip install -e '.[server,crewai]'``.
"""

import sys

from crewai import LLM, Agent, Crew, Task
from crewai.tools import tool

from agentspan.adapters.crewai import durable


@tool("search_web")
def search_web(query: str) -> str:
    """Search the web for a query."""
    return f"3 articles about {query}"


llm = LLM(model="gpt-4o-mini")
researcher = Agent(
    role="researcher", goal="Find what matters about {topic}", backstory="A thorough analyst.", llm=llm,
    tools=[search_web],
)  # fmt: skip
writer = Agent(role="writer", goal="Explain {topic} clearly", backstory="A careful writer.", llm=llm)
research = Task(description="Research {topic}.", expected_output="key findings", agent=researcher)
report = Task(
    description="Write a short report on {topic} from the findings.", expected_output="a paragraph", agent=writer,
    context=[research], human_input="--no-review" not in sys.argv,
)  # fmt: skip
crew = Crew(agents=[researcher, writer], tasks=[research, report], name="research-crew")

if __name__ == "__main__":
    result = durable(crew).kickoff(inputs={"topic": "durable execution for AI agents"})
    print(result.raw)
    print(f"tokens: {result.token_usage.total_tokens}", file=sys.stderr)

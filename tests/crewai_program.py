"""Crews for the CrewAI crash tests, and a program that kicks one off (``python crewai_program.py <crew>``).

The program is an ordinary CrewAI script with one changed line, ``durable(crew).kickoff(inputs=...)``;
run again after a SIGKILL, it resumes the unfinished run. Its executions are kept in the embedded
runtime's SQLite file ``AGENTSPAN_DB`` (or at ``AGENTSPAN_SERVER_URL``). It prints the ``CrewOutput``
as JSON (raw answer, each task's raw answer, token usage). Every model is ``crewai.LLM`` at
``OPENAI_BASE_URL`` (the test's ``FakeOpenAIServer``); every tool call appends
``<label>\\t<idempotency key>\\t<pid>`` to the file named by ``AGENT_LOG``.

The crews, also served by ``agentspan worker crewai_program:<name>``:

- ``research``: one agent that searches as often as the model asks (20 times in the tests);
- ``hierarchical``: a manager (``manager_llm``) delegating to a researcher and a writer, each with a tool;
- ``parallel``: two ``async_execution`` research tasks running side by side, then a task comparing them.
"""

from __future__ import annotations

import json
import os
import sys

from crewai import LLM, Agent, Crew, Process, Task
from crewai.tools import tool
from processes import log_call

from agentspan import durable as agentspan_durable
from agentspan.adapters.crewai import durable

PAUSE = 0.1
"""Seconds each tool call takes, as a real one would (so a kill can land inside one)."""


def effect(label: str) -> None:
    """Log a tool's side effect with the idempotency key of the step it runs in."""
    step = agentspan_durable.current_step()
    log_call(f"{label}\t{step.idempotency_key if step else '-'}", pause=PAUSE)


@tool("search")
def search(query: str) -> str:
    """Search the web for a query."""
    effect(f"search {query}")
    return f"results for {query}"


@tool("write")
def write(text: str) -> str:
    """Write a paragraph."""
    effect(f"write {text}")
    return f"wrote {text}"


def llm() -> LLM:
    return LLM(model="gpt-4o-mini", base_url=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:9/v1"), api_key="test")


def _agent(role: str, tools: list[object]) -> Agent:
    return Agent(role=role, goal=f"Do the work of a {role.lower()}", backstory="Careful.", llm=llm(), tools=tools)


def research_crew() -> Crew:
    researcher = _agent("Researcher", [search])
    task = Task(description="Research {topic} thoroughly.", expected_output="A summary", agent=researcher)
    return Crew(agents=[researcher], tasks=[task], name="crewai-research")


def hierarchical_crew() -> Crew:
    task = Task(description="Produce a report on {topic}.", expected_output="A report")
    return Crew(
        agents=[_agent("Researcher", [search]), _agent("Writer", [write])],
        tasks=[task],
        process=Process.hierarchical,
        manager_llm=llm(),
        name="crewai-hierarchical",
    )


def parallel_crew() -> Crew:
    alpha, beta, analyst = (
        _agent("Alpha researcher", [search]),
        _agent("Beta researcher", [search]),
        _agent("Analyst", []),
    )
    first = Task(description="Research alpha.", expected_output="Notes", agent=alpha, async_execution=True)
    second = Task(description="Research beta.", expected_output="Notes", agent=beta, async_execution=True)
    compare = Task(
        description="Compare the notes.", expected_output="A comparison", agent=analyst, context=[first, second]
    )
    return Crew(agents=[alpha, beta, analyst], tasks=[first, second, compare], name="crewai-parallel")


CREWS = {"research": research_crew, "hierarchical": hierarchical_crew, "parallel": parallel_crew}
research = research_crew()
hierarchical = hierarchical_crew()
parallel = parallel_crew()


def main() -> None:
    crew = CREWS[sys.argv[1]]()
    output = durable(crew).kickoff(inputs={"topic": "AI agents"})
    print(
        json.dumps(
            {
                "raw": output.raw,
                "tasks": [task.raw for task in output.tasks_output],
                "usage": output.token_usage.model_dump(),
            }
        )
    )


if __name__ == "__main__":
    main()

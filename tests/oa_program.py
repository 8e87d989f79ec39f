"""A program written against the drop-in ``Runner`` (run as ``python oa_program.py``): an SDK agent
that makes 20 tool calls, each appending ``<query>\\t<pid>`` to the file named by ``AGENT_LOG``. Its
model is the SDK's Chat Completions model at ``OPENAI_BASE_URL``; its executions are kept in the
embedded runtime's SQLite file ``AGENTSPAN_DB``. Run again after a SIGKILL, it resumes the run."""

from __future__ import annotations

import os

import openai
from agents import Agent, OpenAIChatCompletionsModel, function_tool
from processes import log_call

from agentspan.adapters.openai_agents import Runner


@function_tool
def search(query: str) -> str:
    """Search for information."""
    log_call(query)
    return f"results for {query}"


def main() -> None:
    client = openai.AsyncOpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key="test", max_retries=0)
    model = OpenAIChatCompletionsModel(model="gpt-4o-mini", openai_client=client)
    agent = Agent(name="oa-program", instructions="Research, then compare.", model=model, tools=[search])
    result = Runner.run_sync(agent, "compare", max_turns=30)
    print(result.final_output)


if __name__ == "__main__":
    main()

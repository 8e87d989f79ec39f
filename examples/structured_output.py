"""Structured output: the final answer is requested as, and parsed into, a pydantic model."""

from pydantic import BaseModel

from agentspan.agents import Agent, AgentRuntime


class Verdict(BaseModel):
    winner: str
    reasons: list[str]


judge = Agent(
    name="judge",
    model="openai/gpt-4o-mini",
    instructions="Compare the options and answer as JSON with a winner and your reasons.",
    output_type=Verdict,
)

with AgentRuntime() as runtime:
    result = runtime.run(judge, "Temporal, DBOS or Agentspan for durable AI agents?")
    verdict = result.structured
    print(f"winner: {verdict.winner}")
    for reason in verdict.reasons:
        print(f"- {reason}")

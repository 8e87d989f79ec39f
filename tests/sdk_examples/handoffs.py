# The OpenAI Agents SDK's "Handoffs" example (MIT licence), with one change: Runner is imported
# from agentspan.adapters.openai_agents instead of agents.
import asyncio

from agents import Agent

from agentspan.adapters.openai_agents import Runner

spanish_agent = Agent(
    name="Spanish agent",
    instructions="You only speak Spanish.",
)

english_agent = Agent(
    name="English agent",
    instructions="You only speak English",
)

triage_agent = Agent(
    name="Triage agent",
    instructions="Handoff to the appropriate agent based on the language of the request.",
    handoffs=[spanish_agent, english_agent],
)


async def main():
    result = await Runner.run(triage_agent, input="Hola, ¿cómo estás?")
    print(result.final_output)


if __name__ == "__main__":
    asyncio.run(main())

# The OpenAI Agents SDK's "Functions" example (MIT licence), with one change: Runner is imported
# from agentspan.adapters.openai_agents instead of agents.
import asyncio

from agents import Agent, function_tool

from agentspan.adapters.openai_agents import Runner


@function_tool
def get_weather(city: str) -> str:
    return f"The weather in {city} is sunny."


agent = Agent(
    name="Hello world",
    instructions="You are a helpful agent.",
    tools=[get_weather],
)


async def main():
    result = await Runner.run(agent, input="What's the weather in Tokyo?")
    print(result.final_output)


if __name__ == "__main__":
    asyncio.run(main())

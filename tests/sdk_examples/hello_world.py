# The OpenAI Agents SDK's "Hello world" example (MIT licence), with one change: Runner is imported
# from agentspan.adapters.openai_agents instead of agents.
from agents import Agent

from agentspan.adapters.openai_agents import Runner

agent = Agent(name="Assistant", instructions="You are a helpful assistant")

result = Runner.run_sync(agent, "Write a haiku about recursion in programming.")
print(result.final_output)

"""An OpenAI Agents SDK support agent made durable by one changed import, with a refund that waits
for a human.

Before:   from agents import Agent, Runner, function_tool
After:    from agents import Agent, function_tool
          from agentspan.adapters.openai_agents import Runner

The refund tool is marked ``needs_approval`` (the SDK's own flag). The run stops there and waits on
the runtime, holding no process: the first ``Runner.run`` returns the SDK's result with the pending
call in ``interruptions``. Approve it (here from the terminal, or with ``--approve``; elsewhere with
``agentspan signal <execution id> approval:<call id> --payload '{"approved": true}'``) and run the same
agent on the same input again: the run continues where it stopped, without asking the model again
for the turns it already answered. Kill the process at any point and run it again: the run goes on
from where it was (if it was waiting for the approval, the call says so and waits for the decision).

Needs OPENAI_API_KEY (or OPENAI_BASE_URL pointing at an OpenAI-compatible endpoint) and
Agentspan installed from its repository with ``pip install -e '.[server,openai-agents]'``.
"""

import os
import sys

from agents import Agent, function_tool, set_default_openai_api

from agentspan.adapters.openai_agents import Runner, approve, reject

REQUEST = "I was charged twice for order A-17, please refund the extra 20 euros."


@function_tool
def lookup_order(order_id: str) -> str:
    """Look up an order's payments."""
    return f"order {order_id}: two payments of 20 EUR on 2026-11-27"


@function_tool(needs_approval=True)
def refund(order_id: str, amount: float) -> str:
    """Refund an amount of an order to the customer."""
    return f"refunded {amount} EUR for order {order_id}"


if os.environ.get("OPENAI_BASE_URL"):  # OpenAI-compatible servers speak Chat Completions
    set_default_openai_api("chat_completions")

support = Agent(
    name="support",
    instructions="Check the order before you refund anything.",
    tools=[lookup_order, refund],
)

if __name__ == "__main__":
    result = Runner.run_sync(support, REQUEST)
    for item in result.interruptions:
        print(f"waiting for approval: {item.name}({item.arguments}) in execution {result.execution_id}")
        yes = "--approve" in sys.argv or input("approve? [y/N] ").strip().lower() == "y"
        if yes:
            approve(result.execution_id, item.call_id)
        else:
            reject(result.execution_id, item.call_id, "A human declined this refund.")
    if result.interruptions:
        result = Runner.run_sync(support, REQUEST)  # the same run goes on
    print(result.final_output)

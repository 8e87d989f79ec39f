"""A tool that needs approval: the run waits (holding no process) until a person decides.

The decision could come from any process: ``POST /api/executions/{id}/signals/approval:<call id>``
with ``{"approved": true}``, ``{"approved": false, "reason": "..."}`` or
``{"approved": true, "arguments": {...}}``. Here the script approves from the run's handle.
"""

from agentspan.agents import Agent, AgentRuntime, tool


@tool(approval_required=True, approval_timeout=3600)
def refund(order_id: str, amount: float) -> str:
    """Refund an amount of an order to the customer.

    Args:
        order_id: The order.
        amount: In euros.
    """
    return f"refunded {amount:g} EUR for order {order_id}"


support = Agent(
    name="refund-desk",
    model="openai/gpt-4o-mini",
    instructions="Refund what the customer asks for, with the refund tool.",
    tools=[refund],
)

with AgentRuntime() as runtime:
    handle = runtime.start(support, "Please refund the 20 EUR I was overcharged on order A-17.")
    for event in handle.events():
        if event.type == "execution.waiting":
            break
    for pending in handle.pending_approvals():
        print(f"waiting for approval: {pending.tool}({pending.arguments}) [call {pending.call_id}]")
        handle.approve(pending.call_id)  # or handle.reject(call_id, "reason"), or approve(..., arguments={...})
    result = handle.wait()
    result.print_result()

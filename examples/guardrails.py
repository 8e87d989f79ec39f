"""Guardrails: a regex guardrail keeps card numbers out of the answer by asking the model again.

The check is a recorded step: after a crash its verdict is replayed, and the retry happens inside the
same execution, not by starting the run over.
"""

from agentspan.agents import Agent, AgentRuntime, RegexGuardrail

no_card_numbers = RegexGuardrail(
    r"\b(?:\d[ -]?){13,16}\b",
    name="no_card_numbers",
    message="The answer contains a card number; never write card numbers, not even partly masked.",
)

support = Agent(
    name="billing-support",
    model="openai/gpt-4o-mini",
    instructions="You help customers with billing questions.",
    guardrails=[no_card_numbers],
)

with AgentRuntime() as runtime:
    result = runtime.run(support, "Which card do I pay with?")
    result.print_result()
    checks = [s for s in runtime.client.get_journal(result.execution_id) if s.kind == "guardrail"]
    for check in checks:
        print(f"guardrail {check.name}: {'passed' if check.output['passed'] else 'failed, model asked again'}")

"""Guarded agents that the guardrail crash tests serve in worker subprocesses (``agentspan worker``).

The model is OpenAI over HTTP (``OPENAI_BASE_URL`` points at the test's ``FakeOpenAIServer``). The
tool appends ``tool <order>`` and the output guardrail ``check <text>`` to the file named by
``AGENT_LOG``, so a test counts what ran in every process.
"""

from __future__ import annotations

from processes import log_call

from agentspan.agents import Agent, Guardrail, GuardrailResult, LLMGuardrail, tool


@tool
def lookup(order: str) -> str:
    """Look an order up."""
    log_call(f"tool {order}", pause=0)
    return f"order {order}: shipped"


def polite(text: str) -> GuardrailResult:
    """Refuses answers that contain 'rude'."""
    log_call(f"check {text}", pause=0)
    return GuardrailResult(passed="rude" not in text, message="be polite")


guarded = Agent(
    name="guarded", model="openai/gpt-4o-mini", tools=[lookup], guardrails=[Guardrail(polite, name="polite")]
)
judged = Agent(
    name="judged",
    model="openai/gpt-4o-mini",
    guardrails=[LLMGuardrail("openai/gpt-4o-mini", "Never promise refunds.", name="no_refunds")],
)

agents = [guarded, judged]

"""An ADK agent whose tool needs confirmation, for the approval tests' worker processes
(``agentspan worker adk_approval_program:payer``).

``pay`` (a ``FunctionTool(require_confirmation=True)``) appends ``<amount>\\t<pid>`` to the file named by
``AGENT_LOG`` each time it runs; ``bank`` asks a bank to pay with ``LongRunningFunctionTool(order_payment)``,
which logs the same way and returns nothing (the bank's answer comes later). The model is ADK's default
Gemini model at ``GOOGLE_GEMINI_BASE_URL``.
"""

from __future__ import annotations

import os

from google.adk.agents import LlmAgent
from google.adk.tools.function_tool import FunctionTool
from google.adk.tools.long_running_tool import LongRunningFunctionTool

PROMPT = "Pay 5 to Bob."


def _log(amount: int) -> None:
    with open(os.environ["AGENT_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{amount}\t{os.getpid()}\n")
        log.flush()
        os.fsync(log.fileno())


def pay(amount: int) -> dict[str, str]:
    """Pay an amount."""
    _log(amount)
    return {"paid": str(amount)}


def order_payment(amount: int) -> None:
    """Ask the bank to pay an amount; it answers later."""
    _log(amount)


def make_payer(name: str = "adk_payer") -> LlmAgent:
    """The payer agent (a fresh one)."""
    return LlmAgent(
        name=name,
        model="gemini-2.5-flash",
        instruction="Pay when asked.",
        tools=[FunctionTool(pay, require_confirmation=True)],
    )


payer = make_payer()
bank = LlmAgent(
    name="adk_bank", model="gemini-2.5-flash", instruction="Pay when asked.",
    tools=[LongRunningFunctionTool(order_payment)],
)  # fmt: skip

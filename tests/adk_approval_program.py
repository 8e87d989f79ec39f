"""An ADK agent whose tool needs confirmation, for the approval tests' worker processes
(``agentspan worker adk_approval_program:payer``).

``pay`` (a ``FunctionTool(require_confirmation=True)``) appends ``<amount>\\t<pid>`` to the file named by
``AGENT_LOG`` each time it runs; the model is ADK's default Gemini model at ``GOOGLE_GEMINI_BASE_URL``.
"""

from __future__ import annotations

import os

from google.adk.agents import LlmAgent
from google.adk.tools.function_tool import FunctionTool

PROMPT = "Pay 5 to Bob."


def pay(amount: int) -> dict[str, str]:
    """Pay an amount."""
    with open(os.environ["AGENT_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{amount}\t{os.getpid()}\n")
        log.flush()
        os.fsync(log.fileno())
    return {"paid": str(amount)}


def make_payer(name: str = "adk_payer") -> LlmAgent:
    """The payer agent (a fresh one)."""
    return LlmAgent(
        name=name,
        model="gemini-2.5-flash",
        instruction="Pay when asked.",
        tools=[FunctionTool(pay, require_confirmation=True)],
    )


payer = make_payer()

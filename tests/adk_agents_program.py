"""ADK workflow agents for the Google ADK adapter's crash tests, imported by the test and by worker
processes (``agentspan worker adk_agents_program:fanout``).

``fanout`` is a ``ParallelAgent`` of three ``LlmAgent`` branches (``north``, ``south``, ``east``), each
with an instruction of its own (the test's fake model answers each branch from its own script);
``rounds`` is a ``LoopAgent`` running ``counter`` four times. Their tools append
``<label>\\t<idempotency key>\\t<pid>`` to the file named by ``AGENT_LOG``, take a moment as a real call
would, and record what they did in the session state, under a key per branch (branches share the state).
"""

from __future__ import annotations

import os
import time
import warnings

from google.adk.agents import LlmAgent, LoopAgent, ParallelAgent
from google.adk.tools.tool_context import ToolContext

from agentspan.durable import current_step

MODEL = "gemini-2.5-flash"
PROMPT = "Survey every area."
BRANCHES = {"north": "You survey the north.", "south": "You survey the south.", "east": "You survey the east."}
"""Each branch's instruction: the text the fake model's routes pick its script by."""
LOOP_INSTRUCTION = "You count rounds."
ROUNDS = 4


def _log(label: str) -> None:
    step = current_step()
    with open(os.environ["AGENT_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{label}\t{step.idempotency_key if step else '-'}\t{os.getpid()}\n")
        log.flush()
        os.fsync(log.fileno())
    time.sleep(0.05)


def survey(spot: str, tool_context: ToolContext) -> dict[str, str]:
    """Survey one spot of this agent's area."""
    _log(spot)
    key = f"{tool_context.agent_name}_surveyed"
    tool_context.state[key] = [*tool_context.state.get(key, []), spot]
    return {"spot": spot, "finding": f"all clear at {spot}"}


def tally(number: int, tool_context: ToolContext) -> dict[str, int]:
    """Tally one round."""
    _log(f"round{number}")
    tool_context.state["tallied"] = [*tool_context.state.get("tallied", []), number]
    return {"round": number}


with warnings.catch_warnings():  # ADK 2 deprecates its workflow agents in favour of Workflow
    warnings.simplefilter("ignore", DeprecationWarning)
    fanout = ParallelAgent(
        name="fanout",
        sub_agents=[
            LlmAgent(name=name, model=MODEL, instruction=text, tools=[survey]) for name, text in BRANCHES.items()
        ],
    )
    rounds = LoopAgent(
        name="rounds",
        max_iterations=ROUNDS,
        sub_agents=[LlmAgent(name="counter", model=MODEL, instruction=LOOP_INSTRUCTION, tools=[tally])],
    )

"""A ``SequentialAgent`` for the Google ADK adapter's crash test, imported by the test and by worker
processes (``agentspan worker adk_sequential_program:pipeline``).

``pipeline`` runs three ``LlmAgent`` stages in order (``scout``, ``builder``, ``checker``), each with an
instruction of its own (the test's fake model answers each stage from its own script). Their tool
appends ``<spot>\\t<idempotency key>\\t<pid>`` to the file named by ``AGENT_LOG``, takes a moment as a
real call would, and records what it did in the session state, under a key per stage.
"""

from __future__ import annotations

import warnings

from adk_agents_program import MODEL, survey
from google.adk.agents import LlmAgent, SequentialAgent

PROMPT = "Build it, step by step."
STAGES = {"scout": "You scout the site.", "builder": "You build the thing.", "checker": "You check the build."}
"""Each stage's instruction: the text the fake model's routes pick its script by."""

with warnings.catch_warnings():  # ADK 2 deprecates its workflow agents in favour of Workflow
    warnings.simplefilter("ignore", DeprecationWarning)
    pipeline = SequentialAgent(
        name="pipeline",
        sub_agents=[
            LlmAgent(name=name, model=MODEL, instruction=text, tools=[survey]) for name, text in STAGES.items()
        ],
    )

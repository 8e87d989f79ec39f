"""Guardrails on a crew or flow run: its string inputs checked before the kickoff, its final answer
(``CrewOutput.raw``, a flow's final value as text) after.

CrewAI has no clean way to kick a crew off again with feedback (inputs only fill the placeholders the
tasks were written with), so ``on_fail="retry"`` is refused at start; fix, raise and human work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._guardrails import guarding_of

__all__ = ["RETRY_REFUSAL", "guarded_run"]

RETRY_REFUSAL = "a CrewAI crew or flow cannot be kicked off again with the guardrail's message"


def _checked_inputs(guarding: Any, inputs: Any) -> Any:
    if not guarding.of("input") or not isinstance(inputs, dict):
        return inputs
    checked = dict(inputs)
    for key, value in inputs.items():
        if isinstance(value, str):
            checked[key] = guarding.check("input", value, subject=f"input {key}", can_retry=False).text
    return checked


def _with_answer(output: dict[str, Any], text: str) -> dict[str, Any]:
    if text == output.get("output"):
        return output
    fixed = {**output, "output": text, "structured": None}  # the structured form holds what was replaced
    recorded = output.get("crew_output")
    if isinstance(recorded, dict) and isinstance(recorded.get("value"), dict):
        fixed["crew_output"] = {**recorded, "value": {**recorded["value"], "raw": text}}
    return fixed


def guarded_run(
    name: str, guardrails: list[str] | None, inputs: Any, run: Callable[[Any], dict[str, Any]]
) -> dict[str, Any]:
    """``run(inputs)`` with the guardrails the execution was started with (just ``run`` without any)."""
    guarding = guarding_of(name, guardrails, "crewai")
    if guarding is None:
        return run(inputs)
    output = run(_checked_inputs(guarding, inputs))
    verdict = guarding.check("output", str(output.get("output", "")))
    return _with_answer(output, verdict.text)

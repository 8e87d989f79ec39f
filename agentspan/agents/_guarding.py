"""Applying guardrails inside an execution: each check a recorded step, each failure handled by its
``on_fail``. One mechanism for native agents (their prompt, answers, tool calls) and for the final
answers of framework runs.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import functools
import inspect
import threading
from collections.abc import Sequence
from typing import Any

from ..durable import run_step
from ..durable._codec import Codec, fingerprint
from ..durable._context import current_context
from ..errors import ConfigurationError, GuardrailError
from ..runtime._approval import approval_signal
from ._guardrail import Guardrail, GuardrailResult, Position, _verdict

__all__ = ["Guarding", "Verdict", "check_guardrails", "retry_request"]

_RESULT = Codec(GuardrailResult)
# What a person may put in place of a text a guardrail sent to them (an approval with edited arguments).
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"output": {"type": "string", "description": "The text to use instead."}},
    "required": ["output"],
    "additionalProperties": False,
}


@dataclasses.dataclass(frozen=True)
class Verdict:
    """What the guardrails of one position made of a text."""

    text: str
    """The text to go on with: the original, or a fixed, redacted or human-edited one."""
    retry: str | None = None
    """When set, the model is to be asked again, told this (a ``retry`` guardrail failed)."""
    guardrail: str | None = None
    """The guardrail that asks for the retry."""


def retry_request(message: str) -> str:
    """What the model is told when a ``retry`` guardrail refused its answer (native and framework runs)."""
    return f"Your answer was not accepted: {message.strip().rstrip('.')}. Answer again."


def check_guardrails(guardrails: Sequence[Any]) -> tuple[Guardrail, ...]:
    """Validate a ``guardrails=`` argument: Guardrail objects only, unique names."""
    if isinstance(guardrails, (Guardrail, str)) or not isinstance(guardrails, Sequence):
        raise ConfigurationError(f"guardrails= takes a list of Guardrail objects, not {guardrails!r}")
    found = tuple(guardrails)
    names: set[str] = set()
    for item in found:
        if not isinstance(item, Guardrail):
            raise ConfigurationError(
                f"guardrails= takes Guardrail objects (Guardrail(func), RegexGuardrail, LLMGuardrail), not {item!r}"
            )
        if item.name in names:
            raise ConfigurationError(f"two guardrails are named {item.name!r}: give each its own name=")
        names.add(item.name)
    return found


def _run_check(guardrail: Guardrail, text: str) -> GuardrailResult:
    value = guardrail.func(text)
    if inspect.isawaitable(value):
        value = asyncio.run(_await(value))
    return _verdict(guardrail.name, value)


async def _await(value: Any) -> Any:
    return await value


class Guarding:
    """The guardrails of one run, and how many retries each has used.

    The retry counts are rebuilt on replay: the checks replay in the same order with the same verdicts.

    Args:
        guardrails: The guardrails.
        agent: The agent (or framework run) they guard, for the journal and for a person's inbox.
        framework: ``native``, ``langgraph``, ``openai_agents``, ``crewai`` or ``google_adk``.
    """

    def __init__(self, guardrails: Sequence[Guardrail], *, agent: str, framework: str = "native") -> None:
        self.guardrails = check_guardrails(guardrails)
        self.agent = agent
        self.framework = framework
        self.retries: collections.Counter[str] = collections.Counter()
        # Parallel tool calls check in their own threads; the count and its limit are one decision.
        self._lock = threading.Lock()

    def of(self, position: Position | str) -> list[Guardrail]:
        """The guardrails that check ``position``."""
        return [g for g in self.guardrails if g.position == position]

    def check(
        self,
        position: Position | str,
        text: str,
        *,
        subject: str = "answer",
        can_retry: bool = True,
        identity: Any = None,
    ) -> Verdict:
        """Run the ``position`` guardrails on ``text`` in order, each as a recorded step.

        Returns the text to go on with, or a retry request. Raises :class:`GuardrailError` when a
        guardrail ends the run; a ``human`` guardrail suspends the execution until a person decides.
        ``subject`` names what is checked in messages; ``can_retry=False`` makes ``retry`` act as
        ``raise`` (nothing can be asked again: a run's prompt). ``identity`` (JSON) names the checked
        call uniquely (a tool call's turn and id): the checks are then keyed by it and may run side by
        side with other calls' checks, in any order, and still replay by key.
        """
        for guardrail in self.of(position):
            step_input = {"position": str(position), "subject": subject, "text": text}
            result: GuardrailResult = run_step(
                "guardrail", guardrail.name, step_input, functools.partial(_run_check, guardrail, text),
                codec=_RESULT, identity=None if identity is None else {"call": identity, **step_input},
                ordered=identity is None,
            )  # fmt: skip
            if result.passed:
                continue
            message = result.message or f"the {guardrail.name} guardrail failed"
            if guardrail.on_fail == "fix":
                if result.fixed_output is None:
                    raise GuardrailError(
                        f"guardrail {guardrail.name} failed on the {subject} ({message}) and gave no fixed_output",
                        guardrail=guardrail.name,
                    )
                text = result.fixed_output
            elif guardrail.on_fail == "human":
                text = self._ask_a_person(guardrail, text, message, subject, identity)
            elif guardrail.on_fail == "retry" and can_retry and self._take_retry(guardrail):
                return Verdict(text, retry=message, guardrail=guardrail.name)
            else:
                spent = f" after {guardrail.max_retries} retries" if guardrail.on_fail == "retry" and can_retry else ""
                raise GuardrailError(
                    f"guardrail {guardrail.name} failed on the {subject}{spent}: {message}", guardrail=guardrail.name
                )
        return Verdict(text)

    def _take_retry(self, guardrail: Guardrail) -> bool:
        """Use one of ``guardrail``'s retries; ``False`` when they are spent."""
        with self._lock:
            if self.retries[guardrail.name] >= guardrail.max_retries:
                return False
            self.retries[guardrail.name] += 1
            return True

    async def check_async(
        self,
        position: Position | str,
        text: str,
        *,
        subject: str = "answer",
        can_retry: bool = True,
        identity: Any = None,
    ) -> Verdict:
        """:meth:`check` from an event loop (the checks run in a thread, the durable context with them)."""
        if not self.of(position):
            return Verdict(text)
        return await asyncio.to_thread(
            functools.partial(self.check, subject=subject, can_retry=can_retry, identity=identity), position, text
        )

    def _ask_a_person(self, guardrail: Guardrail, text: str, message: str, subject: str, identity: Any = None) -> str:
        """Wait (durably) for a person: approve keeps the text, an edit replaces it, a rejection ends the run."""
        found = current_context()
        if found is None:
            raise GuardrailError(
                f"guardrail {guardrail.name} failed on the {subject} ({message}) and asks a person, which needs"
                " a durable execution (run the agent with an AgentRuntime)",
                guardrail=guardrail.name,
            )
        named = {"agent": self.agent, "guardrail": guardrail.name, "subject": subject, "text": text}
        ident = fingerprint(named if identity is None else {**named, "call": identity})
        call_id = f"guardrail-{ident[:20]}"
        signal = approval_signal(call_id)
        # Recorded as a tool approval of its own (call id, tool, arguments), so the handle and the inbox
        # list and decide it like any other; an edit is the text to use instead.
        details = {
            "call_id": call_id, "tool": f"guardrail:{guardrail.name}", "arguments": {"output": text},
            "guardrail": guardrail.name, "subject": subject, "output": text, "message": message,
            "agent": self.agent, "framework": self.framework, "schema": OUTPUT_SCHEMA,
        }  # fmt: skip
        payload = found[0].wait_for_signal(signal, kind="approval", details=details)
        approved = payload is True or payload in ("approve", "approved")
        reason = None
        if isinstance(payload, dict):
            approved = payload.get("approved") is True
            reason = payload.get("reason")
            edited = payload.get("arguments")
            if approved and isinstance(edited, dict) and isinstance(edited.get("output"), str):
                return str(edited["output"])
        if approved:
            return text
        raise GuardrailError(
            f"guardrail {guardrail.name}: a person rejected the {subject}" + (f": {reason}" if reason else ""),
            guardrail=guardrail.name,
        )

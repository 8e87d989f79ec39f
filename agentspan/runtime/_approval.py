"""Approval decisions: the payload of an ``approval:<tool call id>`` signal, checked on delivery.

A decision is one of:

- ``{"approved": true}``: the tool runs with the arguments the model gave;
- ``{"approved": false, "reason": "..."}``: the tool does not run; the model reads the reason as the
  tool's result (a default text when there is none);
- ``{"approved": true, "arguments": {...}}``: the tool runs once with these (edited) arguments,
  checked against the tool's JSON schema when the decision is delivered.

``true``/``false`` and the strings ``"approve"``/``"reject"`` are accepted too. A decision may also
carry a ``"payload"`` (any JSON) for a framework whose confirmation takes one (Google ADK's
``ToolConfirmation.payload``).
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidInputError

__all__ = [
    "APPROVAL_PREFIX",
    "DEFAULT_REJECTION",
    "Decision",
    "approval_signal",
    "check_arguments",
    "decision_of",
    "timed_out",
]

APPROVAL_PREFIX = "approval:"
DEFAULT_REJECTION = "The user rejected this tool call."
"""What the model reads as the result of a rejected call when the decision gives no reason."""
_FORM = 'an approval decision is {"approved": true}, {"approved": false, "reason": "..."} or {"approved": true, "arguments": {...}}'
_KEYS = frozenset({"approved", "reason", "arguments", "payload"})


def approval_signal(call_id: str) -> str:
    """The signal a decision on tool call ``call_id`` is delivered as."""
    return f"{APPROVAL_PREFIX}{call_id}"


class Decision:
    """An approval decision: approved (possibly with edited arguments), or rejected with a reason."""

    __slots__ = ("approved", "arguments", "data", "reason")

    def __init__(
        self, approved: bool, reason: str | None = None, arguments: dict[str, Any] | None = None, data: Any = None
    ) -> None:
        self.approved = approved
        self.reason = reason
        self.arguments = arguments
        """The edited arguments the tool runs with instead of the model's (approvals only)."""
        self.data = data
        """The decision's ``"payload"``, for a framework whose confirmation carries one."""

    def payload(self) -> dict[str, Any]:
        """The decision as the signal's JSON payload."""
        payload: dict[str, Any] = {"approved": self.approved}
        if self.reason is not None:
            payload["reason"] = self.reason
        if self.arguments is not None:
            payload["arguments"] = self.arguments
        if self.data is not None:
            payload["payload"] = self.data
        return payload

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Decision) and self.payload() == other.payload()

    def __hash__(self) -> int:
        return hash(json.dumps(self.payload(), sort_keys=True))

    def __repr__(self) -> str:
        return f"Decision({self.payload()!r})"

    def describe(self) -> str:
        """The decision in words, for a message: ``rejected ("too expensive")``, ``approved``,
        ``approved with edited arguments``."""
        if not self.approved:
            return "rejected" if self.reason is None else f"rejected ({json.dumps(self.reason, ensure_ascii=False)})"
        return "approved with edited arguments" if self.arguments is not None else "approved"


def decision_of(payload: Any) -> Decision:
    """The decision a signal payload carries; a clear error for anything else."""
    if isinstance(payload, bool):
        return Decision(payload)
    if payload in ("approve", "approved"):
        return Decision(True)
    if payload in ("reject", "rejected"):
        return Decision(False)
    if isinstance(payload, dict) and isinstance(payload.get("approved"), bool):
        unknown = sorted(set(payload) - _KEYS)
        if unknown:
            raise InvalidInputError(f"an approval decision has no field {unknown[0]!r}; {_FORM}")
        reason = payload.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise InvalidInputError("an approval's 'reason' must be a string")
        arguments = payload.get("arguments")
        if arguments is not None:
            if not isinstance(arguments, dict):
                raise InvalidInputError(
                    f"an approval's 'arguments' must be a JSON object of the tool's arguments, not {json.dumps(arguments)[:100]}"
                )
            if not payload["approved"]:
                raise InvalidInputError("a rejection cannot carry 'arguments': edited arguments approve the call")
        return Decision(payload["approved"], reason, arguments, payload.get("payload"))
    raise InvalidInputError(f"{_FORM}, not {json.dumps(payload)[:200]}")


def timed_out(approve: bool, timeout: float) -> Decision:
    """The default decision taken when nobody decided within ``timeout`` seconds."""
    verdict = "approved" if approve else "rejected"
    return Decision(approve, f"no decision within {timeout:g} s: {verdict} by default")


def check_arguments(tool: str, schema: dict[str, Any], arguments: dict[str, Any]) -> None:
    """Edited ``arguments`` against the tool's JSON ``schema``; ``InvalidInputError`` names the field."""
    import jsonschema  # imported here: only edits need it, and it takes a while to import

    validator_class = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    errors = sorted(validator_class(schema).iter_errors(arguments), key=lambda e: (list(e.absolute_path), e.message))
    if not errors:
        return
    first = errors[0]
    field = ".".join(str(p) for p in first.absolute_path)
    where = f"field {field!r}" if field else "the arguments"
    raise InvalidInputError(
        f"the edited arguments for {tool} do not match its schema: {where}: {first.message}; nothing was recorded"
    )

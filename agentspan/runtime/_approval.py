"""Approval decisions: the payload of an ``approval:<tool call id>`` signal, checked on delivery.

A decision is ``{"approved": true}`` or ``{"approved": false, "reason": "..."}``; ``true``/``false``
and the strings ``"approve"``/``"reject"`` are accepted too. The reason of a rejection is what the
model is shown as the tool's result.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidInputError

__all__ = ["APPROVAL_PREFIX", "Decision", "approval_signal", "decision_of"]

APPROVAL_PREFIX = "approval:"


def approval_signal(call_id: str) -> str:
    """The signal a decision on tool call ``call_id`` is delivered as."""
    return f"{APPROVAL_PREFIX}{call_id}"


class Decision:
    """An approval decision: approved, or rejected with the reason the model is shown."""

    __slots__ = ("approved", "reason")

    def __init__(self, approved: bool, reason: str | None = None) -> None:
        self.approved = approved
        self.reason = reason

    def payload(self) -> dict[str, Any]:
        """The decision as the signal's JSON payload."""
        return (
            {"approved": self.approved} if self.reason is None else {"approved": self.approved, "reason": self.reason}
        )


def decision_of(payload: Any) -> Decision:
    """The decision a signal payload carries; a clear error for anything else."""
    if isinstance(payload, bool):
        return Decision(payload)
    if payload in ("approve", "approved"):
        return Decision(True)
    if payload in ("reject", "rejected"):
        return Decision(False)
    if isinstance(payload, dict) and isinstance(payload.get("approved"), bool):
        reason = payload.get("reason")
        if reason is not None and not isinstance(reason, str):
            raise InvalidInputError("an approval's 'reason' must be a string")
        return Decision(payload["approved"], reason)
    raise InvalidInputError(
        'an approval decision is {"approved": true} or {"approved": false, "reason": "..."},'
        f" not {json.dumps(payload)[:200]}"
    )

"""Human input: the payload of a ``human:<id>`` signal, checked on delivery.

A framework's request for human feedback (a CrewAI task with ``human_input=True``, a flow's
``@human_feedback``) waits on such a signal. The answer is the feedback text, or
``{"feedback": "..."}``; an empty text accepts what the human was shown.
"""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidInputError

__all__ = ["HUMAN_PREFIX", "feedback_of"]

HUMAN_PREFIX = "human:"


def feedback_of(payload: Any) -> str:
    """The feedback text an answer carries; a clear error for anything else."""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict) and isinstance(payload.get("feedback"), str) and set(payload) == {"feedback"}:
        return str(payload["feedback"])
    raise InvalidInputError(
        'human input is the feedback text (a JSON string; "" accepts) or {"feedback": "..."},'
        f" not {json.dumps(payload)[:200]}"
    )

"""Human input inside an Agentspan run: a durable wait on the server instead of a read from stdin.

:func:`ask_human` suspends the execution until the answer arrives as the signal it names (holding no
process); the answer is the feedback text, an empty answer accepting the draft. The wait records
what it waits for (``details``: the task, the agent, its draft) for whoever answers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ...durable._codec import to_json
from ...durable._context import current_context
from ...errors import ConfigurationError
from ._scope import current_run

__all__ = ["HUMAN_PREFIX", "ask_human", "feedback_of", "human_input"]

HUMAN_PREFIX = "human:"


def feedback_of(payload: Any) -> str:
    """The feedback text an answer carries: a string, or ``{"feedback": "..."}``."""
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict) and isinstance(payload.get("feedback"), str):
        return str(payload["feedback"])
    raise ConfigurationError(f'human input is a string or {{"feedback": "..."}}, not {json.dumps(payload)[:200]}')


def ask_human(details: dict[str, Any]) -> str:
    """Wait durably for a human's answer to ``details`` (JSON) and return it."""
    found = current_context()
    state = current_run()
    if found is None or state is None:
        raise ConfigurationError("ask_human() is only available inside an Agentspan run")
    ctx, parent = found
    recorded = to_json(details, "what the human input is asked for", check=False)
    seed = json.dumps([parent, recorded], sort_keys=True, ensure_ascii=False)
    digest = hashlib.blake2b(seed.encode(), digest_size=6).hexdigest()
    with state.lock:
        n = state.asked.get(digest, 0)
        state.asked[digest] = n + 1
    signal = f"{HUMAN_PREFIX}{digest}" + (f".{n}" if n else "")
    return feedback_of(ctx.wait_for_signal(signal, kind="human", details=recorded))


@contextmanager
def human_input() -> Iterator[None]:
    """Answer CrewAI's requests for human input durably while the enclosed code runs (see the tasks'
    provider, installed here)."""
    yield

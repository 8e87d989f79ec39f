"""Human input inside an Agentspan run (``Task(human_input=True)``): filled in by the human-input module."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["human_input"]


@contextmanager
def human_input() -> Iterator[None]:
    """Answer CrewAI's requests for human input durably while the enclosed code runs."""
    yield

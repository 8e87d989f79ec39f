"""Whether the calling code is inside an Agentspan run of a crew or flow (a context variable), and what
that run must remember across its threads.

Only calls made inside such a run become steps; outside it the patched CrewAI methods behave exactly
as CrewAI's own. CrewAI runs async tasks in daemon threads and parallel tool calls in a thread pool,
both with copied context variables, so the run state reaches them.
"""

from __future__ import annotations

import contextvars
import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from ...durable._context import current_context
from ...errors import AgentspanError

__all__ = ["RunState", "active", "current_run", "crewai_run", "raise_if_failed"]


@dataclasses.dataclass
class RunState:
    """One Agentspan run of a crew or flow."""

    fatal: AgentspanError | None = None
    """An error that must end the run even though CrewAI catches it (a tool result that cannot be
    stored: CrewAI would hand the error to the model as the tool's answer and go on)."""
    asked: dict[str, int] = dataclasses.field(default_factory=dict)
    """How many times each human-input question was asked in this run (their signals are numbered)."""
    prompts: dict[str, list[Any]] = dataclasses.field(default_factory=dict)
    """Per place (enclosing step and model): the messages the last model call there was sent; a model
    step records only the messages added since then."""
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def fail(self, exc: AgentspanError) -> None:
        """Remember the first error that must end the run."""
        with self.lock:
            if self.fatal is None:
                self.fatal = exc


_RUN: contextvars.ContextVar[RunState | None] = contextvars.ContextVar("agentspan_crewai_run", default=None)


def current_run() -> RunState | None:
    """The run the calling code belongs to, when its model and tool calls must be steps."""
    state = _RUN.get()
    if state is None or current_context() is None:
        return None
    return state


def active() -> bool:
    """Whether model and tool calls made here are durable steps."""
    return current_run() is not None


def raise_if_failed(state: RunState) -> None:
    """Raise the run's fatal error, if it has one: nothing more may run once a result was lost."""
    if state.fatal is not None:
        raise state.fatal


@contextmanager
def crewai_run() -> Iterator[RunState]:
    """Mark the enclosed code (and the threads and tasks it starts) as an Agentspan run."""
    state = RunState()
    token = _RUN.set(state)
    try:
        yield state
    finally:
        _RUN.reset(token)

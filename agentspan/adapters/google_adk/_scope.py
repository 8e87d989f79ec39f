"""Whether the calling code is inside an Agentspan run of an ADK agent (a context variable), what that
run must remember, and the deterministic ids ADK draws inside it.

Only calls made inside such a run become steps; outside it the patched ADK methods behave exactly as
ADK's own. ADK runs parallel tool calls and ``ParallelAgent`` branches as asyncio tasks, which copy
context variables, so the run state reaches them. Each ``ParallelAgent`` branch counts the ids it draws
apart (:func:`in_branch`): concurrent branches draw them in another order on a replay than live.
"""

from __future__ import annotations

import contextvars
import dataclasses
import hashlib
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

from google.adk.platform import uuid as platform_uuid

from ...durable._context import current_context
from ...errors import AgentspanError

__all__ = ["RunState", "adk_run", "current_run", "in_branch", "raise_if_failed", "stable_call_id"]

# The ADK branch (``InvocationContext.branch``, a dotted name such as ``fanout.left``) the calling code runs
# in; ``None`` outside any ``ParallelAgent`` branch.
_BRANCH: contextvars.ContextVar[str | None] = contextvars.ContextVar("agentspan_google_adk_branch", default=None)


@dataclasses.dataclass
class RunState:
    """One attempt of an Agentspan run of an ADK agent or app."""

    tag: str
    """What every id ADK draws in this run starts with: made from the execution id, so ids differ
    between executions and are the same on every attempt of one."""
    fatal: AgentspanError | None = None
    """An error that must end the run even if ADK would hand it to the model (a tool result that
    cannot be stored, caught by an ``on_tool_error_callback``)."""
    prompts: dict[str, tuple[list[Any], dict[str, Any]]] = dataclasses.field(default_factory=dict)
    """Per place (enclosing step, agent and model): the contents and config (as JSON) the last model
    call there was sent; a model step records only what changed since then."""
    drawn: dict[str | None, int] = dataclasses.field(default_factory=dict)
    """How many ids were drawn so far, per enclosing step and ADK branch (``None``: outside any step, on
    the root branch)."""
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)

    def new_id(self) -> str:
        """The next id, counted from 1 in each attempt, so a replay draws the same ids in the same order
        as the run it replays (function-call ids, invocation ids, event ids): ``<tag>-<n>``, or
        ``<tag>-<step>-<n>`` inside a step. Ids drawn inside a step (by the agent an ``AgentTool`` runs,
        by a tool) are counted apart: a replayed step draws none, and the ids after it must not move. So
        are the ids of each ``ParallelAgent`` branch (``<tag>-<step and branch>-<n>``): its branches run
        side by side, and only the order of the draws within one branch is the same on every attempt."""
        found = current_context()
        parent = found[1] if found is not None else None
        branch = _BRANCH.get()
        if branch is not None:
            parent = f"{parent or ''}\0{branch}"
        with self.lock:
            n = self.drawn[parent] = self.drawn.get(parent, 0) + 1
        if parent is None:
            return f"{self.tag}-{n}"
        return f"{self.tag}-{hashlib.blake2b(parent.encode(), digest_size=3).hexdigest()}-{n}"

    def fail(self, exc: AgentspanError) -> None:
        """Remember the first error that must end the run."""
        with self.lock:
            if self.fatal is None:
                self.fatal = exc


_RUN: contextvars.ContextVar[RunState | None] = contextvars.ContextVar("agentspan_google_adk_run", default=None)


def current_run() -> RunState | None:
    """The run the calling code belongs to, when its model and tool calls must be steps."""
    state = _RUN.get()
    if state is None or current_context() is None:
        return None
    return state


async def in_branch(branch: str | None, events: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """``events`` (an agent's ``run_async``), with the ids drawn while they are made counted on ``branch``.

    A ``ParallelAgent`` iterates each branch's events in a task of its own (a copy of the context), so
    the branch set here is that task's alone; elsewhere an agent runs on its parent's branch."""
    token = _BRANCH.set(branch)
    try:
        async for event in events:
            yield event
    finally:
        try:
            _BRANCH.reset(token)
        except ValueError:  # closed from another context (garbage collection): that one never saw it
            pass
        aclose = getattr(events, "aclose", None)
        if aclose is not None:
            await aclose()


def raise_if_failed(state: RunState) -> None:
    """Raise the run's fatal error, if it has one: nothing more may run once a result was lost."""
    if state.fatal is not None:
        raise state.fatal


def stable_call_id(state: RunState, call_id: str) -> str:
    """``call_id`` without the run's tag: the same in every execution of the same agent and prompt
    (step keys are made from it; the ids ADK keeps in the session stay unique per execution)."""
    return call_id.replace(state.tag, "run")


def run_tag(execution_id: str) -> str:
    """The id prefix of the runs of execution ``execution_id``."""
    return "as" + hashlib.blake2b(execution_id.encode(), digest_size=4).hexdigest()


@contextmanager
def adk_run(execution_id: str) -> Iterator[RunState]:
    """Mark the enclosed code (and the tasks it starts) as an attempt of an Agentspan run, with ADK's
    ids drawn from the run (``google.adk.platform.uuid``'s provider, also a context variable).

    Call it in a context of its own (a task's copy): ADK's provider can only be reset to its
    default, not to the one it replaced."""
    state = RunState(run_tag(execution_id))
    token = _RUN.set(state)
    platform_uuid.set_id_provider(state.new_id)
    try:
        yield state
    finally:
        platform_uuid.reset_id_provider()
        _RUN.reset(token)

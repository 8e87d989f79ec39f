"""Following an execution live from its event stream: what ``agentspan run`` and
``agentspan executions follow`` print while it works."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from ..client import Client
from ..runtime import Event, Execution, ExecutionStatus, StepStatus
from ..runtime._human import HUMAN_PREFIX

__all__ = ["Follower", "describe_wait", "lease_note"]

_TERMINAL = frozenset({"execution.completed", "execution.failed", "execution.cancelled"})


def _short(value: Any, width: int = 80) -> str:
    text = str(value).replace("\n", " ")
    return text if len(text) <= width else text[: width - 1] + "…"


def describe_wait(data: dict[str, Any], execution_id: str = "ID") -> str:
    """What a waiting execution waits for, from its ``execution.waiting`` event (or its ``wait``)."""
    signal = data.get("signal")
    if signal and str(signal).startswith(HUMAN_PREFIX):
        return f'human input ({signal}): answer with agentspan executions respond {execution_id} "<feedback>" (empty accepts)'
    if signal:
        return f"signal {signal!r} (send it: agentspan signal {execution_id} {signal} --payload ...)"
    if data.get("wake_at"):
        return f"a timer due at {data['wake_at']}"
    return "an external event"


def lease_note(execution: Execution, now: datetime | None = None) -> str | None:
    """For a running execution: whose lease it waits on and until when (a dead worker's lease runs out)."""
    if execution.status is not ExecutionStatus.RUNNING or execution.lease_expires_at is None:
        return None
    left = (execution.lease_expires_at - (now or datetime.now(UTC))).total_seconds()
    return (
        f"held by worker {execution.worker_id}; if that worker died, its lease runs out in {max(left, 0):.0f} s"
        f" (at {execution.lease_expires_at:%H:%M:%S} UTC) and another worker takes over"
    )


class Follower:
    """Prints one line per event of interest: claims, steps starting and finishing, waits, the end.

    Args:
        client: Where the execution lives.
        execution_id: The execution to follow.
        out: Where lines go (``agentspan run`` keeps stdout for the result and prints to stderr).
        prefix: Put before every line.
    """

    def __init__(self, client: Client, execution_id: str, out: TextIO, *, prefix: str = "") -> None:
        self.client = client
        self.execution_id = execution_id
        self.out = out
        self.prefix = prefix
        self.after = 0

    def say(self, text: str) -> None:
        """One line, flushed (the user watches it happen)."""
        print(f"{self.prefix}{text}", file=self.out, flush=True)

    def follow(self, *, deadline: float | None = None, until: Callable[[Event], bool] | None = None) -> bool:
        """Print events until the execution finishes (True), ``until`` says stop (True), or the
        ``time.monotonic()`` deadline passes (False)."""
        while True:
            timeout = 30.0 if deadline is None else min(30.0, deadline - time.monotonic())
            if timeout <= 0:
                return False
            for event in self.client.wait_events(self.execution_id, after=self.after, timeout=timeout):
                self.after = event.id
                self.show(event)
                if event.type in _TERMINAL or (until is not None and until(event)):
                    return True

    def replay(self) -> None:
        """Print what already happened (without waiting)."""
        for event in self.client.get_events(self.execution_id, after=self.after, limit=10_000):
            self.after = event.id
            self.show(event)

    def show(self, event: Event) -> None:
        """The line for one event, if it deserves one."""
        line = self.line(event)
        if line:
            self.say(line)

    def line(self, event: Event) -> str | None:
        data = event.data
        kind = f"{data.get('kind', '')} {data.get('name', '')}".strip()
        attempt = data.get("attempt")
        again = f" (attempt {attempt})" if isinstance(attempt, int) and attempt > 1 else ""
        match event.type:
            case "execution.queued" if data.get("name"):
                return f"queued execution {event.execution_id} of {data['name']}"
            case "execution.queued":
                return "queued again for a worker"
            case "execution.running":
                return self._claimed(str(data.get("worker_id")))
            case "step.started":
                return f"  … {kind}{again} running"
            case "step.completed" if data.get("resolved_by") == "server":
                return "  ✓ the awaited event arrived"
            case "step.completed" if data.get("passed") is False:
                return f"  ✗ {kind}{again} refused: {_short(str(data.get('message') or ''))}"
            case "step.completed":
                return f"  ✓ {kind}{again}"
            case "step.failed":
                error = data.get("error") or {}
                message = error.get("message", "") if isinstance(error, dict) else ""
                return f"  ✗ {kind}{again}: {_short(message)}"
            case "step.suspended":
                return f"  ⏸ {kind} waits"
            case "execution.waiting":
                return f"waiting for {describe_wait(data, self.execution_id)}" + self._asked(data.get("signal"))
            case "execution.released":
                return "handed back by its worker (it stopped); the next worker resumes it"
            case "lease.expired":
                return f"the lease of worker {data.get('worker_id')} ran out (its process died or hung)"
            case "signal.delivered":
                return f"signal {data.get('name')!r} delivered"
            case "divergence":
                return f"  ! divergence at {data.get('key')}: the code no longer makes the recorded call; it runs fresh"
            case "execution.completed":
                return "completed"
            case "execution.failed":
                error = data.get("error") or {}
                message = error.get("message", "") if isinstance(error, dict) else ""
                return f"failed: {_short(message, 200)}"
            case "execution.cancelled":
                return "cancelled"
        return None

    def _asked(self, signal: Any) -> str:
        """For a human-input wait, what the human is shown (the agent's draft, a flow method's output)."""
        if not isinstance(signal, str) or not signal.startswith(HUMAN_PREFIX):
            return ""
        for step in reversed(self.client.get_journal(self.execution_id)):
            if step.kind == "human" and isinstance(step.input, dict) and step.input.get("signal") == signal:
                details = step.input
                shown = details.get("draft", details.get("output"))
                who = details.get("agent") or details.get("method")
                if shown is None:
                    return ""
                return f"\n{self.prefix}  {who or 'it'} asks for review of: {_short(shown, 300)}"
        return ""

    def _claimed(self, worker_id: str) -> str:
        journal = self.client.get_journal(self.execution_id)
        done = sum(step.status is StepStatus.COMPLETED for step in journal)
        if not done:
            return f"worker {worker_id} claimed it"
        return f"worker {worker_id} resumes it at step {done + 1} ({done} recorded steps replay without running again)"

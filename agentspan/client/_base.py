"""The client interface: what workers, handles and tools need from a runtime, over any transport."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from ..runtime import (
    AgentStatus,
    Budget,
    Claim,
    Definition,
    Event,
    Execution,
    ExecutionPage,
    ExecutionStatus,
    Heartbeat,
    InboxDecision,
    InboxItem,
    InboxPage,
    Record,
    Step,
    WriteResult,
)

__all__ = ["Client"]


@runtime_checkable
class Client(Protocol):
    """A runtime, reached in-process (:class:`agentspan.runtime.Service` is one) or over HTTP
    (:class:`agentspan.client.HttpClient`). Both raise the same :mod:`agentspan.errors`."""

    inline_writes: bool
    """True when a write is a cheap in-process call, so async code may make it without a thread."""

    def create_execution(
        self,
        name: str,
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        budget: Budget | None = None,
        framework: str | None = None,
    ) -> Execution:
        """Queue an execution of ``name`` (limited to ``budget``, run by ``framework``); the same
        idempotency key returns the same execution."""
        ...

    def get_execution(self, execution_id: str) -> Execution:
        """One execution."""
        ...

    def list_executions(
        self,
        *,
        status: ExecutionStatus | str | None = None,
        name: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
        framework: str | None = None,
        q: str | None = None,
        summary: bool = False,
    ) -> ExecutionPage:
        """Executions newest first, filtered (``q``: an id prefix or part of the name, any case), one
        page at a time; with ``summary``, each item's counts and the ``total``."""
        ...

    def cancel_execution(self, execution_id: str) -> Execution:
        """Cancel an unfinished execution."""
        ...

    def fork_execution(self, execution_id: str, step: str, *, idempotency_key: str | None = None) -> Execution:
        """Queue a new execution that replays this one's journal up to step ``step`` and runs fresh
        from it; the same idempotency key returns the same fork."""
        ...

    def delete_execution(self, execution_id: str) -> None:
        """Delete a non-running execution with its journal and events."""
        ...

    def get_journal(self, execution_id: str, *, include_superseded: bool = False) -> list[Step]:
        """The journal in order."""
        ...

    def write_records(self, execution_id: str, worker_id: str, epoch: int, records: Sequence[Record]) -> WriteResult:
        """Write a batch of records atomically under the lease ``epoch``."""
        ...

    def claim(
        self, worker_id: str, names: Sequence[str], *, wait_seconds: float = 0.0, lease_seconds: float = 30.0
    ) -> Claim | None:
        """Lease the next execution among ``names``, long-polling up to ``wait_seconds``."""
        ...

    def heartbeat(self, execution_id: str, worker_id: str, epoch: int, *, lease_seconds: float = 30.0) -> Heartbeat:
        """Renew a lease."""
        ...

    def send_signal(self, execution_id: str, name: str, payload: Any = None) -> Execution:
        """Deliver a signal (an approval, a reply) to an execution."""
        ...

    def raise_budget(self, execution_id: str, *, tokens: int | None = None, cost_usd: float | None = None) -> Execution:
        """Raise the budget of an execution waiting on it (``ConflictError`` if it is not)."""
        ...

    def get_events(self, execution_id: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        """Events after an event id."""
        ...

    def list_approvals(
        self,
        *,
        execution_id: str | None = None,
        agent: str | None = None,
        framework: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> InboxPage:
        """The waits for a person not yet decided, across executions, oldest first."""
        ...

    def get_approval(self, approval_id: str) -> InboxItem:
        """One wait of the approvals inbox by its id, pending or decided."""
        ...

    def decide_approval(self, approval_id: str, decision: InboxDecision | dict[str, Any]) -> InboxItem:
        """Approve, reject or answer a wait of the approvals inbox; returns it decided."""
        ...

    def wait_events(self, execution_id: str, *, after: int = 0, timeout: float = 30.0) -> list[Event]:
        """Events after an event id, waiting up to ``timeout`` for the first one."""
        ...

    def put_definition(self, name: str, spec: dict[str, Any] | None = None, *, kind: str = "function") -> Definition:
        """Register a definition by name."""
        ...

    def get_definition(self, name: str) -> Definition:
        """One definition."""
        ...

    def list_definitions(self) -> list[Definition]:
        """All definitions."""
        ...

    def delete_definition(self, name: str) -> None:
        """Remove a definition."""
        ...

    def agent_status(self, name: str) -> AgentStatus:
        """Whether ``name`` is deployed and how many workers serve it."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...

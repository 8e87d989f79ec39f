"""The store interface: every operation is one atomic transaction.

The runtime service validates and notifies; the store owns consistency. Each method below runs in a
single transaction, so a crash at any point leaves either all of a method's writes or none of them.
One contract test suite (``tests/store_contract.py``) runs against every implementation.
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Sequence
from datetime import datetime

from .._inbox import WaitRow
from .._models import (
    Claim,
    Definition,
    Event,
    Execution,
    ExecutionPage,
    ExecutionStatus,
    Heartbeat,
    Record,
    Step,
    WriteResult,
)

__all__ = ["Store", "WouldBlock"]


class WouldBlock(Exception):
    """Raised inside :meth:`Store.at_once` by a call that would have to wait for a lock: nothing changed."""


class Store(abc.ABC):
    """Persistent state of the runtime: executions, journals, the work queue, events, signals.

    Times are passed in by the caller (the service's clock) as UNIX seconds, so tests and replicas
    agree on one clock per call.
    """

    def at_once(self) -> contextlib.AbstractContextManager[None]:
        """In this thread, calls made inside raise :class:`WouldBlock` instead of waiting for a lock.

        The server makes a write on its event loop this way when it can be made at once (the common
        case: no thread hand-off on the per-step path) and in a thread otherwise. A store that cannot
        tell (this default) raises it at once.
        """
        raise WouldBlock("this store cannot tell whether a call would wait")

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. Idempotent."""

    # executions --------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_execution(
        self,
        execution_id: str,
        name: str,
        input_json: str,
        idempotency_key: str | None,
        now: float,
        *,
        budget_json: str | None = None,
        framework: str | None = None,
    ) -> tuple[Execution, bool]:
        """Insert a queued execution (with its budget, JSON, and the framework that runs it), or return
        the one with the same idempotency key.

        Returns the execution and whether it was created. Raises ``ConflictError`` when the key was
        used for a different name or input.
        """

    @abc.abstractmethod
    def get_execution(self, execution_id: str) -> Execution | None:
        """The execution, or ``None``."""

    @abc.abstractmethod
    def list_executions(
        self,
        *,
        status: ExecutionStatus | None,
        name: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        limit: int,
        cursor: str | None,
        framework: str | None = None,
        q: str | None = None,
        summary: bool = False,
    ) -> ExecutionPage:
        """Newest first, filtered, one page at a time (``cursor`` from the previous page).

        ``q`` matches an id prefix or a substring of the name, ignoring case. With ``summary``, each
        item carries its :class:`~agentspan.runtime.ExecutionSummary` and the page the ``total`` of
        the filtered listing (cursor aside), computed over the page's ids only."""

    @abc.abstractmethod
    def cancel_execution(self, execution_id: str, now: float) -> Execution:
        """Make it ``CANCELLED`` (idempotent); ``ConflictError`` if it already finished otherwise."""

    @abc.abstractmethod
    def fork_execution(
        self, source_id: str, execution_id: str, step_key: str, idempotency_key: str | None, now: float
    ) -> tuple[Execution, bool]:
        """Insert queued execution ``execution_id`` forked from step ``step_key`` of ``source_id``, or
        return the one with the same idempotency key (and whether this call created it).

        The fork copies the source's columns that say what to run (name, input, budget) and records
        ``forked_from``. Its journal gets copies (epoch 0) of the source's active, finished steps recorded
        before the chosen one, except the chosen step's ancestors (they run again) and steps whose parent
        is neither copied nor such an ancestor. Events: ``execution.queued`` on the fork,
        ``execution.forked`` on the source.

        Raises ``NotFoundError`` for an unknown execution or step, ``InvalidInputError`` for a superseded
        step, ``ConflictError`` when the key was used for another execution.
        """

    @abc.abstractmethod
    def delete_execution(self, execution_id: str) -> None:
        """Delete it with its journal, events and signals; ``ConflictError`` while it is running."""

    # journal -----------------------------------------------------------------------------------
    @abc.abstractmethod
    def get_journal(self, execution_id: str, *, include_superseded: bool = False) -> list[Step]:
        """All steps ordered by ``seq``; ``NotFoundError`` for an unknown execution."""

    @abc.abstractmethod
    def write_records(
        self, execution_id: str, worker_id: str, epoch: int, records: Sequence[Record], now: float
    ) -> WriteResult:
        """Apply a batch atomically, fenced by ``epoch``: ``LeaseLostError`` and nothing written when
        the epoch is stale or the execution is no longer running under this worker."""

    # work queue ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def claim(self, worker_id: str, names: Sequence[str], lease_seconds: float, now: float) -> Claim | None:
        """Lease the oldest claimable execution among ``names``: queued and due, or running with an
        expired lease, or waiting on a timer that is due. Increments the fencing epoch."""

    @abc.abstractmethod
    def heartbeat(self, execution_id: str, worker_id: str, epoch: int, lease_seconds: float, now: float) -> Heartbeat:
        """Extend the lease; ``LeaseLostError`` if it is no longer this worker's."""

    @abc.abstractmethod
    def expire_leases(self, now: float, worker_ids: Sequence[str] | None = None) -> list[str]:
        """Put running executions whose lease ran out (or, given ``worker_ids``, whose workers are
        known dead) back in the queue; returns their ids."""

    @abc.abstractmethod
    def next_wakeup(self, names: Sequence[str], now: float) -> float | None:
        """The earliest future time at which something among ``names`` becomes claimable."""

    # signals -------------------------------------------------------------------------------------
    @abc.abstractmethod
    def deliver_signal(self, execution_id: str, name: str, payload_json: str, now: float) -> Execution:
        """Store a signal once per name; complete the step waiting for it and re-queue the execution
        if it waits. ``ConflictError`` if the name was delivered with a different payload."""

    @abc.abstractmethod
    def signal_state(self, execution_id: str, name: str) -> tuple[list[Step], str | None]:
        """The steps (current, not superseded) that wait on signal ``name`` or were resolved by it, and
        the payload it was delivered with (``None`` if it was not); ``NotFoundError`` for an unknown
        execution. Lets the service check a decision against the wait it answers."""

    # the approvals inbox ---------------------------------------------------------------------------
    @abc.abstractmethod
    def pending_waits(
        self,
        *,
        execution_id: str | None,
        name: str | None,
        framework: str | None,
        limit: int,
        after_seq: int | None,
    ) -> list[WaitRow]:
        """Waits for a person not yet decided, in unfinished executions, oldest first (by ``seq``, after
        ``after_seq``): suspended active steps of an inbox kind (:data:`~agentspan.runtime._inbox.INBOX_KINDS`)
        with a signal, filtered by execution, agent name and framework."""

    @abc.abstractmethod
    def waits_of_executions(self, id_prefix: str) -> list[WaitRow]:
        """Every wait for a person (pending, decided or closed; active steps first) of the executions
        whose id starts with ``id_prefix``: how an inbox id is looked up."""

    # events --------------------------------------------------------------------------------------
    @abc.abstractmethod
    def events_after(self, execution_id: str, after_id: int, limit: int) -> list[Event]:
        """Events of the execution with ``id > after_id``, oldest first."""

    # definitions ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def put_definition(self, name: str, kind: str, spec_json: str, now: float) -> Definition:
        """Create or replace a definition."""

    @abc.abstractmethod
    def get_definition(self, name: str) -> Definition | None:
        """The definition, or ``None``."""

    @abc.abstractmethod
    def list_definitions(self) -> list[Definition]:
        """All definitions by name."""

    @abc.abstractmethod
    def delete_definition(self, name: str) -> None:
        """Delete it; ``NotFoundError`` if absent."""

"""The runtime service: executions, journals, the work queue, signals and events. No HTTP in here.

The HTTP API is a thin layer over this class, and the local transport *is* this class: it satisfies
:class:`agentspan.client.Client`, so the embedded runtime and tests use it in-process.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from ..errors import ConflictError, InvalidInputError, NotFoundError, NotJSONError, PayloadTooLargeError
from ._approval import APPROVAL_PREFIX, Decision, check_arguments, decision_of
from ._budget import BUDGET_PREFIX, Budget, raise_of
from ._human import HUMAN_PREFIX, feedback_of
from ._inbox_service import InboxMethods
from ._models import (
    FRAMEWORK_PATTERN,
    Claim,
    CreateExecution,
    Definition,
    Event,
    Execution,
    ExecutionPage,
    ExecutionStatus,
    FinishRecord,
    Heartbeat,
    Record,
    Step,
    WriteResult,
    framework_slug,
    validate,
)
from ._notify import Notifier
from ._serving import AgentStatus, ServingRegistry
from .store import Store

__all__ = ["Service"]

DEFAULT_MAX_PAYLOAD_BYTES = 4 * 1024 * 1024
_WORK = "work"
# Waits are capped so that work made claimable by another process (another server replica, or a
# second process on the same SQLite file) is seen within this time even without a notification.
_MAX_SLEEP = 1.0


def _events_topic(execution_id: str) -> str:
    return f"events:{execution_id}"


def _check_finish_is_last(execution_id: str, records: Sequence[Record]) -> None:
    for position, record in enumerate(records[:-1]):
        if isinstance(record, FinishRecord):
            raise ConflictError(
                f"record {position} of the batch for execution {execution_id} finishes it ({record.status}),"
                f" but {len(records) - position - 1} more record(s) follow; a finish record must be the last"
                " of its batch (after it the execution is no longer the worker's), so nothing was written",
                execution_id=execution_id,
            )


class Service(InboxMethods):
    """The runtime core over a :class:`~agentspan.runtime.store.Store`.

    Args:
        store: Where state lives.
        clock: Seconds since the epoch; injectable for tests.
        max_payload_bytes: Largest JSON input, output or signal payload accepted.
    """

    inline_writes = True
    """Writes are in-process calls (see :class:`agentspan.client.Client`)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Callable[[], float] = time.time,
        max_payload_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES,
    ) -> None:
        self.store = store
        self._clock = clock
        self.max_payload_bytes = max_payload_bytes
        self.notifier = Notifier()
        self.serving = ServingRegistry()

    def now(self) -> float:
        """The service's clock in seconds, to the microsecond: the precision times are returned with,
        so a time read back from an execution compares exactly with the stored one."""
        return round(self._clock(), 6)

    def close(self) -> None:
        """Close the store."""
        self.store.close()

    def _json(self, value: Any, what: str) -> str:
        try:
            text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise NotJSONError(f"{what} is not JSON: {exc}; pass only dicts, lists, str, numbers, bools, None") from exc
        if len(text) > self.max_payload_bytes:
            raise PayloadTooLargeError(
                f"{what} is {len(text)} bytes of JSON, over the limit of {self.max_payload_bytes};"
                " store large data elsewhere and pass a reference"
            )
        return text

    # executions -------------------------------------------------------------------------------
    def create_execution(
        self,
        name: str,
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        budget: Budget | None = None,
        framework: str | None = None,
    ) -> Execution:
        """Queue a new execution of ``name`` (or return the one started with the same idempotency key),
        limited to ``budget`` when given; ``framework`` says what runs it (``native``, ``langgraph``...)."""
        execution, _ = self.create_or_get_execution(
            name, input, idempotency_key=idempotency_key, budget=budget, framework=framework
        )
        return execution

    def create_or_get_execution(
        self,
        name: str,
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        budget: Budget | None = None,
        framework: str | None = None,
    ) -> tuple[Execution, bool]:
        """:meth:`create_execution`, also saying whether this call created the execution.

        ``False`` means an execution with ``idempotency_key`` existed already. The store decides it by
        the insert itself, so of callers racing with one key exactly one is told it created it.
        """
        request = validate(
            CreateExecution,
            {
                "name": name,
                "input": input,
                "idempotency_key": idempotency_key,
                "budget": budget,
                "framework": framework,
            },
        )
        budget_json = None if request.budget is None else request.budget.model_dump_json()
        execution, created = self.store.create_execution(
            uuid.uuid4().hex, request.name, self._json(request.input, "execution input"),
            request.idempotency_key, self.now(), budget_json=budget_json, framework=request.framework,
        )  # fmt: skip
        if created:
            self.notifier.notify(_WORK, _events_topic(execution.id))
        return execution, created

    def fork_execution(self, execution_id: str, step: str, *, idempotency_key: str | None = None) -> Execution:
        """Queue a new execution of the same agent on the same input (and budget) that replays the
        journal of ``execution_id`` up to the step whose key is ``step`` and runs fresh from it.

        The fork's journal starts with copies (``epoch`` 0) of the source's finished, active steps
        recorded before that step; the step itself, everything after it, and the steps it runs inside
        (a sub-agent, a node) run again. Its ``forked_from`` says where it came from. The source may be
        in any state: a running one is forked from the journal as committed at that moment. The same
        ``idempotency_key`` returns the same fork.

        Raises:
            NotFoundError: no such execution, or no step with that key in its journal.
            InvalidInputError: the step was superseded by a divergence, or a key is malformed.
            ConflictError: ``idempotency_key`` was used for another execution.
        """
        execution, _ = self.fork_or_get_execution(execution_id, step, idempotency_key=idempotency_key)
        return execution

    def fork_or_get_execution(
        self, execution_id: str, step: str, *, idempotency_key: str | None = None
    ) -> tuple[Execution, bool]:
        """:meth:`fork_execution`, also saying whether this call created the fork (``False``: the fork
        with ``idempotency_key`` existed already)."""
        if not isinstance(step, str) or not 1 <= len(step) <= 1000:
            raise InvalidInputError(
                f"a step key is 1 to 1000 characters; list the keys with `agentspan executions show {execution_id}"
                " --full`"
            )
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
            raise InvalidInputError("an idempotency key is 1 to 200 characters")
        execution, created = self.store.fork_execution(
            execution_id, uuid.uuid4().hex, step, idempotency_key, self.now()
        )
        if created:
            self.notifier.notify(_WORK, _events_topic(execution.id), _events_topic(execution_id))
        return execution, created

    def get_execution(self, execution_id: str) -> Execution:
        """The execution; ``NotFoundError`` if unknown."""
        execution = self.store.get_execution(execution_id)
        if execution is None:
            raise NotFoundError(f"no execution with id {execution_id!r}", execution_id=execution_id)
        return execution

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
        """Executions newest first, filtered, paged.

        ``q`` matches an execution id prefix or a substring of the name, ignoring case. ``summary``
        adds each item's counts, cost and times (:class:`ExecutionSummary`) and the ``total``."""
        if not 1 <= limit <= 1000:
            raise InvalidInputError(f"limit must be between 1 and 1000, not {limit}")
        if isinstance(status, str):
            try:
                status = ExecutionStatus(status)
            except ValueError:
                valid = ", ".join(s.value for s in ExecutionStatus)
                raise InvalidInputError(f"unknown status {status!r}; use one of {valid}") from None
        for label, moment in (("created_after", created_after), ("created_before", created_before)):
            if moment is not None and moment.tzinfo is None:
                raise InvalidInputError(f"{label} must carry a timezone, e.g. 2026-01-01T00:00:00Z")
        if framework is not None and not re.match(FRAMEWORK_PATTERN, framework):
            raise InvalidInputError(
                f"framework {framework!r} is not a framework name; use native, langgraph, openai_agents, crewai"
                " or google_adk"
            )
        if q is not None and len(q) > 200:
            raise InvalidInputError("q is longer than 200 characters; search by an id prefix or part of a name")
        return self.store.list_executions(
            status=status, name=name, created_after=created_after, created_before=created_before,
            limit=limit, cursor=cursor, framework=None if framework is None else framework_slug(framework),
            q=q or None, summary=summary,
        )  # fmt: skip

    def cancel_execution(self, execution_id: str) -> Execution:
        """Cancel it; a worker running it has its next write rejected."""
        execution = self.store.cancel_execution(execution_id, self.now())
        self.notifier.notify(_events_topic(execution_id))
        return execution

    def delete_execution(self, execution_id: str) -> None:
        """Delete it and everything recorded about it."""
        self.store.delete_execution(execution_id)
        self.notifier.notify(_events_topic(execution_id))

    # journal ------------------------------------------------------------------------------------
    def get_journal(self, execution_id: str, *, include_superseded: bool = False) -> list[Step]:
        """The journal in order; superseded steps (history after a divergence) on request."""
        return self.store.get_journal(execution_id, include_superseded=include_superseded)

    def write_records(self, execution_id: str, worker_id: str, epoch: int, records: Sequence[Record]) -> WriteResult:
        """Apply a batch of step, divergence and finish records atomically, fenced by ``epoch``.

        A finish record ends the worker's turn, so it can only be the last record of a batch: a batch
        with anything after one is refused whole (``ConflictError``, nothing written). Otherwise a
        terminal state could be overwritten, or steps recorded after the end.
        """
        _check_finish_is_last(execution_id, records)
        return self._notify_written(
            execution_id, self.store.write_records(execution_id, worker_id, epoch, records, self.now())
        )

    def write_records_at_once(
        self, execution_id: str, worker_id: str, epoch: int, records: Sequence[Record]
    ) -> WriteResult:
        """:meth:`write_records`, or ``WouldBlock`` (nothing written) if it would wait for a lock: lets the
        server write on its event loop when that takes only the commit, and in a thread otherwise."""
        _check_finish_is_last(execution_id, records)
        with self.store.at_once():
            result = self.store.write_records(execution_id, worker_id, epoch, records, self.now())
        return self._notify_written(execution_id, result)

    def _notify_written(self, execution_id: str, result: WriteResult) -> WriteResult:
        if result.status is ExecutionStatus.QUEUED:
            self.notifier.notify(_WORK, _events_topic(execution_id))
        else:
            self.notifier.notify(_events_topic(execution_id))
        return result

    # work queue -----------------------------------------------------------------------------------
    def claim(
        self, worker_id: str, names: Sequence[str], *, wait_seconds: float = 0.0, lease_seconds: float = 30.0
    ) -> Claim | None:
        """Lease the next execution among ``names``, waiting up to ``wait_seconds`` for one."""
        self._check_claim(names, wait_seconds, lease_seconds)
        self.serving.saw(worker_id, names, self.now(), wait_seconds)
        deadline = time.monotonic() + wait_seconds
        while True:
            claim, seen, sleep = self._claim_or_sleep(worker_id, names, lease_seconds, deadline)
            if claim is not None or sleep <= 0:
                return claim
            self.notifier.wait(_WORK, seen, sleep)

    async def claim_async(
        self,
        worker_id: str,
        names: Sequence[str],
        *,
        wait_seconds: float = 0.0,
        lease_seconds: float = 30.0,
        stop: asyncio.Event | None = None,
    ) -> Claim | None:
        """:meth:`claim` for an event loop: the store is used from a thread (a locked database does not
        stall the loop), and the long poll waits without holding one.

        ``stop`` ends the wait early with None (the worker hung up, the server shuts down). Only the
        wait is cut short, never a claim under way, so no execution is leased to nobody.
        """
        self._check_claim(names, wait_seconds, lease_seconds)
        self.serving.saw(worker_id, names, self.now(), wait_seconds)
        deadline = time.monotonic() + wait_seconds
        while True:
            claim, seen, sleep = await asyncio.to_thread(
                self._claim_or_sleep, worker_id, names, lease_seconds, deadline
            )
            if claim is not None or sleep <= 0:
                return claim
            if not await self._wait_async(_WORK, seen, sleep, stop):
                return None

    def _claim_or_sleep(
        self, worker_id: str, names: Sequence[str], lease_seconds: float, deadline: float
    ) -> tuple[Claim | None, int, float]:
        """One round of a long poll: a claim, or the notifier version seen and how long to wait."""
        seen = self.notifier.version(_WORK)
        claim = self.store.claim(worker_id, names, lease_seconds, self.now())
        if claim is not None:
            self.notifier.notify(_events_topic(claim.execution.id))
            return claim, seen, 0.0
        return None, seen, self._sleep_for(names, deadline)

    @staticmethod
    def _check_claim(names: Sequence[str], wait_seconds: float, lease_seconds: float) -> None:
        if not names:
            raise InvalidInputError("a claim must name at least one agent or function the worker can run")
        if not 0 <= wait_seconds <= 300:
            raise InvalidInputError(f"wait_seconds must be between 0 and 300, not {wait_seconds}")
        if not 1 <= lease_seconds <= 3600:
            raise InvalidInputError(f"lease_seconds must be between 1 and 3600, not {lease_seconds}")

    def _sleep_for(self, names: Sequence[str], deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return 0.0
        sleep = min(remaining, _MAX_SLEEP)
        wakeup = self.store.next_wakeup(names, self.now())
        if wakeup is not None:
            sleep = min(sleep, max(wakeup - self.now(), 0.001))
        return sleep

    def heartbeat(self, execution_id: str, worker_id: str, epoch: int, *, lease_seconds: float = 30.0) -> Heartbeat:
        """Renew the lease; ``LeaseLostError`` if another worker took it over."""
        return self.store.heartbeat(execution_id, worker_id, epoch, lease_seconds, self.now())

    def expire_leases(self, worker_ids: Sequence[str] | None = None) -> list[str]:
        """Re-queue executions whose lease ran out, or whose workers (by id) are known to be dead."""
        expired = self.store.expire_leases(self.now(), worker_ids)
        if expired:
            self.notifier.notify(_WORK, *(_events_topic(e) for e in expired))
        return expired

    # signals ------------------------------------------------------------------------------------------
    def send_signal(self, execution_id: str, name: str, payload: Any = None) -> Execution:
        """Deliver an external event (an approval, a reply) once; a waiting execution is queued again."""
        if not name or len(name) > 200:
            raise InvalidInputError("a signal name must be 1 to 200 characters")
        if name.startswith(APPROVAL_PREFIX):
            return self._decide(execution_id, name, payload)
        if name.startswith(HUMAN_PREFIX):
            feedback_of(payload)  # a malformed answer is refused here, not found by the waiting run
        elif name.startswith(BUDGET_PREFIX):
            raise_of(payload)  # likewise a malformed budget raise
        return self._deliver(execution_id, name, payload)

    def _deliver(self, execution_id: str, name: str, payload: Any) -> Execution:
        execution = self.store.deliver_signal(execution_id, name, self._json(payload, "signal payload"), self.now())
        self.notifier.notify(_WORK, _events_topic(execution_id))
        return execution

    def raise_budget(self, execution_id: str, *, tokens: int | None = None, cost_usd: float | None = None) -> Execution:
        """Raise the budget of an execution waiting on it by ``tokens`` and/or ``cost_usd``: the raise is
        delivered to its pending ``budget:<n>`` wait, and the execution is queued again.

        Raises:
            InvalidInputError: not a positive ``tokens`` or ``cost_usd``.
            ConflictError: the execution is not waiting on its budget (or that wait has another raise).
        """
        payload = {k: v for k, v in (("tokens", tokens), ("cost_usd", cost_usd)) if v is not None}
        raise_of(payload)
        execution = self.get_execution(execution_id)
        signal = execution.wait.signal if execution.wait is not None else None
        if execution.status is not ExecutionStatus.WAITING or not (signal or "").startswith(BUDGET_PREFIX):
            waits = f" (it waits for {signal!r})" if signal else ""
            raise ConflictError(
                f"execution {execution_id} is {execution.status.value}{waits}, not waiting on its budget;"
                " only a run stopped by an exhausted budget with on_exhausted='wait' can be raised",
                execution_id=execution_id,
            )
        assert signal is not None
        return self.send_signal(execution_id, signal, payload)

    def _decide(self, execution_id: str, name: str, payload: Any) -> Execution:
        """Deliver an approval decision, checked against the wait it answers: nothing is recorded for a
        malformed decision (400), an unknown call (404) or edited arguments the tool's schema refuses
        (400); a second, different decision gets a 409 naming the one recorded."""
        decision = decision_of(payload)
        call_id = name.removeprefix(APPROVAL_PREFIX)
        waits, recorded = self.store.signal_state(execution_id, name)
        if recorded is not None:
            return self._decided_already(execution_id, call_id, decision, recorded)
        if not waits:
            raise NotFoundError(
                f"execution {execution_id} has no tool call {call_id!r} waiting for approval"
                " (see its pending approvals for the call ids)",
                execution_id=execution_id,
            )
        details = waits[-1].input if isinstance(waits[-1].input, dict) else {}
        if decision.arguments is not None:
            schema = details.get("schema")
            if not isinstance(schema, dict):
                # Only native tools record a schema; a framework's own approval has no way to take
                # other arguments, so an edit would be silently dropped.
                raise InvalidInputError(
                    f"call {call_id} of execution {execution_id} waits in a framework's own approval, which"
                    " takes no edited arguments: edits are not supported for this wait; approve it"
                    ' ({"approved": true}) or reject it ({"approved": false, "reason": "..."})',
                    execution_id=execution_id,
                )
            check_arguments(str(details.get("tool") or call_id), schema, decision.arguments)
        try:
            # The decision is stored in one form, so that the same decision sent again in another form
            # (true, "approve", {"approved": true}) is the same payload: idempotent.
            return self._deliver(execution_id, name, decision.payload())
        except ConflictError:
            _, recorded = self.store.signal_state(execution_id, name)
            if recorded is None:
                raise  # the execution ended: no decision applies any more
            return self._decided_already(execution_id, call_id, decision, recorded)

    def _decided_already(self, execution_id: str, call_id: str, decision: Decision, recorded: str) -> Execution:
        """The same decision again is a no-op; a different one a ``ConflictError`` naming the first."""
        first = decision_of(json.loads(recorded))
        if first == decision:
            return self.get_execution(execution_id)
        raise ConflictError(
            f"call {call_id} was already {first.describe()}; a decision is recorded once",
            execution_id=execution_id,
        )

    # events --------------------------------------------------------------------------------------------
    def get_events(self, execution_id: str, *, after: int = 0, limit: int = 1000) -> list[Event]:
        """Events with ``id > after``, oldest first."""
        self.get_execution(execution_id)
        return self.store.events_after(execution_id, after, min(max(limit, 1), 10_000))

    def wait_events(self, execution_id: str, *, after: int = 0, timeout: float = 30.0) -> list[Event]:
        """Like :meth:`get_events`, but waits up to ``timeout`` seconds for the first new event."""
        deadline = time.monotonic() + min(timeout, 300.0)
        while True:
            events, seen, sleep = self._events_or_sleep(execution_id, after, deadline)
            if events or sleep <= 0:
                return events
            self.notifier.wait(_events_topic(execution_id), seen, sleep)

    async def wait_events_async(
        self,
        execution_id: str,
        *,
        after: int = 0,
        timeout: float = 30.0,  # noqa: ASYNC109 - the same signature as wait_events
        stop: asyncio.Event | None = None,
    ) -> list[Event]:
        """:meth:`wait_events` for an event loop (the store is used from a thread); ``stop`` ends the
        wait early with no events."""
        deadline = time.monotonic() + min(timeout, 300.0)
        while True:
            events, seen, sleep = await asyncio.to_thread(self._events_or_sleep, execution_id, after, deadline)
            if events or sleep <= 0:
                return events
            if not await self._wait_async(_events_topic(execution_id), seen, sleep, stop):
                return []

    async def _wait_async(self, topic: str, seen: int, seconds: float, stop: asyncio.Event | None) -> bool:
        """Wait for ``topic`` (see :meth:`Notifier.wait_async`); False if ``stop`` was set first."""
        if stop is None:
            await self.notifier.wait_async(topic, seen, seconds)
            return True
        if stop.is_set():
            return False
        waiting = asyncio.ensure_future(self.notifier.wait_async(topic, seen, seconds))
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait((waiting, stopped), return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiting.cancel()  # a wait, not a claim: cancelling it loses nothing
            stopped.cancel()
        return not stop.is_set()

    def _events_or_sleep(self, execution_id: str, after: int, deadline: float) -> tuple[list[Event], int, float]:
        """One round of an event long poll: new events, or the version seen and how long to wait."""
        seen = self.notifier.version(_events_topic(execution_id))
        events = self.get_events(execution_id, after=after)
        return events, seen, min(deadline - time.monotonic(), _MAX_SLEEP)

    # definitions ---------------------------------------------------------------------------------------
    def put_definition(self, name: str, spec: dict[str, Any] | None = None, *, kind: str = "function") -> Definition:
        """Register (or replace) a deployed definition by name."""
        validate(CreateExecution, {"name": name})  # the same naming rules as executions
        return self.store.put_definition(name, kind, self._json(spec or {}, "definition spec"), self.now())

    def get_definition(self, name: str) -> Definition:
        """The definition; ``NotFoundError`` if absent."""
        found = self.store.get_definition(name)
        if found is None:
            raise NotFoundError(f"no definition named {name!r}; deploy it first")
        return found

    def list_definitions(self) -> list[Definition]:
        """All deployed definitions."""
        return self.store.list_definitions()

    def delete_definition(self, name: str) -> None:
        """Remove a definition."""
        self.store.delete_definition(name)

    def agent_status(self, name: str) -> AgentStatus:
        """Whether ``name`` is deployed, how many workers serve it, how many executions of it wait.

        Workers count when they asked this service for work by ``name`` recently, or hold the lease of
        a running execution of it. (Workers in other processes on the same SQLite file, without a
        server between them, are seen only through their running executions.)
        """
        validate(CreateExecution, {"name": name})
        workers = self.serving.workers(name, self.now())
        running = self.list_executions(status=ExecutionStatus.RUNNING, name=name, limit=1000)
        workers.update(e.worker_id for e in running.items if e.worker_id)
        queued = self.list_executions(status=ExecutionStatus.QUEUED, name=name, limit=1000)
        deployed = self.store.get_definition(name) is not None
        return AgentStatus(name=name, deployed=deployed, workers=len(workers), queued=len(queued.items))

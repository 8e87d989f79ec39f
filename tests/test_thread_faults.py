"""Nothing dies silently: an unexpected error in an execution's thread, its heartbeat or its journal
writer fails or re-queues that execution with the error recorded, and the worker keeps claiming work."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any

from test_core_mutations import (  # the core tests' gated step, its counters and their reset fixture
    _reset,  # noqa: F401
    act,
    gates,
    ran,
)

from agentspan import durable
from agentspan.client import HttpClient
from agentspan.runtime import (
    ExecutionStatus,
    FinishRecord,
    Heartbeat,
    Record,
    Service,
    StepRecord,
    StepStatus,
    WriteResult,
)
from agentspan.worker import Worker

HUGE = 17 * 1024 * 1024  # past the server's 16 MiB request limit


@durable.step
def fetch_report(size: int) -> str:
    return "x" * size


@durable.function
def report(size: int) -> int:
    return len(fetch_report(size))


def _run_in_thread(worker: Worker, executions: int) -> tuple[threading.Thread, list[int]]:
    ran: list[int] = []
    thread = threading.Thread(target=lambda: ran.append(worker.run(max_executions=executions)), daemon=True)
    thread.start()
    return thread, ran


# Each journal-writer thread's keep-alive connection is closed when the thread is collected, not before.
def test_a_write_the_server_refuses_fails_that_execution_and_the_worker_runs_the_next(
    http_client: HttpClient,
) -> None:
    """A step output too large for the records route: the server answers 413 to the worker's write."""
    huge = http_client.create_execution("report", {"size": HUGE}).id
    small = http_client.create_execution("report", {"size": 3}).id
    worker = Worker(http_client, [report], poll_seconds=1)
    thread, ran = _run_in_thread(worker, 2)
    thread.join(timeout=60)
    assert ran == [2], "the worker thread died instead of moving on"
    failed = http_client.get_execution(huge)
    assert failed.status is ExecutionStatus.FAILED
    assert failed.error is not None and failed.error.type.endswith("PayloadTooLargeError")
    assert "16 MiB" in failed.error.message or "limit" in failed.error.message
    completed = http_client.get_execution(small)
    assert completed.status is ExecutionStatus.COMPLETED and completed.output == 3


# --- faults at the worker's transport -------------------------------------------------------------------
class Faulty:
    """The service, except where the worker meets its transport: ``write_faults`` and
    ``heartbeat_faults`` are raised by the next calls, one each; ``locked`` fails every write that
    carries a step, ``beats_fail`` every heartbeat, until the worker hands the execution back."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self.write_faults: list[Exception] = []
        self.heartbeat_faults: list[Exception] = []
        self.locked = threading.Event()
        self.beats_fail = threading.Event()
        self.beats_after_fault = 0
        self.renewed_after_fault = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    def write_records(self, execution_id: str, worker_id: str, epoch: int, records: Sequence[Record]) -> WriteResult:
        if any(isinstance(r, FinishRecord) and r.status == "released" for r in records):
            self.beats_fail.clear()
        if self.write_faults:
            raise self.write_faults.pop(0)
        if self.locked.is_set():
            if any(isinstance(r, StepRecord) for r in records):
                raise sqlite3.OperationalError("database is locked")
            self.locked.clear()  # the hand-back goes through: the lock is gone by then
        return self._service.write_records(execution_id, worker_id, epoch, records)

    def heartbeat(self, execution_id: str, worker_id: str, epoch: int, *, lease_seconds: float = 30.0) -> Heartbeat:
        if self.heartbeat_faults:
            raise self.heartbeat_faults.pop(0)
        if self.beats_fail.is_set():
            raise sqlite3.OperationalError("database is locked")
        beat = self._service.heartbeat(execution_id, worker_id, epoch, lease_seconds=lease_seconds)
        self.beats_after_fault += 1
        if self.beats_after_fault >= 2:
            self.renewed_after_fault.set()
        return beat


@durable.function
def two_acts() -> list[str]:
    return [act("a"), act("b")]


def _seen_started(service: Service, timeout: float = 10.0) -> None:
    """Block the running step until the server shows it as started (the background flush wrote it)."""
    info = durable.current_step()
    assert info is not None
    after, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in service.wait_events(info.execution_id, after=after, timeout=deadline - time.monotonic()):
            after = event.id
            if event.type == "step.started" and event.data["key"] == info.key:
                return
    raise AssertionError(f"step {info.key} never showed as started on the server")


def _worker(client: Faulty, lease_seconds: float = 30.0) -> Worker:
    return Worker(client, [two_acts], lease_seconds=lease_seconds, poll_seconds=1)  # type: ignore[arg-type]


def test_a_step_write_that_fails_once_is_retried_and_nothing_is_lost(service: Service) -> None:
    client = Faulty(service)
    client.write_faults.append(sqlite3.OperationalError("database is locked"))
    eid = service.create_execution("two_acts").id
    assert _worker(client).run_once()
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert execution.output == ["did a", "did b"]
    assert ran == {"a": 1, "b": 1}
    assert [s.status for s in service.get_journal(eid)] == [StepStatus.COMPLETED] * 2


def test_the_background_flusher_survives_a_failed_write_and_keeps_showing_running_steps(service: Service) -> None:
    client = Faulty(service)
    client.write_faults.append(
        ConnectionResetError(104, "Connection reset by peer")
    )  # the first write: a's started record
    gates["a"] = gates["b"] = lambda: _seen_started(service)
    eid = service.create_execution("two_acts").id
    assert _worker(client).run_once()
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert ran == {"a": 1, "b": 1}


def test_writes_failing_for_a_whole_lease_hand_the_execution_back_with_the_error_and_the_worker_goes_on(
    service: Service,
) -> None:
    client = Faulty(service)
    client.locked.set()
    eid = service.create_execution("two_acts").id
    worker = _worker(client, lease_seconds=1)
    thread, count = _run_in_thread(worker, 2)
    thread.join(timeout=60)
    assert count == [2], "the worker thread died instead of moving on"
    released = [e for e in service.get_events(eid) if e.type == "execution.released"]
    assert len(released) == 1
    assert released[0].data["error"]["type"] == "sqlite3.OperationalError"
    assert "database is locked" in released[0].data["error"]["message"]
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert ran == {"a": 2, "b": 1}, "a ran in the attempt whose writes failed, and again (same key) after"


def test_the_heartbeat_survives_a_failed_beat_and_keeps_the_lease(service: Service) -> None:
    client = Faulty(service)
    client.heartbeat_faults.append(sqlite3.OperationalError("disk I/O error"))

    def outlast_the_fault() -> None:  # the step runs until the lease was renewed twice after the fault
        assert client.renewed_after_fault.wait(20), "the heartbeat stopped after one failed beat"

    gates["a"] = outlast_the_fault
    eid = service.create_execution("two_acts").id
    assert _worker(client, lease_seconds=1).run_once()
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert execution.epoch == 1, "the lease was never lost"
    assert ran == {"a": 1, "b": 1}


def test_heartbeats_failing_for_a_whole_lease_stop_the_execution_at_its_next_step_with_the_error_recorded(
    service: Service,
) -> None:
    client = Faulty(service)
    client.beats_fail.set()

    def outlast_the_lease() -> None:
        # A heartbeat that gives up stops the execution and ends; one that died or never gives up does not
        # tell the step apart, so the step waits for its heartbeat thread to end, then returns.
        beats = [t for t in threading.enumerate() if t.name == "agentspan-heartbeat"]
        for t in beats:
            t.join(timeout=20)
        assert not any(t.is_alive() for t in beats), "the heartbeat never gave up on the lost lease"

    gates["a"] = outlast_the_lease
    eid = service.create_execution("two_acts").id
    thread, count = _run_in_thread(_worker(client, lease_seconds=1), 2)
    thread.join(timeout=60)
    assert count == [2]
    released = [e for e in service.get_events(eid) if e.type == "execution.released"]
    assert len(released) == 1, "the execution was not handed back at its next step"
    assert released[0].data["error"]["type"] == "sqlite3.OperationalError"
    assert service.get_execution(eid).status is ExecutionStatus.COMPLETED
    assert ran == {"a": 1, "b": 1}, "b did not run under the lapsed lease; a was recorded before the stop"


def test_a_bug_under_a_step_write_fails_the_execution_with_the_error_instead_of_retrying(service: Service) -> None:
    client = Faulty(service)
    client.write_faults.append(KeyError("a transport bug"))
    eid = service.create_execution("two_acts").id
    worker = _worker(client)
    assert worker.run_once()
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.FAILED
    assert execution.error is not None and execution.error.type == "builtins.KeyError"
    assert ran == {"a": 1}, "nothing ran after the write failed"
    service.create_execution("two_acts")
    assert worker.run_once(), "the worker goes on"

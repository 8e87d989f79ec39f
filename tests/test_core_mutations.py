"""Core promises that hand-applied mutations of the core once broke with the whole suite green:
fencing by epoch for the same worker, cancellation through the heartbeat, the ``concurrent`` mark,
occurrence counting per parent, durable sleep's wake-up time, typed results of handles."""

from __future__ import annotations

import collections
import dataclasses
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from agentspan import durable
from agentspan.errors import LeaseLostError
from agentspan.runtime import ExecutionStatus, FinishRecord, Heartbeat, Service, SQLiteStore, StepRecord, StepStatus
from agentspan.worker import Worker

ran: collections.Counter[str] = collections.Counter()
gates: dict[str, Callable[[], None]] = {}


@pytest.fixture(autouse=True)
def _reset() -> None:
    ran.clear()
    gates.clear()


@durable.step
def act(label: str) -> str:
    ran[label] += 1
    gate = gates.get(label)
    if gate is not None:
        gate()
    return f"did {label}"


# --- (a) a stale epoch from the same worker id ------------------------------------------------------------
def test_a_heartbeat_or_write_from_the_same_worker_under_its_previous_epoch_is_refused(service: Service) -> None:
    eid = service.create_execution("fn").id
    first = service.claim("w1", ["fn"])
    assert first is not None
    service.write_records(eid, "w1", first.epoch, [FinishRecord(status="released")])
    second = service.claim("w1", ["fn"])  # the same worker id claims it again: a new epoch
    assert second is not None and second.epoch > first.epoch
    with pytest.raises(LeaseLostError):
        service.heartbeat(eid, "w1", first.epoch)
    step = StepRecord(key="s:0", kind="step", name="s", status=StepStatus.STARTED, fingerprint="f", input=None)
    with pytest.raises(LeaseLostError):
        service.write_records(eid, "w1", first.epoch, [step])
    assert not service.get_journal(eid), "nothing from the stale write was stored"
    assert not service.heartbeat(eid, "w1", second.epoch).cancel_requested


# --- (b) a cancel delivered through the heartbeat ----------------------------------------------------------
class _CountsCancels:
    """The service; notes heartbeats answered with a cancellation (a second one: the first was ignored)."""

    def __init__(self, service: Service) -> None:
        self._service = service
        self.cancel_beats = 0
        self.ignored = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    def heartbeat(self, execution_id: str, worker_id: str, epoch: int, *, lease_seconds: float = 30.0) -> Heartbeat:
        beat = self._service.heartbeat(execution_id, worker_id, epoch, lease_seconds=lease_seconds)
        if beat.cancel_requested:
            self.cancel_beats += 1
            if self.cancel_beats > 1:
                self.ignored.set()
        return beat


@durable.function
def two_acts() -> list[str]:
    return [act("a"), act("b")]


def test_a_worker_told_of_a_cancellation_by_its_heartbeat_stops_before_the_next_step(service: Service) -> None:
    client = _CountsCancels(service)
    eid = service.create_execution("two_acts").id

    def cancel_and_outlast_a_beat() -> None:
        service.cancel_execution(eid)
        # The worker that heeds the cancel stops its heartbeat; one that ignores it beats again.
        beats = [t for t in threading.enumerate() if t.name == "agentspan-heartbeat"]
        for _ in range(400):
            if client.ignored.is_set() or not any(t.is_alive() for t in beats):
                return
            for t in beats:
                t.join(timeout=0.05)
        raise AssertionError("the heartbeat neither stopped nor beat again")

    gates["a"] = cancel_and_outlast_a_beat
    assert Worker(client, [two_acts], lease_seconds=1).run_once()  # type: ignore[arg-type]
    assert not client.ignored.is_set(), "the worker kept renewing the lease of a cancelled execution"
    assert ran == {"a": 1}, "the step after the cancellation ran"
    assert service.get_execution(eid).status is ExecutionStatus.CANCELLED


# --- (c) steps that ran side by side are marked concurrent ---------------------------------------------------
@durable.function
def side_by_side() -> list[str]:
    both = threading.Barrier(2, timeout=10)  # each step waits for the other: they surely overlap
    gates["left"] = gates["right"] = both.wait
    with ThreadPoolExecutor(2) as pool:
        outputs = list(pool.map(act, ["left", "right"]))
    return [*outputs, act("after")]


def test_steps_that_ran_concurrently_are_recorded_as_concurrent_and_others_are_not(service: Service) -> None:
    eid = service.create_execution("side_by_side").id
    assert Worker(service, [side_by_side]).run_once()
    assert service.get_execution(eid).status is ExecutionStatus.COMPLETED
    concurrent = {s.input["label"]: s.concurrent for s in service.get_journal(eid)}
    assert concurrent == {"left": True, "right": True, "after": False}


# --- (d) occurrence counting, per parent ---------------------------------------------------------------------
@durable.step
def parent(label: str) -> str:
    ran[label] += 1
    return act("child")


@durable.function
def repeats() -> list[str]:
    return [act("same"), act("same"), parent("p1"), parent("p2")]


def test_repeated_calls_are_counted_apart_and_counted_per_parent(service: Service) -> None:
    eid = service.create_execution("repeats").id
    assert Worker(service, [repeats]).run_once()
    assert service.get_execution(eid).status is ExecutionStatus.COMPLETED
    journal = service.get_journal(eid)
    same = [s.key for s in journal if s.input == {"label": "same"}]
    assert len(same) == 2 and {k.rsplit(":", 1)[1] for k in same} == {"0", "1"}, same
    parents = {s.input["label"]: s.key for s in journal if s.name.endswith("parent")}
    children = {s.parent: s.key for s in journal if s.input == {"label": "child"}}
    assert set(children) == set(parents.values())
    for parent_key, child_key in children.items():
        assert child_key.startswith(f"{parent_key}/") and child_key.endswith(":0"), child_key
    assert ran == {"same": 2, "p1": 1, "p2": 1, "child": 2}


# --- (e) durable sleep wakes when it is due, not at once -----------------------------------------------------
@durable.function
def nap() -> str:
    durable.sleep(3600)
    return "woke"


def test_durable_sleep_wakes_the_execution_when_its_seconds_are_up(db_path: Path) -> None:
    now = [datetime(2026, 1, 1, tzinfo=UTC).timestamp()]
    service = Service(SQLiteStore(db_path), clock=lambda: now[0])
    try:
        eid = service.create_execution("nap").id
        assert Worker(service, [nap]).run_once()
        execution = service.get_execution(eid)
        assert execution.status is ExecutionStatus.WAITING
        assert execution.wait is not None and execution.wait.wake_at is not None
        due = datetime.fromtimestamp(now[0], UTC) + timedelta(seconds=3600)
        assert abs((execution.wait.wake_at - due).total_seconds()) < 60, execution.wait
        now[0] += 3500
        assert service.claim("early", ["nap"]) is None, "woken before its time"
        now[0] += 200
        assert Worker(service, [nap]).run_once()
        assert service.get_execution(eid).output == "woke"
    finally:
        service.close()


# --- (f) a handle's result has the function's declared type --------------------------------------------------
class Invoice(BaseModel):
    number: int
    total: float


@dataclasses.dataclass(frozen=True)
class Receipt:
    number: int
    paid: bool


@durable.function
def invoice(number: int) -> Invoice:
    return Invoice(number=number, total=9.5)


@durable.function
def receipt(number: int) -> Receipt:
    return Receipt(number=number, paid=True)


def test_a_handles_result_is_rebuilt_as_the_functions_declared_return_type(tmp_path: Path) -> None:
    with durable.Runtime(db=tmp_path / "typed.db") as runtime:
        assert runtime.start(invoice, 7).result(timeout=30) == Invoice(number=7, total=9.5)
        assert runtime.run(receipt, 8) == Receipt(number=8, paid=True)

"""Running durable functions through ``durable.Runtime``: embedded, signals, timers, cancellation, leases."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from agentspan import durable
from agentspan.errors import (
    ConfigurationError,
    ExecutionCancelledError,
    ExecutionFailedError,
    InvalidInputError,
    LeaseLostError,
)
from agentspan.runtime import ExecutionStatus, Service, SQLiteStore, StepRecord, StepStatus
from agentspan.worker import Worker

seen: list[str] = []


@durable.step
def greet(name: str) -> str:
    seen.append(name)
    return f"hello {name}"


@durable.function
def hello(name: str) -> str:
    return greet(name)


@durable.function
def approval(order: str) -> str:
    decision = durable.wait_for_signal("approve")
    return f"{order}: {decision['verdict']}"


@durable.function
def nap(seconds: float) -> str:
    durable.sleep(seconds)
    return "rested"


@durable.function
def broken() -> str:
    raise RuntimeError("it broke")


@pytest.fixture
def runtime(db_path: Path) -> durable.Runtime:
    seen.clear()
    rt = durable.Runtime(db=db_path, lease_seconds=5)
    yield rt  # type: ignore[misc]
    rt.close()


def test_run_returns_the_result_of_a_durable_function(runtime: durable.Runtime) -> None:
    assert runtime.run(hello, "ada") == "hello ada"
    assert seen == ["ada"]


def test_the_same_idempotency_key_returns_the_same_execution(runtime: durable.Runtime) -> None:
    first = runtime.start(hello, "bob", idempotency_key="greeting-bob")
    second = runtime.start(hello, "bob", idempotency_key="greeting-bob")
    assert first.execution_id == second.execution_id
    assert second.result(timeout=10) == "hello bob"
    assert seen == ["bob"]


def test_a_failing_function_raises_execution_failed(runtime: durable.Runtime) -> None:
    with pytest.raises(ExecutionFailedError, match="RuntimeError: it broke"):
        runtime.run(broken)


def test_an_execution_waits_for_a_signal_without_holding_a_worker(runtime: durable.Runtime) -> None:
    handle = runtime.start(approval, "o-7")
    deadline = time.monotonic() + 10
    while handle.status is not ExecutionStatus.WAITING:
        assert time.monotonic() < deadline, "the execution should suspend"
        time.sleep(0.01)
    execution = handle.get()
    assert execution.worker_id is None and execution.lease_expires_at is None
    assert execution.wait is not None
    handle.signal("approve", {"verdict": "approved"})
    assert handle.result(timeout=10) == "o-7: approved"
    types = [e.type for e in handle.events(follow=False)]
    assert types.count("execution.running") == 2 and "signal.delivered" in types


def test_a_durable_sleep_suspends_and_the_server_resumes_it(runtime: durable.Runtime) -> None:
    handle = runtime.start(nap, 0.3)
    assert handle.result(timeout=10) == "rested"
    timer = next(s for s in handle.journal() if s.kind == "timer")
    assert timer.status is StepStatus.COMPLETED
    assert "execution.waiting" in [e.type for e in handle.events(follow=False)]


def test_cancelling_a_waiting_execution(runtime: durable.Runtime) -> None:
    handle = runtime.start(approval, "o-8")
    while handle.status is not ExecutionStatus.WAITING:
        time.sleep(0.01)
    handle.cancel()
    with pytest.raises(ExecutionCancelledError):
        handle.result(timeout=5)


def test_bad_arguments_are_refused_before_anything_is_stored(runtime: durable.Runtime) -> None:
    with pytest.raises(InvalidInputError, match="missing a required argument"):
        runtime.start(hello)
    with pytest.raises(ConfigurationError, match="not a durable function"):
        runtime.run(greet, "x")
    assert runtime.client.list_executions().items == []


def test_a_handle_can_be_rebuilt_from_the_execution_id(runtime: durable.Runtime, db_path: Path) -> None:
    execution_id = runtime.start(hello, "cy").execution_id
    runtime.handle(execution_id).wait(timeout=10)
    other = durable.Runtime(db=db_path)
    try:
        assert other.handle(execution_id).result(timeout=5) == "hello cy"
    finally:
        other.close()


def test_a_claim_waiting_in_a_long_poll_wakes_when_work_arrives(service: Service) -> None:
    got: list[str] = []

    def claim() -> None:
        found = service.claim("w", ["hello"], wait_seconds=20)
        got.append(found.execution.id if found else "none")

    thread = threading.Thread(target=claim)
    thread.start()
    time.sleep(0.1)
    execution = service.create_execution("hello", {"name": "x"})
    thread.join(timeout=5)
    assert got == [execution.id], "the long poll should return the new execution, well before it times out"


def test_a_long_poll_returns_nothing_when_no_work_comes(service: Service) -> None:
    assert service.claim("w", ["nothing"], wait_seconds=0.2) is None


def test_a_worker_whose_lease_was_taken_over_stops_writing(db_path: Path) -> None:
    """Fencing with a controllable clock: worker A's lease expires, B claims, A's writes fail."""
    now = [1_800_000_000.0]
    service = Service(SQLiteStore(db_path), clock=lambda: now[0])
    execution = service.create_execution("hello", {"name": "z"})
    a = service.claim("a", ["hello"], lease_seconds=10)
    assert a is not None
    now[0] += 11
    b = service.claim("b", ["hello"], lease_seconds=10)
    assert b is not None and b.epoch == a.epoch + 1
    record = StepRecord(key="greet:x:0", kind="step", name="greet", status=StepStatus.COMPLETED, output="stale")
    with pytest.raises(LeaseLostError):
        service.write_records(execution.id, "a", a.epoch, [record])
    assert service.get_journal(execution.id) == []
    service.close()


def test_a_worker_needs_durable_functions(service: Service) -> None:
    with pytest.raises(ConfigurationError, match="not a durable function"):
        Worker(service, [greet])
    with pytest.raises(ConfigurationError, match="at least one"):
        Worker(service, [])


def test_durable_helpers_outside_an_execution_say_so() -> None:
    with pytest.raises(ConfigurationError, match="only works inside a durable execution"):
        durable.wait_for_signal("x")
    with pytest.raises(ConfigurationError, match="only works inside a durable execution"):
        durable.sleep(1)

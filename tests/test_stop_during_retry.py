"""A worker asked to stop while a step waits to retry hands the execution back with the step in doubt;
the step is not recorded as failed for good, and the worker that resumes it makes the next attempt."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from agentspan import durable
from agentspan.runtime import ExecutionStatus, Service, StepStatus
from agentspan.worker import Worker

failed_once = threading.Event()
attempts: list[int] = []


class Flaky(Exception):
    """Fails the first attempt."""


def _flaky() -> str:
    info = durable.current_step()
    assert info is not None
    attempts.append(info.attempt)
    if not failed_once.is_set():
        failed_once.set()
        raise Flaky("the service is busy")
    return "fetched"


@durable.step(retries=3, retry_delay=600.0)  # the backoff outlasts the test: only a stop ends it
def fetch() -> str:
    return _flaky()


@durable.step(retries=3, retry_delay=600.0)
async def fetch_async() -> str:
    return _flaky()


@durable.function(name="stop-retry")
def flow() -> str:
    return fetch()


@durable.function(name="stop-retry-async")
async def flow_async() -> str:
    return await fetch_async()


@pytest.mark.parametrize("fn", [flow, flow_async], ids=["sync", "async"])
def test_a_stop_during_a_retry_backoff_hands_the_execution_back(service: Service, fn: Any) -> None:
    failed_once.clear()
    attempts.clear()
    name = durable.FunctionDefinition.of(fn).name
    eid = service.create_execution(name, {}).id
    worker = Worker(service, [fn], lease_seconds=30)
    thread = threading.Thread(target=worker.run_once, daemon=True)
    thread.start()
    assert failed_once.wait(30), "the first attempt never ran"
    worker.stop()  # while the step waits 600 s to retry
    thread.join(30)
    assert not thread.is_alive(), "the stop did not end the backoff"
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.QUEUED, execution.error
    [step] = service.get_journal(eid)
    assert step.status is StepStatus.STARTED  # in doubt, not failed for good

    assert Worker(service, [fn], lease_seconds=30).run_once()
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED and execution.output == "fetched"
    assert attempts == [1, 2]

"""The durable context's promises, in-process: memoised steps, replayed failures, in-doubt steps,
divergence, deterministic keys, JSON-only payloads.

A "crash" here is a BaseException that unwinds the worker without recording anything, leaving the
lease held, exactly what a killed process leaves behind; the lease is then expired and a fresh worker
resumes. The same stories with real processes and SIGKILL are in test_crash_recovery.py.
"""

from __future__ import annotations

import asyncio
import collections
import random
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from pydantic import BaseModel

from agentspan import durable
from agentspan.errors import NotJSONError
from agentspan.runtime import ExecutionStatus, Service, StepStatus
from agentspan.worker import Worker


class Crash(BaseException):
    """Stands for the process dying."""


class PaymentDeclined(Exception):
    """An error type that replay must rebuild."""


calls: collections.Counter[str] = collections.Counter()
keys_seen: dict[str, list[str]] = collections.defaultdict(list)
crash_at: set[str] = set()
settings: dict[str, Any] = {}


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()
    keys_seen.clear()
    crash_at.clear()
    settings.clear()


def _maybe_crash(label: str) -> None:
    if label in crash_at:
        crash_at.discard(label)
        raise Crash(label)


@durable.step
def work(label: str) -> str:
    calls[label] += 1
    info = durable.current_step()
    keys_seen[label].append(info.idempotency_key if info else "outside")
    if settings.get("slow") == label:
        time.sleep(0.05)  # long enough for the started record to be written ahead
    _maybe_crash(label)
    return f"done {label}"


def run(service: Service, fn: Any, data: dict[str, Any], *, expect_crash: bool = False) -> str:
    """Create an execution of ``fn`` and run one worker on it; returns the execution id."""
    name = durable.FunctionDefinition.of(fn).name
    execution = service.create_execution(name, data)
    resume(service, fn, expect_crash=expect_crash)
    return execution.id


def resume(service: Service, fn: Any, *, expect_crash: bool = False) -> Worker:
    worker = Worker(service, [fn], lease_seconds=30)
    if expect_crash:
        with pytest.raises(Crash):
            worker.run_once()
        # The "dead" worker's lease is expired, as another process would see after the lease time.
        assert service.expire_leases([worker.worker_id])
    else:
        assert worker.run_once()
    return worker


@durable.function
def five_steps() -> list[str]:
    return [work(f"s{i}") for i in range(1, 6)]


def test_resumed_execution_does_not_repeat_completed_steps(service: Service) -> None:
    crash_at.add("s4")
    eid = run(service, five_steps, {}, expect_crash=True)
    assert dict(calls) == {"s1": 1, "s2": 1, "s3": 1, "s4": 1}
    resume(service, five_steps)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED
    assert execution.output == [f"done s{i}" for i in range(1, 6)]
    assert dict(calls) == {"s1": 1, "s2": 1, "s3": 1, "s4": 2, "s5": 1}


def test_a_step_in_doubt_runs_again_with_the_same_idempotency_key(service: Service) -> None:
    settings["slow"] = "s2"
    crash_at.add("s2")
    eid = run(service, five_steps, {}, expect_crash=True)
    in_doubt = [s for s in service.get_journal(eid) if s.status is StepStatus.STARTED]
    assert [s.name for s in in_doubt] == ["work"]
    resume(service, five_steps)
    assert calls["s2"] == 2
    assert len(set(keys_seen["s2"])) == 1
    step = next(s for s in service.get_journal(eid) if s.output == "done s2")
    assert step.attempt == 2
    assert step.idempotency_key == keys_seen["s2"][0]


@durable.step(in_doubt=durable.InDoubt.FAIL)
def charge(order: str) -> str:
    calls[order] += 1
    time.sleep(0.01)
    _maybe_crash(order)
    return f"charged {order}"


@durable.function
def pay(order: str) -> str:
    return charge(order)


def test_in_doubt_policy_fail_fails_instead_of_repeating(service: Service) -> None:
    crash_at.add("o1")
    eid = run(service, pay, {"order": "o1"}, expect_crash=True)
    resume(service, pay)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.FAILED
    assert execution.error is not None and execution.error.type.endswith("InDoubtStepError")
    assert calls["o1"] == 1


@durable.step(in_doubt=durable.InDoubt.CONFIRM)
def ship(order: str) -> str:
    calls[order] += 1
    _maybe_crash(order)
    return f"shipped {order}"


@durable.function
def deliver(order: str) -> str:
    return ship(order)


@pytest.mark.parametrize(("answer", "status"), [(True, ExecutionStatus.COMPLETED), (False, ExecutionStatus.FAILED)])
def test_in_doubt_policy_confirm_waits_for_a_human(service: Service, answer: bool, status: ExecutionStatus) -> None:
    crash_at.add("o2")
    eid = run(service, deliver, {"order": "o2"}, expect_crash=True)
    resume(service, deliver)
    waiting = service.get_execution(eid)
    assert waiting.status is ExecutionStatus.WAITING
    key = next(s.key for s in service.get_journal(eid) if s.name == "ship")
    service.send_signal(eid, f"confirm:{key}", {"reexecute": answer})
    resume(service, deliver)
    assert service.get_execution(eid).status is status
    assert calls["o2"] == (2 if answer else 1)


@durable.step
def declined(order: str) -> str:
    calls[order] += 1
    raise PaymentDeclined(f"card declined for {order}")


@durable.function
def try_payment(order: str) -> str:
    try:
        declined(order)
    except PaymentDeclined as exc:
        message = str(exc)
    work("after")
    return message


def test_a_recorded_failure_is_raised_again_with_its_type_and_message(service: Service) -> None:
    crash_at.add("after")
    eid = run(service, try_payment, {"order": "o3"}, expect_crash=True)
    resume(service, try_payment)
    assert service.get_execution(eid).output == "card declined for o3"
    assert calls["o3"] == 1


def test_a_failed_step_records_where_it_was_raised(service: Service) -> None:
    eid = run(service, try_payment, {"order": "o4"})
    failed = next(s for s in service.get_journal(eid) if s.status is StepStatus.FAILED)
    assert failed.error is not None and failed.error.type.endswith("PaymentDeclined")
    trace = failed.error.traceback or ""
    # The traceback names the step's function and the raising line, for the UI's step inspector.
    assert "in declined" in trace and 'raise PaymentDeclined(f"card declined for {order}")' in trace
    assert trace.rstrip().endswith("PaymentDeclined: card declined for o4")


@durable.function
def prompt_flow() -> list[str]:
    first = work("intro")
    second = work(settings.get("prompt", "v1"))
    return [first, second, work("outro")]


def test_changed_code_is_detected_as_divergence_and_re_executed(service: Service) -> None:
    crash_at.add("outro")
    eid = run(service, prompt_flow, {}, expect_crash=True)
    settings["prompt"] = "v2"  # the code changed before the resume
    resume(service, prompt_flow)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED
    assert execution.output == ["done intro", "done v2", "done outro"]
    assert calls == {"intro": 1, "v1": 1, "v2": 1, "outro": 2}
    events = [e for e in service.get_events(eid) if e.type == "divergence"]
    assert len(events) == 1
    history = service.get_journal(eid, include_superseded=True)
    assert [s.output for s in history if s.superseded] == ["done v1"]
    assert [s.output for s in service.get_journal(eid)] == ["done intro", "done v2", "done outro"]


@durable.function(strict=True)
def strict_flow() -> list[str]:
    return [work("intro"), work(settings.get("prompt", "v1")), work("outro")]


def test_strict_divergence_fails_the_execution(service: Service) -> None:
    crash_at.add("outro")
    eid = run(service, strict_flow, {}, expect_crash=True)
    settings["prompt"] = "v2"
    resume(service, strict_flow)
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.FAILED
    assert execution.error is not None and execution.error.type.endswith("DivergenceError")
    assert "v2" not in calls
    # The divergence is on record (an event), and nothing recorded was dropped for it.
    assert [e.type for e in service.get_events(eid) if e.type == "divergence"] == ["divergence"]
    assert [s.output for s in service.get_journal(eid, include_superseded=True)] == ["done intro", "done v1"]


@durable.step
async def fetch(i: int) -> str:
    calls[f"f{i}"] += 1
    await asyncio.sleep(random.uniform(0.001, 0.03))
    if f"f{i}" in crash_at and sum(1 for k in calls if k.startswith("f")) >= 10:
        # Wait until the others are at least started, then die with some finished, some not.
        await asyncio.sleep(0.005)
        _maybe_crash(f"f{i}")
    return f"page {i}"


@durable.function
async def fan_out() -> list[str]:
    return list(await asyncio.gather(*(fetch(i) for i in range(10))))


def test_parallel_async_steps_resume_without_repeating_finished_ones(service: Service) -> None:
    random.seed(7)
    crash_at.add("f4")
    eid = run(service, fan_out, {}, expect_crash=True)
    done_before = {s.input["i"] for s in service.get_journal(eid) if s.status is StepStatus.COMPLETED}
    assert 0 < len(done_before) < 10
    resume(service, fan_out)
    assert service.get_execution(eid).output == [f"page {i}" for i in range(10)]
    for i in done_before:
        assert calls[f"f{i}"] == 1, f"fetch({i}) completed before the crash but ran again"


@durable.step
def crunch(i: int) -> int:
    calls[f"c{i}"] += 1
    time.sleep(random.uniform(0.001, 0.02))
    if i == settings.get("die") and threading.current_thread().name.startswith("pool"):
        settings.pop("die")
        raise Crash("thread")
    return i * i


@durable.function
def threaded() -> list[int]:
    with ThreadPoolExecutor(4, thread_name_prefix="pool") as pool:
        return list(pool.map(crunch, range(10)))


def test_parallel_thread_steps_resume_without_repeating_finished_ones(service: Service) -> None:
    """Threads finish in any order; keys come from inputs, so completed ones are found on resume."""
    random.seed(3)
    settings["die"] = 6
    eid = run(service, threaded, {}, expect_crash=True)
    done_before = {s.input["i"] for s in service.get_journal(eid) if s.status is StepStatus.COMPLETED}
    assert 0 < len(done_before) < 10
    resume(service, threaded)
    assert service.get_execution(eid).output == [i * i for i in range(10)]
    for i in done_before:
        assert calls[f"c{i}"] == 1, f"crunch({i}) completed before the crash but ran again"
    assert not [e for e in service.get_events(eid) if e.type == "divergence"]


@durable.step(volatile=("request_id", "sent_at"))
def ask(message: dict[str, Any]) -> str:
    calls["ask"] += 1
    return f"answer to {message['text']}"


@durable.function
def chat() -> list[str]:
    message = {"text": "hi", "request_id": uuid.uuid4().hex, "sent_at": time.time()}
    answer = ask(message)
    return [answer, work("end")]


def test_volatile_fields_do_not_change_a_step_identity(service: Service) -> None:
    crash_at.add("end")
    eid = run(service, chat, {}, expect_crash=True)
    resume(service, chat)
    assert service.get_execution(eid).status is ExecutionStatus.COMPLETED
    assert calls["ask"] == 1
    assert not [e for e in service.get_events(eid) if e.type == "divergence"]


class Quote(BaseModel):
    symbol: str
    price: float


@durable.step
def quote(symbol: str) -> Quote:
    calls[symbol] += 1
    return Quote(symbol=symbol, price=12.5)


@durable.function
def typed() -> str:
    q = quote("ACME")
    assert isinstance(q, Quote)
    work("typed-end")
    return f"{q.symbol}={q.price}"


def test_typed_outputs_are_rebuilt_from_json_on_replay(service: Service) -> None:
    crash_at.add("typed-end")
    eid = run(service, typed, {}, expect_crash=True)
    resume(service, typed)
    assert service.get_execution(eid).output == "ACME=12.5"
    assert calls["ACME"] == 1
    assert service.get_journal(eid)[0].output == {"symbol": "ACME", "price": 12.5}


@durable.step
def opaque() -> Any:
    return object()


@durable.function
def returns_opaque() -> str:
    try:
        opaque()
    except NotJSONError as exc:
        return exc.message
    return "stored?"


def test_a_non_json_step_output_is_a_clear_error_and_is_not_stored(service: Service) -> None:
    eid = run(service, returns_opaque, {})
    message = service.get_execution(eid).output
    assert "opaque" in message and "cannot be stored as JSON" in message
    (step,) = service.get_journal(eid)
    assert step.status is StepStatus.FAILED and step.output is None


@durable.step
def takes(value: Any) -> str:
    calls["takes"] += 1
    return "ok"


@durable.function
def bad_input() -> str:
    takes(threading.Lock())
    return "unreachable"


def test_a_non_json_step_input_fails_before_anything_is_recorded(service: Service) -> None:
    eid = run(service, bad_input, {})
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.FAILED
    assert execution.error is not None and "cannot be stored as JSON" in execution.error.message
    assert service.get_journal(eid) == []
    assert calls["takes"] == 0


attempts: list[int] = []


@durable.step(retries=2, retry_delay=0)
def flaky() -> str:
    info = durable.current_step()
    assert info is not None
    attempts.append(info.attempt)
    if len(attempts) < 3:
        raise ConnectionError("try again")
    return "finally"


@durable.function
def retrying() -> str:
    return flaky()


def test_retries_run_inside_the_step_and_record_the_attempt(service: Service) -> None:
    attempts.clear()
    eid = run(service, retrying, {})
    assert service.get_execution(eid).output == "finally"
    assert attempts == [1, 2, 3]
    assert service.get_journal(eid)[0].attempt == 3


def test_steps_outside_an_execution_are_plain_calls() -> None:
    assert work("plain") == "done plain"
    assert asyncio.run(fetch(1)) == "page 1"
    assert calls == {"plain": 1, "f1": 1}
    assert keys_seen["plain"] == ["outside"]


@durable.step
def outer(n: int) -> list[str]:
    calls["outer"] += 1
    return [work(f"inner{n}-{i}") for i in range(2)]


@durable.function
def nested() -> list[str]:
    out = outer(1)
    work("nested-end")
    return out


def test_nested_steps_are_keyed_under_their_parent(service: Service) -> None:
    crash_at.add("nested-end")
    eid = run(service, nested, {}, expect_crash=True)
    resume(service, nested)
    journal = service.get_journal(eid)
    parent = next(s for s in journal if s.name == "outer")
    children = [s for s in journal if s.parent == parent.key]
    assert [s.output for s in children] == ["done inner1-0", "done inner1-1"]
    assert calls["outer"] == 1 and calls["inner1-0"] == 1

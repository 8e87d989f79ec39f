"""Guarantees of the core that hand-applied mutations once broke with the whole suite still green:
long polls wake on notification (not on the periodic re-check), the embedded runtime re-queues a dead
local worker's executions at once, and the default commit mode is FULL."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from processes import TESTS, wait_until

import agentspan.runtime._service as service_module
from agentspan.agents import AgentRuntime
from agentspan.durable import Runtime
from agentspan.runtime import ExecutionStatus, Service, SQLiteStore

LONG = 300.0  # every wait below would last this long if only the periodic re-check could end it


@pytest.fixture
def no_recheck(monkeypatch: pytest.MonkeyPatch) -> None:
    """Waiters re-check the store only every LONG seconds: only a notification wakes them in time."""
    monkeypatch.setattr(service_module, "_MAX_SLEEP", LONG)


def _in_thread(service: Service, topic: str, call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    """Run ``call`` in a thread and return once it waits on ``topic`` (a thread or an event loop task)."""
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(call()), daemon=True)
    thread.start()
    notifier = service.notifier
    wait_until(
        lambda: notifier._async.get(topic) or notifier._cond._waiters,  # type: ignore[attr-defined]
        f"the waiter to wait on {topic}",
        timeout=30,
    )
    return thread, out


def _claim_sync(service: Service) -> Any:
    return service.claim("w", ["wake"], wait_seconds=LONG)


def _claim_async(service: Service) -> Any:
    return asyncio.run(service.claim_async("w", ["wake"], wait_seconds=LONG))


@pytest.mark.parametrize("claim", [_claim_sync, _claim_async], ids=["thread", "event-loop"])
def test_a_waiting_claim_wakes_on_the_new_executions_notification(
    service: Service, no_recheck: None, claim: Callable[[Service], Any]
) -> None:
    thread, out = _in_thread(service, "work", lambda: claim(service))
    created = service.create_execution("wake", {})
    thread.join(60)  # far less than LONG: only the notification can have ended the wait
    assert not thread.is_alive(), "the claim did not wake when work was created"
    assert out[0] is not None and out[0].execution.id == created.id


@pytest.mark.parametrize("use_async", [False, True], ids=["thread", "event-loop"])
def test_a_waiting_event_reader_wakes_on_the_next_event(service: Service, no_recheck: None, use_async: bool) -> None:
    eid = service.create_execution("wake", {}).id
    after = service.get_events(eid)[-1].id

    def read() -> Any:
        if use_async:
            return asyncio.run(service.wait_events_async(eid, after=after, timeout=LONG))
        return service.wait_events(eid, after=after, timeout=LONG)

    thread, out = _in_thread(service, f"events:{eid}", read)
    service.cancel_execution(eid)
    thread.join(60)
    assert not thread.is_alive(), "the event wait did not wake on the new event"
    assert [e.type for e in out[0]] == ["execution.cancelled"]


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from agentspan import durable

    @durable.step
    def hold() -> str:
        Path(sys.argv[2]).touch()
        time.sleep(600)
        return "never"

    @durable.function(name="held")
    def held() -> str:
        return hold()

    with durable.Runtime(db=sys.argv[1], lease_seconds=600) as runtime:
        runtime.run(held)
    """
)


@pytest.mark.slow
def test_reopening_the_embedded_runtime_requeues_a_killed_scripts_execution_at_once(tmp_path: Path) -> None:
    db, inside = tmp_path / "held.db", tmp_path / "inside"
    script = tmp_path / "holder.py"
    script.write_text(HOLDER)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS.parent), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, str(script), str(db), str(inside)], env=env, stderr=subprocess.PIPE)
    try:
        wait_until(inside.exists, "the script to be inside its step")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    with Runtime(db=db) as runtime:  # the lease has ~600 s left: only the dead-worker check frees it
        [execution] = runtime.client.list_executions(name="held").items
        assert execution.status is ExecutionStatus.QUEUED
        assert execution.worker_id is None and execution.epoch == 1


def _synchronous(service: Service | None) -> int:
    assert service is not None and isinstance(service.store, SQLiteStore)
    return int(service.store._conn.execute("PRAGMA synchronous").fetchone()[0])


def test_the_embedded_default_commit_mode_is_full(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTSPAN_SYNCHRONOUS", raising=False)
    with Runtime(db=tmp_path / "a.db") as runtime:
        assert _synchronous(runtime.service) == 2  # FULL: every commit fsynced
    with AgentRuntime(db=tmp_path / "b.db", serve_http=False) as agents:
        assert _synchronous(agents._runtime.service) == 2
    monkeypatch.setenv("AGENTSPAN_SYNCHRONOUS", "normal")
    with Runtime(db=tmp_path / "c.db") as runtime:
        assert _synchronous(runtime.service) == 1  # NORMAL only when asked for

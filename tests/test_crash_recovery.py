"""Crash recovery with real processes: workers and servers killed with real signals."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
from processes import free_port, side_effects, start_server, start_worker, stop, wait_until

from agentspan.client import Client, HttpClient
from agentspan.errors import AgentspanError
from agentspan.runtime import ExecutionStatus, Service, SQLiteStore, StepRecord, StepStatus

pytestmark = pytest.mark.slow


def _completed(client: Client, execution_id: str) -> set[str]:
    return {s.key for s in client.get_journal(execution_id) if s.status is StepStatus.COMPLETED}


@pytest.mark.parametrize("transport", ["http", "embedded"])
def test_worker_killed_after_step_18_resumes_at_step_19(tmp_path: Path, transport: str) -> None:
    """SIGKILL after step 18: steps 1-18 ran exactly once; step 19 at most twice with one key."""
    log = tmp_path / "effects.log"
    proc = None
    if transport == "http":
        port = free_port()
        proc = start_server(tmp_path / "server.db", port)
        url: str | None = f"http://127.0.0.1:{port}/api"
        client: Client = HttpClient(url)
        where: dict[str, object] = {"server": url}
    else:
        url = None
        client = Service(SQLiteStore(tmp_path / "embedded.db"))
        where = {"db": tmp_path / "embedded.db"}
    try:
        execution = client.create_execution("sequence", {"log_path": str(log), "steps": 20, "delay": 0.05})
        first = start_worker(**where)  # type: ignore[arg-type]
        wait_until(lambda: len(_completed(client, execution.id)) >= 18, what="18 completed steps")
        first.send_signal(signal.SIGKILL)
        first.wait()
        done_at_kill = len(_completed(client, execution.id))
        assert 18 <= done_at_kill < 20

        second = start_worker(**where)  # type: ignore[arg-type]
        wait_until(lambda: client.get_execution(execution.id).status.is_terminal, what="completion")
        stop(second)
        stop(first)

        final = client.get_execution(execution.id)
        assert final.status is ExecutionStatus.COMPLETED
        assert final.output == [f"did step{i}" for i in range(1, 21)]
        counts, keys = side_effects(log)
        for i in range(1, done_at_kill + 1):
            assert counts[f"step{i}"] == 1, f"step {i} completed before the kill but ran {counts[f'step{i}']} times"
        for i in range(done_at_kill + 1, 21):
            assert 1 <= counts[f"step{i}"] <= 2
            assert len(keys[f"step{i}"]) == 1, "an in-doubt step must run again with the same idempotency key"
        types = [e.type for e in client.get_events(execution.id)]
        assert "lease.expired" in types
    finally:
        client.close()
        if proc is not None:
            stop(proc)


@pytest.mark.parametrize("flow", ["fan_out_async", "fan_out_threads"])
def test_parallel_steps_killed_midway_resume_without_repeats(server: str, tmp_path: Path, flow: str) -> None:
    log = tmp_path / "effects.log"
    client = HttpClient(server)
    execution = client.create_execution(flow, {"log_path": str(log), "seed": 11})
    first = start_worker(server=server)
    wait_until(lambda: len(_completed(client, execution.id)) >= 3, what="3 completed parallel steps")
    first.send_signal(signal.SIGKILL)
    first.wait()
    journal = client.get_journal(execution.id)
    done_at_kill = {s.input["label"] for s in journal if s.status is StepStatus.COMPLETED}
    assert 3 <= len(done_at_kill) < 10, "the kill should land with some steps finished and some not"

    second = start_worker(server=server)
    wait_until(lambda: client.get_execution(execution.id).status.is_terminal, what="completion")
    stop(second)
    stop(first)
    final = client.get_execution(execution.id)
    assert final.status is ExecutionStatus.COMPLETED
    assert final.output == [f"did p{i}" for i in range(10)]
    counts, keys = side_effects(log)
    for label in done_at_kill:
        assert counts[label] == 1, f"{label} completed before the kill but ran again"
    assert all(len(k) == 1 for k in keys.values())
    assert not [e for e in client.get_events(execution.id) if e.type == "divergence"]
    client.close()


def test_a_zombie_worker_cannot_write_after_its_lease_was_taken_over(server: str, tmp_path: Path) -> None:
    """SIGSTOP a worker past its lease; another takes over; after SIGCONT its writes are rejected."""
    log = tmp_path / "effects.log"
    client = HttpClient(server)
    execution = client.create_execution("sequence", {"log_path": str(log), "steps": 12, "delay": 0.3})
    zombie = start_worker(server=server, lease=2.0)
    wait_until(lambda: len(_completed(client, execution.id)) >= 3, what="3 completed steps")
    zombie.send_signal(signal.SIGSTOP)
    stopped_epoch = client.get_execution(execution.id).epoch

    rescuer = start_worker(server=server, lease=2.0)
    wait_until(lambda: client.get_execution(execution.id).epoch > stopped_epoch, what="the takeover")
    takeover = next(
        e for e in client.get_events(execution.id)
        if e.type == "execution.running" and e.data["epoch"] == stopped_epoch + 1
    )  # fmt: skip
    zombie.send_signal(signal.SIGCONT)
    wait_until(lambda: client.get_execution(execution.id).status.is_terminal, what="completion", timeout=60)
    zombie_out = zombie.communicate(timeout=30)
    stop(rescuer)

    assert client.get_execution(execution.id).status is ExecutionStatus.COMPLETED
    assert b"lost execution" in zombie_out[1], "the zombie should report that it lost its lease"
    for step in client.get_journal(execution.id):
        if step.epoch == stopped_epoch:
            assert step.completed_at is not None and step.completed_at <= takeover.created_at, (
                f"step {step.key} was written by the zombie after the takeover"
            )
    client.close()


def test_a_killed_server_loses_no_acknowledged_write(tmp_path: Path) -> None:
    """SIGKILL the server during a burst of step writes; after a restart every acknowledged one is there."""
    db = tmp_path / "server.db"
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    proc = start_server(db, port)
    client = HttpClient(url)
    executions = [client.create_execution("burst", {"n": i}) for i in range(3)]
    claims = [client.claim(f"w{i}", ["burst"]) for i in range(3)]
    acknowledged: list[tuple[str, str]] = []
    lock = threading.Lock()
    stop_flag = threading.Event()

    def writer(index: int) -> None:
        claim = claims[index]
        assert claim is not None
        with HttpClient(url) as own:
            for n in range(100_000):
                if stop_flag.is_set():
                    return
                key = f"s:{n}"
                record = StepRecord(key=key, kind="step", name="s", status=StepStatus.COMPLETED, output=n)
                try:
                    own.write_records(claim.execution.id, f"w{index}", claim.epoch, [record])
                except AgentspanError:
                    return
                with lock:
                    acknowledged.append((claim.execution.id, key))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    wait_until(lambda: len(acknowledged) >= 300, what="300 acknowledged writes")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    stop_flag.set()
    for t in threads:
        t.join(timeout=30)
    client.close()
    assert len({e.id for e in executions}) == 3

    restarted = start_server(db, port)
    try:
        with HttpClient(url) as again:
            stored = {(e.id, s.key) for e in executions for s in again.get_journal(e.id)}
        missing = [a for a in acknowledged if a not in stored]
        assert not missing, f"{len(missing)} acknowledged writes were lost"
    finally:
        stop(restarted)


def test_sigterm_finishes_the_current_step_and_releases_the_execution(server: str, tmp_path: Path) -> None:
    log = tmp_path / "effects.log"
    client = HttpClient(server)
    execution = client.create_execution("sequence", {"log_path": str(log), "steps": 10, "delay": 0.2})
    worker = start_worker(server=server, lease=30.0)
    wait_until(lambda: len(_completed(client, execution.id)) >= 2, what="2 completed steps")
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=20) == 0
    released = client.get_execution(execution.id)
    assert released.status is ExecutionStatus.QUEUED, "a stopped worker hands its execution back at once"
    journal = client.get_journal(execution.id)
    assert all(s.status is StepStatus.COMPLETED for s in journal), "the step in progress was finished"
    assert "execution.released" in [e.type for e in client.get_events(execution.id)]

    second = start_worker(server=server)
    wait_until(lambda: client.get_execution(execution.id).status.is_terminal, what="completion")
    stop(second)
    stop(worker)
    counts, _ = side_effects(log)
    assert set(counts.values()) == {1}, "no step ran twice after a graceful stop"
    assert len(counts) == 10
    client.close()

"""Another process holds the SQLite write lock (a backup, a long transaction): the server keeps
answering, refuses writes it cannot make with 503 + ``Retry-After``, and workers wait it out."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from processes import start_worker, stop, wait_until

from agentspan.client import HttpClient, RetryPolicy
from agentspan.runtime import Execution, ExecutionStatus, Service, SQLiteStore
from agentspan.testing import serve_in_thread

_HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


@contextmanager
def write_lock_held(db: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process holding the database's write lock until the block ends."""
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLD_LOCK, str(db)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdin is not None
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        if holder.poll() is None:
            holder.stdin.write("\n")
            holder.stdin.flush()
        holder.wait(timeout=30)
        holder.stdin.close()
        holder.stdout.close()


class _Store(SQLiteStore):
    """A real SQLite store that says when a create has begun (and is waiting for the lock)."""

    def __init__(self, path: Path, busy_timeout: float) -> None:
        super().__init__(path, busy_timeout=busy_timeout)
        self.creating = threading.Event()

    def create_execution(self, *args: Any, **kwargs: Any) -> tuple[Execution, bool]:
        self.creating.set()
        return super().create_execution(*args, **kwargs)


def test_health_answers_while_a_write_waits_for_the_lock(db_path: Path) -> None:
    store = _Store(db_path, busy_timeout=10.0)
    service = Service(store)
    answers: list[httpx.Response] = []
    try:
        with serve_in_thread(service) as server, write_lock_held(db_path):

            def create() -> None:
                answers.append(httpx.post(f"{server.url}/executions", json={"name": "locked-out"}, timeout=60))

            writer = threading.Thread(target=create)
            writer.start()
            assert store.creating.wait(timeout=30), "the write never reached the store"
            health = httpx.get(f"http://127.0.0.1:{server.port}/health", timeout=60)
            assert health.status_code == 200
            # The lock is still held (it is released when the block ends), so the write still waits.
            assert writer.is_alive() and answers == [], "the write finished (or /health waited for it)"
        writer.join(timeout=60)
        assert [a.status_code for a in answers] == [201]
    finally:
        service.close()


@pytest.mark.slow
def test_a_locked_database_is_a_503_and_a_worker_waits_it_out(tmp_path: Path, db_path: Path) -> None:
    service = Service(SQLiteStore(db_path, busy_timeout=0.2))
    effects, worker_log = tmp_path / "effects.log", tmp_path / "worker.log"
    worker: subprocess.Popen[bytes] | None = None
    try:
        with (
            serve_in_thread(service) as server,
            HttpClient(server.url, retry=RetryPolicy(max_delay=0.5, give_up_after=None)) as client,
        ):
            execution = client.create_execution("sequence", {"log_path": str(effects), "steps": 3, "delay": 0.0})
            with write_lock_held(db_path):
                refused = httpx.post(f"{server.url}/executions", json={"name": "locked-out"}, timeout=60)
                assert refused.status_code == 503
                assert refused.headers["retry-after"] == "1"
                assert refused.json()["error"]["type"] == "UnavailableError"
                assert "locked" in refused.json()["error"]["message"]
                assert httpx.get(f"{server.url}/executions/{execution.id}", timeout=60).status_code == 200

                worker = start_worker(server=server.url, lease=30.0, log=worker_log)
                wait_until(
                    lambda: "database is locked" in worker_log.read_text(errors="replace"),
                    "the worker to be told the database is locked",
                )
                assert worker.poll() is None, worker_log.read_text()
            wait_until(lambda: client.get_execution(execution.id).status.is_terminal, "the execution to end")
            final = client.get_execution(execution.id)
            assert final.status is ExecutionStatus.COMPLETED, final.error
            assert worker.wait(timeout=60) == 0, worker_log.read_text()
    finally:
        if worker is not None:
            stop(worker)
        service.close()
    output = worker_log.read_text()
    assert "the server is unavailable (503)" in output and "retrying in" in output
    assert "(500)" not in output

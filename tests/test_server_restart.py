"""Servers come and go: workers wait for an unreachable server, and a shutting-down server ends long polls.

Real processes: ``agentspan server`` on a real SQLite file, ``agentspan worker`` running the flows of
``tests/flows.py``, both killed with real signals.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from processes import free_port, start_server, start_worker, stop, wait_until

from agentspan.client import HttpClient, RetryPolicy
from agentspan.runtime import ExecutionStatus, StepStatus

pytestmark = pytest.mark.slow

_LEASE = 30.0  # longer than any restart here: the worker keeps its lease across it


def _client(url: str) -> HttpClient:
    return HttpClient(url, retry=RetryPolicy(max_delay=0.5, give_up_after=None))


def _completed_steps(client: HttpClient, execution_id: str) -> int:
    return sum(s.status is StepStatus.COMPLETED for s in client.get_journal(execution_id))


def _effects(log: Path) -> list[str]:
    return [line.split("\t")[0] for line in log.read_text().splitlines()] if log.exists() else []


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _run_sequence(url: str, effects: Path, steps: int) -> None:
    """Start the test flow of ``steps`` steps and wait until the worker has completed it."""
    with _client(url) as client:
        execution = client.create_execution("sequence", {"log_path": str(effects), "steps": steps, "delay": 0.0})
        wait_until(lambda: client.get_execution(execution.id).status.is_terminal, "the execution to end")
        assert client.get_execution(execution.id).status is ExecutionStatus.COMPLETED


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_a_worker_mid_execution_finishes_it_across_a_server_restart(tmp_path: Path, sig: signal.Signals) -> None:
    db, port = tmp_path / "server.db", free_port()
    url = f"http://127.0.0.1:{port}/api"
    effects, worker_log = tmp_path / "effects.log", tmp_path / "worker.log"
    server = start_server(db, port)
    worker: subprocess.Popen[bytes] | None = None
    with _client(url) as client:
        try:
            execution = client.create_execution("sequence", {"log_path": str(effects), "steps": 30, "delay": 0.05})
            worker = start_worker(server=url, lease=_LEASE, log=worker_log)
            wait_until(lambda: _completed_steps(client, execution.id) >= 5, "5 completed steps")
            server.send_signal(sig)
            server.wait(timeout=30)
            assert worker.poll() is None, _read(worker_log)
            server = start_server(db, port)
            wait_until(lambda: client.get_execution(execution.id).status.is_terminal, "the execution to end")
            final = client.get_execution(execution.id)
            assert final.status is ExecutionStatus.COMPLETED, final.error
            assert final.output == [f"did step{i}" for i in range(1, 31)]
            assert worker.wait(timeout=60) == 0, _read(worker_log)
        finally:
            stop(server)
            if worker is not None:
                stop(worker)
    # The same worker kept its lease: no step ran twice.
    assert sorted(_effects(effects)) == sorted(f"step{i}" for i in range(1, 31))
    assert "retrying in" in _read(worker_log)


def test_a_worker_started_before_its_server_waits_for_it_and_then_works(tmp_path: Path) -> None:
    db, port = tmp_path / "server.db", free_port()
    url = f"http://127.0.0.1:{port}/api"
    effects, worker_log = tmp_path / "effects.log", tmp_path / "worker.log"
    worker = start_worker(server=url, lease=_LEASE, log=worker_log)
    server: subprocess.Popen[bytes] | None = None
    try:
        wait_until(lambda: "unreachable at" in _read(worker_log), "the worker to say the server is unreachable")
        assert worker.poll() is None, _read(worker_log)
        server = start_server(db, port)
        _run_sequence(url, effects, 3)
        assert worker.wait(timeout=60) == 0, _read(worker_log)
    finally:
        stop(worker)
        if server is not None:
            stop(server)
    assert _effects(effects) == ["step1", "step2", "step3"]
    assert f"Agentspan server unreachable at {url}, retrying in" in _read(worker_log)


def test_sigterm_ends_a_long_poll_cleanly_and_the_worker_comes_back(tmp_path: Path) -> None:
    """The long poll (30 s) outlasts the server's graceful shutdown (5 s): it must end with a 503 the
    worker retries, not be cancelled into a 500 and a ``CancelledError`` traceback."""
    db, port = tmp_path / "server.db", free_port()
    url = f"http://127.0.0.1:{port}/api"
    effects, worker_log = tmp_path / "effects.log", tmp_path / "worker.log"
    server_log = db.with_suffix(".server.log")
    server = start_server(db, port, log_level="debug")
    worker = start_worker(server=url, lease=_LEASE, poll=30.0, log=worker_log)
    try:
        wait_until(lambda: "waits up to 30.0 s" in _read(server_log), "the worker's long poll to reach the server")
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)  # uvicorn ends by re-raising the signal: the return code is -SIGTERM
        shutdown_output = _read(server_log)
        assert "Traceback" not in shutdown_output
        assert "CancelledError" not in shutdown_output
        assert worker.poll() is None, _read(worker_log)
        server = start_server(db, port)
        _run_sequence(url, effects, 2)
        assert worker.wait(timeout=60) == 0, _read(worker_log)
    finally:
        stop(worker)
        stop(server)
    output = _read(worker_log)
    assert "the server is unavailable (503): the server is shutting down" in output
    assert "(500)" not in output

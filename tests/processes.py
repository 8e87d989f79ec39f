"""Real processes for the crash tests: a server and workers started with the ``agentspan`` command."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

TESTS = Path(__file__).parent


def log_call(label: str, pause: float = 0.1) -> None:
    """A tool's side effect in a worker process: append ``<label>\t<pid>`` to ``$AGENT_LOG`` (fsynced),
    then take ``pause`` seconds, as a real call would."""
    with open(os.environ["AGENT_LOG"], "a", encoding="utf-8") as log:
        log.write(f"{label}\t{os.getpid()}\n")
        log.flush()
        os.fsync(log.fileno())
    time.sleep(pause)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH", "")]))
    env.pop("AGENTSPAN_SERVER_URL", None)
    return env


def start_server(
    db: Path, port: int, *, synchronous: str = "full", log_level: str = "warning"
) -> subprocess.Popen[bytes]:
    """``agentspan server`` on a loopback port; returns once /health answers. Its output goes to
    ``<db>.server.log``."""
    log = db.with_suffix(".server.log")
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentspan", "--log-level", log_level, "server", "--port", str(port),
             "--db", str(db), "--synchronous", synchronous],
            env=_env(), stdout=out, stderr=out,
        )  # fmt: skip
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {log.read_text()}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError("server did not become healthy")


def start_worker(
    *,
    server: str | None = None,
    db: Path | None = None,
    lease: float = 2.0,
    target: str = "flows:functions",
    poll: float = 1.0,
    max_executions: int = 1,
    log: Path | None = None,
) -> subprocess.Popen[bytes]:
    """``agentspan worker`` for the test flows, over HTTP (``server``) or on the SQLite file (``db``).

    Its output is piped, or appended to ``log`` when given (to read while it runs)."""
    where = ["--server", server] if server else ["--db", str(db)]
    command = [
        sys.executable, "-m", "agentspan", "worker", target, *where, "--lease-seconds", str(lease),
        "--poll-seconds", str(poll), "--max-executions", str(max_executions),
    ]  # fmt: skip
    if log is None:
        return subprocess.Popen(command, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with open(log, "ab") as out:
        return subprocess.Popen(command, env=_env(), stdout=out, stderr=out)


def wait_until(predicate: Callable[[], object], what: str, timeout: float = 150.0) -> None:
    """Poll ``predicate`` every 5 ms until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def model_turns(requests: list[dict[str, Any]]) -> Counter[int]:
    """How often a fake model server was asked for each turn (turn = assistant messages so far + 1)."""
    return Counter(1 + sum(m.get("role") == "assistant" for m in r["messages"]) for r in requests)


def side_effects(log: Path) -> tuple[Counter[str], dict[str, set[str]]]:
    """How often each label ran, and with which idempotency keys."""
    counts: Counter[str] = Counter()
    keys: dict[str, set[str]] = defaultdict(set)
    if log.exists():
        for line in log.read_text().splitlines():
            label, key, _pid = line.split("\t")
            counts[label] += 1
            keys[label].add(key)
    return counts, keys


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=10)
    for stream in (proc.stdout, proc.stderr):
        if stream is not None:
            stream.close()


@dataclass(frozen=True)
class KilledAndResumed:
    """What a run looked like when its first worker was killed, and the run once a second one finished."""

    done_at_kill: set[str]
    """The tool calls the journal held as completed when the first worker was killed."""
    requests_before: list[dict[str, Any]]
    """The model requests the fake server got before the kill."""
    requests_after: list[dict[str, Any]]
    """The model requests it got after the kill."""
    final: Any
    """The execution as the second worker left it."""


def kill_after_and_resume(
    client: Any, execution_id: str, fake: Any, start: Callable[[], subprocess.Popen[bytes]],
    tools_done: Callable[[], set[str]], calls: int = 18,
) -> KilledAndResumed:  # fmt: skip
    """Start a worker, SIGKILL it once ``calls`` tool calls are recorded, start another and let it finish."""
    first = start()
    wait_until(lambda: len(tools_done()) >= calls, f"{calls} tool calls")
    first.send_signal(signal.SIGKILL)
    first.wait()
    fake.wait_idle()  # a request sent just before the kill is counted as before it
    done_at_kill = tools_done()
    requests_at_kill = fake.request_count
    second = start()
    wait_until(lambda: client.get_execution(execution_id).status.is_terminal, "the resumed run")
    stop(second)
    stop(first)
    requests = fake.requests
    return KilledAndResumed(
        done_at_kill, requests[:requests_at_kill], requests[requests_at_kill:], client.get_execution(execution_id)
    )

"""Running durable functions: an embedded runtime (SQLite in-process) or a remote server."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Container, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any

from ..client import Client
from ..errors import ConfigurationError, ExecutionCancelledError, ExecutionFailedError
from ..runtime import Budget, Event, Execution, ExecutionStatus, Service, SQLiteStore, Step
from ..runtime.store._sqlite import Synchronous
from ..worker._liveness import in_this_process, worker_gone
from ._codec import Codec, to_json
from ._definitions import FunctionDefinition

__all__ = [
    "ExecutionHandle",
    "Runtime",
    "default_db_path",
    "default_synchronous",
    "expire_dead_local_workers",
    "find_unfinished",
]

log = logging.getLogger("agentspan.runtime")
_TERMINAL_EVENTS = frozenset({"execution.completed", "execution.failed", "execution.cancelled"})
_UNFINISHED = (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING, ExecutionStatus.WAITING)


def find_unfinished(
    client: Client, name: str, data: Any, *, exclude: Container[str] = (), budget: Budget | None = None
) -> Execution | None:
    """An abandoned unfinished execution of ``name`` on exactly ``data`` with ``budget``, if any, other
    than those in ``exclude``: what an implicit resume (same agent, same input, no idempotency key)
    attaches to.

    Abandoned means no live worker holds it: it waits (for a signal or a timer), a worker ran it and
    is gone (its process died, or it handed the execution back), or it was never claimed within
    :data:`CLAIM_GRACE_SECONDS` of its creation; or this process's own worker runs it. One held by a
    live worker of another process (another copy of the same script, started at the same time) is not:
    the caller starts an execution of its own.
    """
    for status in _UNFINISHED:
        for execution in client.list_executions(status=status, name=name, limit=100).items:
            if (
                execution.input == data
                and execution.budget == budget
                and execution.id not in exclude
                and _abandoned(client, execution)
            ):
                return execution
    return None


CLAIM_GRACE_SECONDS = 2.0
"""How long a queued, never-claimed execution is taken to belong to the live process that created it."""


def _abandoned(client: Client, execution: Execution) -> bool:
    while True:
        if execution.status is ExecutionStatus.WAITING:
            return True
        if execution.status is ExecutionStatus.RUNNING:
            if in_this_process(execution.worker_id):
                return True  # this process's own worker runs it (say, just resumed after an approval)
            gone = worker_gone(execution.worker_id)
            if gone is not None:
                return gone
            expires = execution.lease_expires_at
            return expires is not None and expires <= datetime.now(UTC)
        if execution.status is not ExecutionStatus.QUEUED:
            return False  # finished meanwhile
        if execution.epoch > 0:
            return True  # a worker ran it before and let it go (or died and its lease was taken back)
        left = CLAIM_GRACE_SECONDS - (datetime.now(UTC) - execution.created_at).total_seconds()
        if left <= 0:
            return True
        # Its creator's worker, if alive, claims it within milliseconds: wait for that event.
        seen = client.get_events(execution.id)
        client.wait_events(execution.id, after=seen[-1].id if seen else 0, timeout=left)
        execution = client.get_execution(execution.id)


def default_synchronous() -> Synchronous:
    """``$AGENTSPAN_SYNCHRONOUS`` (``full`` or ``normal``), else ``full``: every commit is fsynced."""
    value = os.environ.get("AGENTSPAN_SYNCHRONOUS", "full").strip().lower()
    if value not in ("full", "normal"):
        raise ConfigurationError(f"AGENTSPAN_SYNCHRONOUS must be 'full' or 'normal', not {value!r}")
    return "full" if value == "full" else "normal"


def default_db_path() -> Path:
    """``$AGENTSPAN_DB``, else ``~/.agentspan/agentspan.db``."""
    configured = os.environ.get("AGENTSPAN_DB")
    return Path(configured) if configured else Path.home() / ".agentspan" / "agentspan.db"


class ExecutionHandle:
    """A started execution: follow it, wait for its result, signal or cancel it.

    Any process can build one from an execution id (``runtime.handle(execution_id)``).
    """

    def __init__(self, client: Client, execution_id: str, *, codec: Codec | None = None) -> None:
        self.client = client
        self.execution_id = execution_id
        self._codec = codec

    def __repr__(self) -> str:
        return f"ExecutionHandle({self.execution_id!r})"

    def get(self) -> Execution:
        """The execution as it is now."""
        return self.client.get_execution(self.execution_id)

    @property
    def status(self) -> ExecutionStatus:
        """The current status."""
        return self.get().status

    def journal(self) -> list[Step]:
        """The recorded steps."""
        return self.client.get_journal(self.execution_id)

    def events(self, *, after: int = 0, follow: bool = True) -> Iterator[Event]:
        """The execution's events from ``after`` on; with ``follow``, until it finishes."""
        while True:
            batch = (
                self.client.wait_events(self.execution_id, after=after, timeout=30.0)
                if follow
                else self.client.get_events(self.execution_id, after=after)
            )
            for event in batch:
                yield event
                after = event.id
                if event.type in _TERMINAL_EVENTS:
                    return
            if not follow:
                return

    def wait(self, timeout: float | None = None) -> Execution:
        """Block until the execution is completed, failed or cancelled; ``TimeoutError`` after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        after = 0
        while True:
            execution = self.get()
            if execution.status.is_terminal:
                return execution
            remaining = 30.0 if deadline is None else deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"execution {self.execution_id} is still {execution.status.value}")
            events = self.client.wait_events(self.execution_id, after=after, timeout=min(remaining, 30.0))
            if events:
                after = events[-1].id

    def result(self, timeout: float | None = None) -> Any:
        """The output once completed; raises ``ExecutionFailedError`` or ``ExecutionCancelledError``."""
        execution = self.wait(timeout)
        if execution.status is ExecutionStatus.COMPLETED:
            return execution.output if self._codec is None else self._codec.decode(execution.output)
        if execution.status is ExecutionStatus.CANCELLED:
            raise ExecutionCancelledError(
                f"execution {self.execution_id} was cancelled", execution_id=self.execution_id
            )
        error = execution.error
        raise ExecutionFailedError(
            f"execution {self.execution_id} failed: {error.type if error else 'error'}: {error.message if error else ''}",
            execution_id=self.execution_id,
            error=None if error is None else error.model_dump(),
        )

    def signal(self, name: str, payload: Any = None) -> Execution:
        """Deliver the signal ``name`` (see :func:`agentspan.durable.wait_for_signal`)."""
        return self.client.send_signal(self.execution_id, name, payload)

    def cancel(self) -> Execution:
        """Cancel the execution."""
        return self.client.cancel_execution(self.execution_id)


class Runtime:
    """Start durable functions and run them, embedded or against a server.

    With no server URL (argument or ``AGENTSPAN_SERVER_URL``), the runtime is embedded: the service
    runs in this process over a SQLite file (``db``, default :func:`default_db_path`). Either way,
    functions passed to :meth:`run` or :meth:`start` are executed by a worker thread in this process.

    Args:
        server_url: The server's API URL, e.g. ``http://localhost:6767/api``.
        db: The SQLite file of the embedded runtime.
        token: Bearer token for the server (default ``AGENTSPAN_AUTH_TOKEN``).
        lease_seconds: Lease length for this process's workers.
        synchronous: The embedded store's commit mode, ``"full"`` (fsync every commit) or
            ``"normal"`` (survives a process crash, not an OS crash); default
            :func:`default_synchronous`.
    """

    def __init__(
        self,
        server_url: str | None = None,
        *,
        db: str | Path | None = None,
        token: str | None = None,
        lease_seconds: float = 30.0,
        synchronous: Synchronous | None = None,
    ) -> None:
        url = server_url or os.environ.get("AGENTSPAN_SERVER_URL")
        self.service: Service | None = None
        self.client: Client
        if url:
            from ..client import HttpClient

            self.client = HttpClient(url, token=token)
        else:
            self.service = Service(
                SQLiteStore(db or default_db_path(), synchronous=synchronous or default_synchronous())
            )
            self.client = self.service
            self._reap_dead_local_workers()
        self.lease_seconds = lease_seconds
        self._workers: dict[str, tuple[Any, threading.Thread]] = {}
        self._lock = threading.Lock()

    def __enter__(self) -> Runtime:
        return self

    def __exit__(self, *exc: tuple[type[BaseException] | None, BaseException | None, TracebackType | None]) -> None:
        self.close()

    def close(self) -> None:
        """Stop this process's workers (each finishes or releases its current step) and disconnect."""
        self.stop_workers()
        self.client.close()

    def stop_workers(self) -> None:
        """Stop this process's workers and wait for them: each finishes or releases its current step."""
        with self._lock:
            workers, self._workers = list(self._workers.values()), {}
        for worker, _ in workers:
            worker.stop()
        for _, thread in workers:
            if thread is not threading.current_thread():
                thread.join(timeout=30)

    def _reap_dead_local_workers(self) -> None:
        assert self.service is not None
        expire_dead_local_workers(self.service)

    # --- starting -----------------------------------------------------------------------------
    def start(
        self, fn: Callable[..., Any], /, *args: Any, idempotency_key: str | None = None, **kwargs: Any
    ) -> ExecutionHandle:
        """Start ``fn(*args, **kwargs)`` as a durable execution and return its handle.

        ``idempotency_key``: starting again with the same key returns the same execution (which
        resumes where it stopped if its process died).
        """
        definition = FunctionDefinition.of(fn)
        arguments = to_json(definition.bind(args, kwargs), f"the arguments of {definition.name}")
        execution = self.client.create_execution(
            definition.name, arguments, idempotency_key=idempotency_key, framework=definition.framework
        )
        self.ensure_worker(fn)
        return ExecutionHandle(self.client, execution.id, codec=definition.codec)

    def run(self, fn: Callable[..., Any], /, *args: Any, idempotency_key: str | None = None, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` durably and return its result (see :meth:`start`)."""
        return self.start(fn, *args, idempotency_key=idempotency_key, **kwargs).result()

    def handle(self, execution_id: str) -> ExecutionHandle:
        """A handle on an existing execution, from any process."""
        self.client.get_execution(execution_id)
        return ExecutionHandle(self.client, execution_id)

    def serve(self, *functions: Callable[..., Any], handle_signals: bool = True) -> None:
        """Run a worker for ``functions`` in this thread until stopped (SIGTERM/SIGINT: graceful)."""
        from ..worker import Worker

        worker = Worker(self.client, functions, lease_seconds=self.lease_seconds, poll_seconds=1.0)
        key = f"serve:{worker.worker_id}"
        with self._lock:
            self._workers[key] = (worker, threading.current_thread())
        try:
            worker.run(handle_signals=handle_signals)
        finally:
            with self._lock:
                self._workers.pop(key, None)

    @property
    def local_names(self) -> set[str]:
        """The names this runtime's own workers serve."""
        with self._lock:
            return {name for worker, _ in self._workers.values() for name in worker.names}

    def ensure_worker(self, fn: Callable[..., Any]) -> None:
        """Run a worker thread for durable function ``fn`` in this process (once per name)."""
        from ..worker import Worker

        name = FunctionDefinition.of(fn).name
        with self._lock:
            if name in self._workers:
                return
            worker = Worker(self.client, [fn], lease_seconds=self.lease_seconds, poll_seconds=0.5)
            thread = threading.Thread(target=worker.run, name=f"agentspan-worker-{name}", daemon=True)
            self._workers[name] = (worker, thread)
            thread.start()


def expire_dead_local_workers(service: Service) -> list[str]:
    """Re-queue executions leased by a process of this host that no longer exists.

    Without this, they wait for their lease to expire; with it, re-running a script after a crash
    resumes at once. Returns the re-queued execution ids.
    """
    dead: set[str] = set()
    cursor = None
    while True:
        page = service.list_executions(status=ExecutionStatus.RUNNING, limit=1000, cursor=cursor)
        dead.update(e.worker_id for e in page.items if e.worker_id and worker_gone(e.worker_id))
        cursor = page.next_cursor
        if cursor is None:
            break
    return service.expire_leases(sorted(dead)) if dead else []

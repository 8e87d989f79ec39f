"""Group commit of journal records: one write (one HTTP round trip, one fsync) per step.

A step writes two records: *started* before its function runs and *completed* after. Waiting for the
started record would cost a second round trip per step, so it is queued instead and written either
together with the step's completion (fast steps: one request carries both) or by a background flusher
once it has lingered a couple of milliseconds (slow steps: an LLM call is visible as started while it
runs). The completion is always written before the step returns. Steps whose in-doubt policy must see
the started record (``CONFIRM``, ``FAIL``) wait for it to be written before their function runs.

A write that fails for a reason that may pass (the server unreachable or overloaded, a dropped
connection, a locked database) is retried with capped backoff for up to ``retry_seconds``, its records
kept in order; a refusal (a lost lease, a conflict, a payload too large), a bug, or a failure that
outlasts the retries stops the writer, and every later write, in any thread, raises that error: no
record goes missing unnoticed.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from typing import TYPE_CHECKING

from ..errors import AgentspanError

if TYPE_CHECKING:
    from ..client import Client
    from ..runtime import Record

__all__ = ["JournalWriter", "transient"]

log = logging.getLogger("agentspan.worker")
_FIRST_RETRY = 0.05
_MAX_RETRY = 2.0


def transient(exc: BaseException) -> bool:
    """Whether repeating what raised ``exc`` may succeed: an error Agentspan marks retryable (the server
    unreachable or failing), a dropped connection or other OS error, a locked or busy database. The
    server's refusals (a lost lease, a conflict, bad input) and bugs (any other error) are final: retried,
    a bug would only fail again, or re-queued, loop."""
    if isinstance(exc, AgentspanError):
        return exc.retryable
    return isinstance(exc, OSError | sqlite3.OperationalError)


class JournalWriter:
    """Ordered, batched, fenced writes of one execution's records.

    Args:
        client: The transport.
        execution_id: The execution written to.
        worker_id: The worker holding the lease.
        epoch: The lease's fencing epoch, carried by every write.
        linger: How long a started record may wait to share a request with its completion.
        retry_seconds: How long a write that fails for a passing reason is retried before the writer
            gives up (the worker passes its lease length: past that, the lease is gone anyway).
    """

    def __init__(
        self,
        client: Client,
        execution_id: str,
        worker_id: str,
        epoch: int,
        *,
        linger: float = 0.005,
        retry_seconds: float = 30.0,
    ) -> None:
        self._client = client
        self.client = client
        """The transport, for the few calls a running execution makes besides its records (a
        default decision delivered as a signal)."""
        self.inline = client.inline_writes
        """Writes are cheap in-process calls (the local transport), so async code may block on them."""
        self._execution_id = execution_id
        self._worker_id = worker_id
        self._epoch = epoch
        self._linger = linger
        self._retry_seconds = retry_seconds
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._io = threading.Lock()
        self._pending: list[Record] = []
        self._oldest = 0.0
        self._queued = 0  # sequence number of the last record queued
        self._written = 0  # sequence number of the last record written
        self._failure: Exception | None = None
        self._closed = threading.Event()
        self._polling = False
        self._flusher: threading.Thread | None = None

    @property
    def failure(self) -> Exception | None:
        """The error that stopped writing (a lost lease, a refused write, retries exhausted), if any."""
        return self._failure

    def add(self, record: Record) -> int:
        """Queue a record to be written soon; returns its sequence number."""
        with self._lock:
            if self._failure is not None:
                raise self._failure
            if not self._pending:
                self._oldest = time.monotonic()
            self._pending.append(record)
            self._queued += 1
            if self._flusher is None:
                self._flusher = threading.Thread(target=self._run, name="agentspan-journal", daemon=True)
                self._flusher.start()
            elif not self._polling:
                self._wake.notify()
            return self._queued

    def write(self, record: Record) -> None:
        """Write a record (and everything queued before it) before returning."""
        self.flush(self.add(record))

    def flush(self, upto: int | None = None) -> None:
        """Write every queued record up to sequence ``upto`` (all by default)."""
        with self._io:
            with self._lock:
                if self._failure is not None:
                    raise self._failure
                target = self._queued if upto is None else upto
                if self._written >= target:
                    return
                batch, self._pending = self._pending, []
                last = self._queued
            if not batch:
                return
            try:
                self._send(batch)
            except Exception as exc:
                with self._lock:
                    self._failure = exc  # every later write raises it: nothing goes missing unnoticed
                raise
            with self._lock:
                self._written = last

    def _send(self, batch: list[Record]) -> None:
        """One write of ``batch``, retried with capped backoff while its failure may pass."""
        deadline = time.monotonic() + self._retry_seconds
        delay = _FIRST_RETRY
        while True:
            try:
                self._client.write_records(self._execution_id, self._worker_id, self._epoch, batch)
                return
            except Exception as exc:
                left = deadline - time.monotonic()
                if not transient(exc) or left <= 0 or self._closed.is_set():
                    if transient(exc):
                        log.error("journal write for %s failed for %.0f s, giving up: %s", self._execution_id,
                                  self._retry_seconds, _describe(exc))  # fmt: skip
                    raise
                wait = min(delay, left)
                log.warning("journal write for %s failed, retrying in %.2f s: %s", self._execution_id, wait,
                            _describe(exc))  # fmt: skip
                self._closed.wait(wait)  # a sleep that close() cuts short
                delay = min(delay * 2, _MAX_RETRY)

    def close(self) -> None:
        """Stop the background flusher; records still queued are dropped (the caller flushed first)."""
        with self._lock:
            self._closed.set()
            self._wake.notify()
        if self._flusher is not None:
            self._flusher.join(timeout=5)

    def _run(self) -> None:
        # While steps keep coming, the flusher checks the queue every `linger` seconds instead of
        # being woken for each record: a wake-up per step would cost more than the write itself
        # (threads contend for the GIL). After a quiet second it sleeps until the next record.
        idle_checks = 0
        quiet = max(int(1.0 / self._linger), 1)
        while True:
            with self._lock:
                if not self._polling:
                    while not self._pending and not self._closed.is_set():
                        self._wake.wait()
                    self._polling = True
                    idle_checks = 0
                if self._closed.is_set():
                    return
            self._closed.wait(self._linger)  # a sleep that close() cuts short
            with self._lock:
                if self._closed.is_set():
                    return
                due = bool(self._pending) and time.monotonic() - self._oldest >= self._linger
                if self._pending:
                    idle_checks = 0
                else:
                    idle_checks += 1
                    if idle_checks >= quiet:
                        self._polling = False
                if self._failure is not None:
                    self._polling = False  # nothing more to write: sleep until close()
                    self._pending.clear()
                    continue
            if due:
                try:
                    self.flush()
                except Exception:  # kept in self._failure: the next write, in the step's thread, raises it
                    log.debug("background journal write for %s failed", self._execution_id, exc_info=True)


def _describe(exc: BaseException) -> str:
    return exc.message if isinstance(exc, AgentspanError) else f"{type(exc).__name__}: {exc}"

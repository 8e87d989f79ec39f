"""Group commit of journal records: one write (one HTTP round trip, one fsync) per step.

A step writes two records: *started* before its function runs and *completed* after. Waiting for the
started record would cost a second round trip per step, so it is queued instead and written either
together with the step's completion (fast steps: one request carries both) or by a background flusher
once it has lingered a couple of milliseconds (slow steps: an LLM call is visible as started while it
runs). The completion is always written before the step returns. Steps whose in-doubt policy must see
the started record (``CONFIRM``, ``FAIL``) wait for it to be written before their function runs.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from ..errors import AgentspanError

if TYPE_CHECKING:
    from ..client import Client
    from ..runtime import Record

__all__ = ["JournalWriter"]


class JournalWriter:
    """Ordered, batched, fenced writes of one execution's records.

    Args:
        client: The transport.
        execution_id: The execution written to.
        worker_id: The worker holding the lease.
        epoch: The lease's fencing epoch, carried by every write.
        linger: How long a started record may wait to share a request with its completion.
    """

    def __init__(self, client: Client, execution_id: str, worker_id: str, epoch: int, *, linger: float = 0.005) -> None:
        self._client = client
        self.inline = client.inline_writes
        """Writes are cheap in-process calls (the local transport), so async code may block on them."""
        self._execution_id = execution_id
        self._worker_id = worker_id
        self._epoch = epoch
        self._linger = linger
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._io = threading.Lock()
        self._pending: list[Record] = []
        self._oldest = 0.0
        self._queued = 0  # sequence number of the last record queued
        self._written = 0  # sequence number of the last record written
        self._failure: AgentspanError | None = None
        self._closed = threading.Event()
        self._polling = False
        self._flusher: threading.Thread | None = None

    @property
    def failure(self) -> AgentspanError | None:
        """The error that stopped writing (a lost lease), if any."""
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
                self._client.write_records(self._execution_id, self._worker_id, self._epoch, batch)
            except AgentspanError as exc:
                with self._lock:
                    self._failure = exc
                raise
            with self._lock:
                self._written = last

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
                    self._pending.clear()
                    continue
            if due:
                try:
                    self.flush()
                except AgentspanError:
                    pass  # kept in self._failure; the next step raises it

"""The SQLite store: the embedded default. WAL mode, durable (``synchronous=FULL``) commits by default."""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from ...errors import ConflictError, InvalidInputError, LeaseLostError, NotFoundError, UnavailableError
from .._fork import StepRef, plan_fork
from .._inbox import INBOX_KINDS, WaitRow
from .._models import (
    Claim,
    Definition,
    DivergenceRecord,
    ErrorInfo,
    Event,
    Execution,
    ExecutionPage,
    ExecutionStatus,
    FinishRecord,
    ForkOrigin,
    Heartbeat,
    Record,
    Step,
    StepRecord,
    StepStatus,
    WaitInfo,
    WriteResult,
)
from . import _rows as conv
from ._base import Store, WouldBlock
from ._listing import ListingFilters, list_executions
from ._rows import Synchronous
from ._schema import migrate

__all__ = ["SQLiteStore", "Synchronous"]

# The columns that say what an execution runs: a fork copies them from its source. A column added to
# say what to run (a framework, a version) is added here too.
_WHAT_TO_RUN = ("name", "input", "budget", "framework")
# The columns of a step a fork copies; it writes its own execution_id and epoch 0, and no wait (the
# copied steps are finished: a signal or timer they waited for was already answered in the source).
_FORK_STEP_COLUMNS = (
    "key, parent, kind, name, status, fingerprint, input, output, error, attempt, idempotency_key,"
    " concurrent, usage, started_at, completed_at"
)


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return exc.sqlite_errorcode in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc)


def _unavailable(exc: sqlite3.OperationalError) -> UnavailableError:
    return UnavailableError(
        f"the database is locked by another process (a backup, a long transaction): {exc}; nothing was"
        " changed, try again shortly",
        retry_after=1.0,
    )


class SQLiteStore(Store):
    """A :class:`Store` in one SQLite file.

    Several processes may open the same file (SQLite serialises writers); one connection per store
    object, shared by threads under a lock.

    Args:
        path: The database file (created with its folder if missing), or ``":memory:"``.
        synchronous: ``"full"`` (default) fsyncs every commit, so an acknowledged write survives a
            power loss; ``"normal"`` survives a process crash but may lose the last commits on an OS
            crash, and is about ten times faster.
        busy_timeout: Seconds a write waits for another process's write lock on the file (a backup,
            a long transaction) before it gives up with
            :class:`~agentspan.errors.UnavailableError` (the server answers 503), nothing changed.
    """

    def __init__(self, path: str | Path, *, synchronous: Synchronous = "full", busy_timeout: float = 30.0) -> None:
        if synchronous not in ("full", "normal"):
            raise InvalidInputError(f"synchronous must be 'full' or 'normal', not {synchronous!r}")
        if not 0 <= busy_timeout <= 3600:
            raise InvalidInputError(f"busy_timeout must be between 0 and 3600 seconds, not {busy_timeout}")
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._busy_timeout = busy_timeout
        self._at_once = threading.local()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={synchronous.upper()}")
        self._conn.execute("PRAGMA foreign_keys=OFF")
        self._conn.execute(f"PRAGMA busy_timeout={round(busy_timeout * 1000)}")
        with self._lock:
            migrate(self._conn)

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.close()
            except sqlite3.ProgrammingError:
                pass

    @contextmanager
    def at_once(self) -> Iterator[None]:
        """See :meth:`Store.at_once`: the connection's lock is not waited for, nor the file's write lock."""
        self._at_once.active = True
        try:
            yield
        finally:
            self._at_once.active = False

    def _now_only(self) -> bool:
        return bool(getattr(self._at_once, "active", False))

    @contextmanager
    def _held(self) -> Iterator[None]:
        """The connection's lock, waited for at most the busy timeout: while another process holds the
        write lock, requests queue here behind the one waiting for it, and each gives up in bounded
        time instead of after everyone before it."""
        if self._now_only():
            if not self._lock.acquire(blocking=False):
                raise WouldBlock("another call holds the connection")
        elif not self._lock.acquire(timeout=self._busy_timeout):
            raise UnavailableError(
                "the database is busy (waiting for a write lock, held by another process?); nothing was"
                " changed, try again shortly",
                retry_after=1.0,
            )
        try:
            yield
        finally:
            self._lock.release()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._held():
            conn = self._conn
            now_only = self._now_only()
            if now_only:  # the write lock is taken at BEGIN IMMEDIATE: do not wait for it there
                conn.execute("PRAGMA busy_timeout=0")
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                if _is_busy(exc):
                    if now_only:
                        raise WouldBlock("another process holds the write lock") from exc
                    raise _unavailable(exc) from exc
                raise
            finally:
                if now_only:
                    conn.execute(f"PRAGMA busy_timeout={round(self._busy_timeout * 1000)}")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                    raise _unavailable(exc) from exc
                raise

    @staticmethod
    def _event(conn: sqlite3.Connection, execution_id: str, type_: str, data: dict[str, Any], now: float) -> None:
        conn.execute(
            "INSERT INTO events (execution_id, type, data, created_at) VALUES (?, ?, ?, ?)",
            (execution_id, type_, conv.dumps(data), now),
        )

    @staticmethod
    def _row(conn: sqlite3.Connection, execution_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute(
            f"SELECT {conv.EXEC_COLUMNS} FROM executions WHERE id = ?", (execution_id,)
        ).fetchone()
        if row is None:
            raise NotFoundError(f"no execution with id {execution_id!r}", execution_id=execution_id)
        return row

    # executions -----------------------------------------------------------------------------------
    def create_execution(
        self,
        execution_id: str,
        name: str,
        input_json: str,
        idempotency_key: str | None,
        now: float,
        *,
        budget_json: str | None = None,
        framework: str | None = None,
    ) -> tuple[Execution, bool]:
        with self._tx() as conn:
            # Whether this call created the execution is decided by the insert itself: of callers racing
            # with one key, exactly one inserts (the key is UNIQUE; NULL keys never conflict).
            inserted = conn.execute(
                "INSERT INTO executions (id, name, status, input, idempotency_key, created_at, updated_at, budget,"
                " framework) VALUES (?, ?, 'queued', ?, ?, ?, ?, ?, ?) ON CONFLICT (idempotency_key) DO NOTHING",
                (execution_id, name, input_json, idempotency_key, now, now, budget_json, framework),
            ).rowcount
            if not inserted:
                row = conn.execute(
                    f"SELECT {conv.EXEC_COLUMNS} FROM executions WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if row["name"] != name or row["input"] != input_json:
                    raise ConflictError(
                        f"idempotency key {idempotency_key!r} was already used for execution "
                        f"{row['id']} with a different name or input; use a new key",
                        execution_id=row["id"],
                    )
                return conv.execution(row), False
            conn.execute(
                "INSERT INTO work_queue (execution_id, name, available_at) VALUES (?, ?, ?)",
                (execution_id, name, now),
            )
            self._event(conn, execution_id, "execution.queued", {"name": name}, now)
            return conv.execution(self._row(conn, execution_id)), True

    def get_execution(self, execution_id: str) -> Execution | None:
        with self._held():
            row = self._conn.execute(
                f"SELECT {conv.EXEC_COLUMNS} FROM executions WHERE id = ?", (execution_id,)
            ).fetchone()
        return None if row is None else conv.execution(row)

    def list_executions(
        self,
        *,
        status: ExecutionStatus | None,
        name: str | None,
        created_after: datetime | None,
        created_before: datetime | None,
        limit: int,
        cursor: str | None,
        framework: str | None = None,
        q: str | None = None,
        summary: bool = False,
    ) -> ExecutionPage:
        filters = ListingFilters(
            status=status, name=name, framework=framework, q=q, created_after=created_after,
            created_before=created_before,
        )  # fmt: skip
        with self._held():
            if not summary:
                return list_executions(self._conn, filters, limit=limit, cursor=cursor, summary=False)
            # The page, its total and its summaries from one snapshot.
            self._conn.execute("BEGIN")
            try:
                return list_executions(self._conn, filters, limit=limit, cursor=cursor, summary=True)
            finally:
                self._conn.execute("COMMIT")

    def cancel_execution(self, execution_id: str, now: float) -> Execution:
        with self._tx() as conn:
            row = self._row(conn, execution_id)
            status = ExecutionStatus(row["status"])
            if status is ExecutionStatus.CANCELLED:
                return conv.execution(row)
            if status.is_terminal:
                raise ConflictError(
                    f"execution {execution_id} already {status.value}; only unfinished executions can be cancelled",
                    execution_id=execution_id,
                )
            conn.execute(
                "UPDATE executions SET status = 'cancelled', updated_at = ?, worker_id = NULL,"
                " lease_expires_at = NULL, wait = NULL, cancel_requested = ? WHERE id = ?",
                (now, int(status is ExecutionStatus.RUNNING), execution_id),
            )
            conn.execute("DELETE FROM work_queue WHERE execution_id = ?", (execution_id,))
            self._event(conn, execution_id, "execution.cancelled", {"previous": status.value}, now)
            return conv.execution(self._row(conn, execution_id))

    def fork_execution(
        self, source_id: str, execution_id: str, step_key: str, idempotency_key: str | None, now: float
    ) -> tuple[Execution, bool]:
        with self._tx() as conn:
            source = self._row(conn, source_id)
            if idempotency_key is not None:
                existing = conn.execute(
                    f"SELECT {conv.EXEC_COLUMNS} FROM executions WHERE idempotency_key = ?", (idempotency_key,)
                ).fetchone()
                if existing is not None:
                    found = conv.execution(existing)
                    if found.forked_from is None or (found.forked_from.execution_id, found.forked_from.step) != (
                        source_id, step_key,
                    ):  # fmt: skip
                        raise ConflictError(
                            f"idempotency key {idempotency_key!r} was already used for execution {found.id},"
                            f" which is not a fork of {source_id} from step {step_key!r}; use a new key",
                            execution_id=found.id,
                        )
                    return found, False
            refs = [
                StepRef(
                    seq=r["seq"], key=r["key"], parent=r["parent"], status=r["status"], superseded=r["generation"] != 0
                )
                for r in conn.execute(
                    "SELECT seq, key, parent, status, generation FROM steps WHERE execution_id = ? ORDER BY seq",
                    (source_id,),
                )
            ]
            plan = plan_fork(source_id, step_key, refs)
            origin = ForkOrigin(execution_id=source_id, step=step_key, seq=plan.seq)
            copied = ", ".join(_WHAT_TO_RUN)
            conn.execute(
                f"INSERT INTO executions (id, status, idempotency_key, created_at, updated_at, forked_from, {copied})"
                f" SELECT ?, 'queued', ?, ?, ?, ?, {copied} FROM executions WHERE id = ?",
                (execution_id, idempotency_key, now, now, origin.model_dump_json(), source_id),
            )
            conn.executemany(
                f"INSERT INTO steps (execution_id, epoch, {_FORK_STEP_COLUMNS})"
                f" SELECT ?, 0, {_FORK_STEP_COLUMNS} FROM steps WHERE seq = ?",
                [(execution_id, seq) for seq in plan.copy],
            )
            conn.execute(
                "INSERT INTO work_queue (execution_id, name, available_at) VALUES (?, ?, ?)",
                (execution_id, source["name"], now),
            )
            self._event(
                conn, execution_id, "execution.queued",
                {"name": source["name"], "forked_from": origin.model_dump(mode="json")}, now,
            )  # fmt: skip
            self._event(conn, source_id, "execution.forked", {"fork": execution_id, "step": step_key}, now)
            return conv.execution(self._row(conn, execution_id)), True

    def delete_execution(self, execution_id: str) -> None:
        with self._tx() as conn:
            row = self._row(conn, execution_id)
            if row["status"] == ExecutionStatus.RUNNING.value:
                raise ConflictError(
                    f"execution {execution_id} is running; cancel it before deleting it",
                    execution_id=execution_id,
                )
            for table, column in (
                ("steps", "execution_id"),
                ("events", "execution_id"),
                ("signals", "execution_id"),
                ("work_queue", "execution_id"),
                ("executions", "id"),
            ):
                conn.execute(f"DELETE FROM {table} WHERE {column} = ?", (execution_id,))

    # journal ----------------------------------------------------------------------------------------
    def get_journal(self, execution_id: str, *, include_superseded: bool = False) -> list[Step]:
        with self._held():
            self._row(self._conn, execution_id)
            return self._journal(self._conn, execution_id, include_superseded)

    @staticmethod
    def _journal(conn: sqlite3.Connection, execution_id: str, include_superseded: bool) -> list[Step]:
        sql = f"SELECT {conv.STEP_COLUMNS} FROM steps WHERE execution_id = ?"
        if not include_superseded:
            sql += " AND generation = 0"
        return conv.steps(conn.execute(sql + " ORDER BY seq", (execution_id,)).fetchall())

    def write_records(
        self, execution_id: str, worker_id: str, epoch: int, records: Sequence[Record], now: float
    ) -> WriteResult:
        with self._tx() as conn:
            row = conn.execute(
                "SELECT status, epoch, worker_id FROM executions WHERE id = ?", (execution_id,)
            ).fetchone()
            if row is None:
                raise NotFoundError(f"no execution with id {execution_id!r}", execution_id=execution_id)
            if (
                row["status"] != ExecutionStatus.RUNNING.value
                or row["epoch"] != epoch
                or (row["worker_id"] != worker_id)
            ):
                reason = (
                    "it was cancelled"
                    if row["status"] == ExecutionStatus.CANCELLED.value
                    else f"it is {row['status']} under epoch {row['epoch']} by {row['worker_id'] or 'nobody'}"
                )
                raise LeaseLostError(
                    f"write rejected for execution {execution_id} at epoch {epoch}: {reason}",
                    execution_id=execution_id,
                    epoch=epoch,
                )
            status = ExecutionStatus.RUNNING
            for record in _coalesce(records):
                if isinstance(record, StepRecord):
                    self._write_step(conn, execution_id, epoch, record, now)
                elif isinstance(record, DivergenceRecord):
                    self._write_divergence(conn, execution_id, record, now)
                else:
                    status = self._finish(conn, execution_id, record, now)
            return WriteResult(written=len(records), status=status)

    def _write_step(self, conn: sqlite3.Connection, execution_id: str, epoch: int, r: StepRecord, now: float) -> None:
        final = r.status in (StepStatus.COMPLETED, StepStatus.FAILED)
        output = conv.dumps(r.output) if r.status is StepStatus.COMPLETED else None
        error = r.error.model_dump_json() if r.error is not None else None
        wait = r.wait
        # One statement inserts a new step or moves an unfinished one on; a finished step never changes.
        changed = conn.execute(
            f"INSERT INTO steps ({conv.STEP_INSERT}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (execution_id, key, generation) DO UPDATE SET"
            " status = excluded.status, output = excluded.output, error = excluded.error,"
            " attempt = max(steps.attempt, excluded.attempt), concurrent = excluded.concurrent,"
            " usage = excluded.usage, signal = excluded.signal, wake_at = excluded.wake_at,"
            " epoch = excluded.epoch, completed_at = excluded.completed_at"
            " WHERE steps.status IN ('started', 'suspended')",
            (
                execution_id, r.key, r.parent, r.kind, r.name, r.status.value, r.fingerprint,
                conv.dumps(r.input), output, error, r.attempt, r.idempotency_key, int(r.concurrent),
                None if r.usage is None else conv.dumps(r.usage), None if wait is None else wait.signal,
                None if wait is None else conv.ts(wait.wake_at), epoch, now, now if final else None,
            ),
        ).rowcount  # fmt: skip
        if not changed:
            existing = conn.execute(
                "SELECT status, output, error FROM steps WHERE execution_id = ? AND key = ? AND generation = 0",
                (execution_id, r.key),
            ).fetchone()
            if r.status in (StepStatus.STARTED, StepStatus.SUSPENDED) or (
                existing["status"] == r.status.value and existing["output"] == output and existing["error"] == error
            ):
                # A repeat (a retried request), a late start, or a late suspension: the signal the step
                # waited for was delivered while the worker replayed it (the finish record re-queues).
                return
            raise ConflictError(
                f"step {r.key!r} of execution {execution_id} is already {existing['status']};"
                " a finished step cannot change",
                execution_id=execution_id,
            )
        data: dict[str, Any] = {"key": r.key, "kind": r.kind, "name": r.name, "attempt": r.attempt}
        if r.kind == "guardrail" and r.status is StepStatus.COMPLETED and isinstance(r.output, dict):
            # A check completes whether the text passed or not: followers show which (not the text).
            data["passed"] = r.output.get("passed") is True
            data["message"] = str(r.output.get("message") or "")[:200]
        if r.error is not None:
            data["error"] = r.error.model_dump()
        self._event(conn, execution_id, f"step.{r.status.value}", data, now)

    def _write_divergence(self, conn: sqlite3.Connection, execution_id: str, r: DivergenceRecord, now: float) -> None:
        for key in r.superseded:
            conn.execute(
                "UPDATE steps SET generation = seq WHERE execution_id = ? AND key = ? AND generation = 0",
                (execution_id, key),
            )
        self._event(
            conn,
            execution_id,
            "divergence",
            {"key": r.key, "expected": r.expected, "superseded": list(r.superseded)},
            now,
        )

    def _finish(self, conn: sqlite3.Connection, execution_id: str, r: FinishRecord, now: float) -> ExecutionStatus:
        if r.status == "completed":
            conn.execute(
                "UPDATE executions SET status = 'completed', output = ?, updated_at = ?, worker_id = NULL,"
                " lease_expires_at = NULL WHERE id = ?",
                (conv.dumps(r.output), now, execution_id),
            )
            conn.execute("DELETE FROM work_queue WHERE execution_id = ?", (execution_id,))
            self._event(conn, execution_id, "execution.completed", {}, now)
            return ExecutionStatus.COMPLETED
        if r.status == "failed":
            error = r.error or ErrorInfo(type="builtins.Exception", message="failed")
            conn.execute(
                "UPDATE executions SET status = 'failed', error = ?, updated_at = ?, worker_id = NULL,"
                " lease_expires_at = NULL WHERE id = ?",
                (error.model_dump_json(), now, execution_id),
            )
            conn.execute("DELETE FROM work_queue WHERE execution_id = ?", (execution_id,))
            self._event(conn, execution_id, "execution.failed", {"error": error.model_dump()}, now)
            return ExecutionStatus.FAILED
        if r.status == "released":
            conn.execute(
                "UPDATE executions SET status = 'queued', updated_at = ?, worker_id = NULL,"
                " lease_expires_at = NULL WHERE id = ?",
                (now, execution_id),
            )
            conn.execute(
                "UPDATE work_queue SET worker_id = NULL, lease_expires_at = NULL, available_at = ?"
                " WHERE execution_id = ?",
                (now, execution_id),
            )
            # A worker that hands an execution back after an unexpected error says which.
            released = {} if r.error is None else {"error": r.error.model_dump()}
            self._event(conn, execution_id, "execution.released", released, now)
            self._event(conn, execution_id, "execution.queued", {}, now)
            return ExecutionStatus.QUEUED
        return self._suspend(conn, execution_id, r.wait, now)

    def _suspend(
        self, conn: sqlite3.Connection, execution_id: str, wait: WaitInfo | None, now: float
    ) -> ExecutionStatus:
        # A signal may have arrived before its step was recorded as suspended: resolve such steps now.
        waiting = conn.execute(
            "SELECT key, signal FROM steps WHERE execution_id = ? AND generation = 0 AND status = 'suspended'"
            " AND signal IS NOT NULL",
            (execution_id,),
        ).fetchall()
        resolved = False
        pending_signal: str | None = None
        for step in waiting:
            sig = conn.execute(
                "SELECT payload FROM signals WHERE execution_id = ? AND name = ?", (execution_id, step["signal"])
            ).fetchone()
            if sig is not None:
                self._resolve_step(conn, execution_id, step["key"], sig["payload"], now)
                resolved = True
            elif pending_signal is None:
                pending_signal = step["signal"]
        remaining, timers = conn.execute(
            "SELECT COUNT(*), MIN(wake_at) FROM steps WHERE execution_id = ? AND generation = 0"
            " AND status = 'suspended'",
            (execution_id,),
        ).fetchone()
        # Nothing left to wait for (a signal arrived while the worker was still running): run again.
        resolved = resolved or remaining == 0
        if resolved:
            available_at: float | None = now
        else:
            available_at = timers
            if wait is None:  # say what it waits for: the first pending signal, the earliest timer
                wait = WaitInfo(signal=pending_signal, wake_at=conv.dt(timers))
        conn.execute(
            "UPDATE executions SET status = ?, updated_at = ?, worker_id = NULL, lease_expires_at = NULL,"
            " wait = ? WHERE id = ?",
            (
                "queued" if resolved else "waiting", now,
                None if resolved or wait is None else wait.model_dump_json(), execution_id,
            ),
        )  # fmt: skip
        if available_at is None:
            conn.execute("DELETE FROM work_queue WHERE execution_id = ?", (execution_id,))
        else:
            conn.execute(
                "UPDATE work_queue SET worker_id = NULL, lease_expires_at = NULL, available_at = ?"
                " WHERE execution_id = ?",
                (available_at, execution_id),
            )
        if resolved:
            self._event(conn, execution_id, "execution.queued", {}, now)
            return ExecutionStatus.QUEUED
        self._event(conn, execution_id, "execution.waiting", {} if wait is None else wait.model_dump(mode="json"), now)
        return ExecutionStatus.WAITING

    def _resolve_step(
        self, conn: sqlite3.Connection, execution_id: str, key: str, output_json: str, now: float
    ) -> None:
        conn.execute(
            "UPDATE steps SET status = 'completed', output = ?, completed_at = ?"
            " WHERE execution_id = ? AND key = ? AND generation = 0",
            (output_json, now, execution_id, key),
        )
        self._event(conn, execution_id, "step.completed", {"key": key, "resolved_by": "server"}, now)

    # work queue ---------------------------------------------------------------------------------------
    def claim(self, worker_id: str, names: Sequence[str], lease_seconds: float, now: float) -> Claim | None:
        if not names:
            return None
        marks = ",".join("?" * len(names))
        with self._tx() as conn:
            row = conn.execute(
                f"SELECT execution_id, worker_id FROM work_queue WHERE name IN ({marks}) AND"
                " CASE WHEN worker_id IS NULL THEN available_at <= ? ELSE lease_expires_at <= ? END"
                " ORDER BY available_at LIMIT 1",
                (*names, now, now),
            ).fetchone()
            if row is None:
                return None
            execution_id = row["execution_id"]
            previous = self._row(conn, execution_id)
            if row["worker_id"] is not None:
                self._event(
                    conn, execution_id, "lease.expired",
                    {"worker_id": row["worker_id"], "epoch": previous["epoch"]}, now,
                )  # fmt: skip
            if previous["status"] == ExecutionStatus.WAITING.value:
                for step in conn.execute(
                    "SELECT key FROM steps WHERE execution_id = ? AND generation = 0 AND status = 'suspended'"
                    # A signal's wait with a deadline (an approval's timeout) is not resolved here: the
                    # worker delivers the default decision as the signal, so it is recorded once.
                    " AND wake_at IS NOT NULL AND wake_at <= ? AND signal IS NULL",
                    (execution_id, now),
                ).fetchall():
                    self._resolve_step(conn, execution_id, step["key"], "null", now)
            expires = now + lease_seconds
            epoch = previous["epoch"] + 1
            conn.execute(
                "UPDATE executions SET status = 'running', epoch = ?, worker_id = ?, lease_expires_at = ?,"
                " wait = NULL, updated_at = ? WHERE id = ?",
                (epoch, worker_id, expires, now, execution_id),
            )
            conn.execute(
                "UPDATE work_queue SET worker_id = ?, lease_expires_at = ? WHERE execution_id = ?",
                (worker_id, expires, execution_id),
            )
            self._event(conn, execution_id, "execution.running", {"worker_id": worker_id, "epoch": epoch}, now)
            execution = conv.execution(self._row(conn, execution_id))
            journal = self._journal(conn, execution_id, False)
        return Claim(
            execution=execution,
            epoch=epoch,
            lease_expires_at=conv.dt(expires),  # type: ignore[arg-type]
            journal=journal,
            server_time=conv.dt(now),  # type: ignore[arg-type]
        )

    def heartbeat(self, execution_id: str, worker_id: str, epoch: int, lease_seconds: float, now: float) -> Heartbeat:
        with self._tx() as conn:
            row = self._row(conn, execution_id)
            if row["status"] == ExecutionStatus.CANCELLED.value and row["epoch"] == epoch:
                return Heartbeat(lease_expires_at=conv.dt(now), cancel_requested=True)  # type: ignore[arg-type]
            if (
                row["status"] != ExecutionStatus.RUNNING.value
                or row["epoch"] != epoch
                or (row["worker_id"] != worker_id)
            ):
                raise LeaseLostError(
                    f"lease on execution {execution_id} at epoch {epoch} is no longer held by {worker_id}",
                    execution_id=execution_id,
                    epoch=epoch,
                )
            expires = now + lease_seconds
            conn.execute("UPDATE executions SET lease_expires_at = ? WHERE id = ?", (expires, execution_id))
            conn.execute("UPDATE work_queue SET lease_expires_at = ? WHERE execution_id = ?", (expires, execution_id))
        return Heartbeat(lease_expires_at=conv.dt(expires), cancel_requested=False)  # type: ignore[arg-type]

    def expire_leases(self, now: float, worker_ids: Sequence[str] | None = None) -> list[str]:
        with self._tx() as conn:
            if worker_ids is None:
                rows = conn.execute(
                    "SELECT execution_id, worker_id FROM work_queue WHERE lease_expires_at <= ?", (now,)
                ).fetchall()
            else:
                if not worker_ids:
                    return []
                marks = ",".join("?" * len(worker_ids))
                rows = conn.execute(
                    f"SELECT execution_id, worker_id FROM work_queue WHERE worker_id IN ({marks})", tuple(worker_ids)
                ).fetchall()
            for row in rows:
                conn.execute(
                    "UPDATE work_queue SET worker_id = NULL, lease_expires_at = NULL WHERE execution_id = ?",
                    (row["execution_id"],),
                )
                conn.execute(
                    "UPDATE executions SET status = 'queued', worker_id = NULL, lease_expires_at = NULL,"
                    " updated_at = ? WHERE id = ?",
                    (now, row["execution_id"]),
                )
                self._event(conn, row["execution_id"], "lease.expired", {"worker_id": row["worker_id"]}, now)
                self._event(conn, row["execution_id"], "execution.queued", {}, now)
        return [r["execution_id"] for r in rows]

    def next_wakeup(self, names: Sequence[str], now: float) -> float | None:
        if not names:
            return None
        marks = ",".join("?" * len(names))
        with self._held():
            row = self._conn.execute(
                f"SELECT MIN(CASE WHEN worker_id IS NULL THEN available_at ELSE lease_expires_at END)"
                f" FROM work_queue WHERE name IN ({marks})",
                tuple(names),
            ).fetchone()
        value: float | None = row[0]
        return value

    # signals -------------------------------------------------------------------------------------------
    def deliver_signal(self, execution_id: str, name: str, payload_json: str, now: float) -> Execution:
        with self._tx() as conn:
            row = self._row(conn, execution_id)
            status = ExecutionStatus(row["status"])
            existing = conn.execute(
                "SELECT payload FROM signals WHERE execution_id = ? AND name = ?", (execution_id, name)
            ).fetchone()
            if existing is not None:
                if existing["payload"] == payload_json:
                    return conv.execution(row)
                raise ConflictError(
                    f"signal {name!r} was already delivered to execution {execution_id} with another"
                    " payload; a signal is delivered once",
                    execution_id=execution_id,
                )
            if status.is_terminal:
                raise ConflictError(
                    f"execution {execution_id} is {status.value}; it no longer accepts signals",
                    execution_id=execution_id,
                )
            conn.execute(
                "INSERT INTO signals (execution_id, name, payload, created_at) VALUES (?, ?, ?, ?)",
                (execution_id, name, payload_json, now),
            )
            self._event(conn, execution_id, "signal.delivered", {"name": name}, now)
            waiting = conn.execute(
                "SELECT key FROM steps WHERE execution_id = ? AND generation = 0 AND status = 'suspended'"
                " AND signal = ?",
                (execution_id, name),
            ).fetchall()
            for step in waiting:
                self._resolve_step(conn, execution_id, step["key"], payload_json, now)
            if status is ExecutionStatus.WAITING and waiting:
                conn.execute(
                    "UPDATE executions SET status = 'queued', wait = NULL, updated_at = ? WHERE id = ?",
                    (now, execution_id),
                )
                conn.execute(
                    "INSERT INTO work_queue (execution_id, name, available_at) VALUES (?, ?, ?)"
                    " ON CONFLICT (execution_id) DO UPDATE SET available_at = excluded.available_at,"
                    " worker_id = NULL, lease_expires_at = NULL",
                    (execution_id, row["name"], now),
                )
                self._event(conn, execution_id, "execution.queued", {}, now)
            return conv.execution(self._row(conn, execution_id))

    def signal_state(self, execution_id: str, name: str) -> tuple[list[Step], str | None]:
        with self._held():
            self._row(self._conn, execution_id)
            steps = conv.steps(
                self._conn.execute(
                    f"SELECT {conv.STEP_COLUMNS} FROM steps WHERE execution_id = ? AND generation = 0 AND signal = ?"
                    " ORDER BY seq",
                    (execution_id, name),
                ).fetchall()
            )
            row = self._conn.execute(
                "SELECT payload FROM signals WHERE execution_id = ? AND name = ?", (execution_id, name)
            ).fetchone()
        return steps, None if row is None else str(row["payload"])

    # the approvals inbox -----------------------------------------------------------------------------
    def pending_waits(
        self,
        *,
        execution_id: str | None,
        name: str | None,
        framework: str | None,
        limit: int,
        after_seq: int | None,
    ) -> list[WaitRow]:
        # The first three terms are the partial index steps_waiting's: only suspended steps are read.
        sql = (
            f"{_WAITS} WHERE s.status = 'suspended' AND s.signal IS NOT NULL AND s.generation = 0"
            f" AND {_INBOX_KIND} AND g.name IS NULL AND e.status NOT IN ('completed', 'failed', 'cancelled')"
        )
        params: list[Any] = []
        for clause, value in (
            (" AND s.execution_id = ?", execution_id),
            (" AND e.name = ?", name),
            (f" AND {_FRAMEWORK} = ?", framework),
            (" AND s.seq > ?", after_seq),
        ):
            if value is not None:
                sql += clause
                params.append(value)
        with self._held():
            rows = self._conn.execute(sql + " ORDER BY s.seq LIMIT ?", (*params, limit)).fetchall()
        return _wait_rows(rows)

    def waits_of_executions(self, id_prefix: str) -> list[WaitRow]:
        # A range on the leading column of steps_key: the steps of the (one or few) executions with
        # this prefix, whatever the size of the history.
        upper = id_prefix[:-1] + chr(ord(id_prefix[-1]) + 1)
        with self._held():
            rows = self._conn.execute(
                f"{_WAITS} WHERE s.execution_id >= ? AND s.execution_id < ? AND s.signal IS NOT NULL"
                f" AND {_INBOX_KIND} ORDER BY s.generation != 0, s.seq",
                (id_prefix, upper),
            ).fetchall()
        return _wait_rows(rows)

    # events ---------------------------------------------------------------------------------------------
    def events_after(self, execution_id: str, after_id: int, limit: int) -> list[Event]:
        with self._held():
            rows = self._conn.execute(
                "SELECT id, execution_id, type, data, created_at FROM events WHERE execution_id = ? AND id > ?"
                " ORDER BY id LIMIT ?",
                (execution_id, after_id, limit),
            ).fetchall()
        return [
            Event(
                id=r["id"],
                execution_id=r["execution_id"],
                type=r["type"],
                data=json.loads(r["data"]),
                created_at=conv.dt(r["created_at"]),  # type: ignore[arg-type]
            )
            for r in rows
        ]

    # definitions -----------------------------------------------------------------------------------------
    def put_definition(self, name: str, kind: str, spec_json: str, now: float) -> Definition:
        with self._tx() as conn:
            conn.execute(
                "INSERT INTO definitions (name, kind, spec, created_at, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET kind = excluded.kind, spec = excluded.spec,"
                " updated_at = excluded.updated_at",
                (name, kind, spec_json, now, now),
            )
        found = self.get_definition(name)
        assert found is not None
        return found

    def get_definition(self, name: str) -> Definition | None:
        with self._held():
            row = self._conn.execute(
                "SELECT name, kind, spec, created_at, updated_at FROM definitions WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else conv.definition(row)

    def list_definitions(self) -> list[Definition]:
        with self._held():
            rows = self._conn.execute(
                "SELECT name, kind, spec, created_at, updated_at FROM definitions ORDER BY name"
            ).fetchall()
        return [conv.definition(r) for r in rows]

    def delete_definition(self, name: str) -> None:
        with self._tx() as conn:
            if conn.execute("DELETE FROM definitions WHERE name = ?", (name,)).rowcount == 0:
                raise NotFoundError(f"no definition named {name!r}")


_INBOX_KIND = (
    f"(s.kind IN ({', '.join(repr(k) for k in INBOX_KINDS)}) OR (s.kind = 'signal' AND s.signal LIKE 'interrupt:%'))"
)
# The framework a wait recorded in its details. Waits recorded before they said so are told apart by
# their signal and kind (native approvals always said so; of the adapters' only ADK's record a hint).
_FRAMEWORK = (
    "COALESCE(json_extract(s.input, '$.framework'), CASE WHEN s.signal LIKE 'interrupt:%' THEN 'langgraph'"
    " WHEN s.kind = 'human' THEN 'crewai' WHEN json_extract(s.input, '$.hint') IS NOT NULL THEN 'google_adk'"
    " WHEN s.kind = 'approval' THEN 'openai_agents' ELSE 'native' END)"
)
_WAITS = (
    "SELECT " + ", ".join(f"s.{c.strip()}" for c in conv.STEP_COLUMNS.split(","))
    + f", e.name AS agent, e.status AS execution_status, g.payload AS decision, {_FRAMEWORK} AS framework"
    " FROM steps s JOIN executions e ON e.id = s.execution_id"
    " LEFT JOIN signals g ON g.execution_id = s.execution_id AND g.name = s.signal"
)  # fmt: skip


def _wait_rows(rows: list[sqlite3.Row]) -> list[WaitRow]:
    found = conv.steps(rows)
    return [
        WaitRow(
            step=step,
            agent=row["agent"],
            execution_status=ExecutionStatus(row["execution_status"]),
            framework=str(row["framework"]),
            decision_json=row["decision"],
        )
        for step, row in zip(found, rows, strict=True)
    ]


def _coalesce(records: Sequence[Record]) -> list[Record]:
    """Within each run of step records, keep only the last record of each key (a step that started
    and completed in one batch is written once, as completed)."""
    out: list[Record] = []
    run: dict[str, StepRecord] = {}
    for record in records:
        if isinstance(record, StepRecord):
            run[record.key] = record  # a later record replaces an earlier one in its place
            continue
        out.extend(run.values())
        run = {}
        out.append(record)
    out.extend(run.values())
    return out

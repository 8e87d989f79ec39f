"""Rows of the SQLite store to models and back: columns, JSON, times, cursors."""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import TypeAdapter

from ...errors import InvalidInputError, NotJSONError
from .._budget import Budget
from .._models import Definition, ErrorInfo, Execution, ExecutionStatus, ForkOrigin, Step, WaitInfo

__all__ = [
    "EXEC_COLUMNS",
    "STEP_COLUMNS",
    "STEP_INSERT",
    "Synchronous",
    "decode_cursor",
    "definition",
    "dt",
    "dumps",
    "encode_cursor",
    "execution",
    "loads",
    "steps",
    "ts",
]

Synchronous = Literal["full", "normal"]

EXEC_COLUMNS = (
    "id, name, status, input, output, error, idempotency_key, created_at, updated_at, epoch,"
    " worker_id, lease_expires_at, wait, cancel_requested, budget, framework, forked_from"
)
STEP_COLUMNS = (
    "execution_id, key, seq, parent, kind, name, status, fingerprint, input, output, error, attempt,"
    " idempotency_key, concurrent, usage, signal, wake_at, generation, epoch, started_at, completed_at"
)
STEP_INSERT = (
    "execution_id, key, parent, kind, name, status, fingerprint, input, output, error, attempt,"
    " idempotency_key, concurrent, usage, signal, wake_at, epoch, started_at, completed_at"
)


def dt(ts: float | None) -> datetime | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC)


def ts(dt: datetime | None) -> float | None:
    return None if dt is None else dt.timestamp()


def dumps(value: Any) -> str:
    try:
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise NotJSONError(f"a payload is not JSON: {exc}; nothing was written") from exc


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _error(text: str | None) -> ErrorInfo | None:
    return None if text is None else ErrorInfo.model_validate_json(text)


def execution(row: sqlite3.Row) -> Execution:
    wait = row["wait"]
    return Execution(
        id=row["id"],
        name=row["name"],
        status=ExecutionStatus(row["status"]),
        input=loads(row["input"]),
        output=loads(row["output"]),
        error=_error(row["error"]),
        idempotency_key=row["idempotency_key"],
        created_at=dt(row["created_at"]),  # type: ignore[arg-type]
        updated_at=dt(row["updated_at"]),  # type: ignore[arg-type]
        epoch=row["epoch"],
        worker_id=row["worker_id"],
        lease_expires_at=dt(row["lease_expires_at"]),
        wait=None if wait is None else WaitInfo.model_validate_json(wait),
        cancel_requested=bool(row["cancel_requested"]),
        budget=None if row["budget"] is None else Budget.model_validate_json(row["budget"]),
        framework=row["framework"],
        forked_from=None if row["forked_from"] is None else ForkOrigin.model_validate_json(row["forked_from"]),
    )


_STEP_LIST: TypeAdapter[list[Step]] = TypeAdapter(list[Step])


def _step_fields(row: sqlite3.Row) -> dict[str, Any]:
    signal, wake_at = row["signal"], row["wake_at"]
    error = row["error"]
    return {
        "execution_id": row["execution_id"],
        "key": row["key"],
        "seq": row["seq"],
        "parent": row["parent"],
        "kind": row["kind"],
        "name": row["name"],
        "status": row["status"],
        "fingerprint": row["fingerprint"],
        "input": loads(row["input"]),
        "output": loads(row["output"]),
        "error": None if error is None else json.loads(error),
        "attempt": row["attempt"],
        "idempotency_key": row["idempotency_key"],
        "concurrent": bool(row["concurrent"]),
        "usage": loads(row["usage"]),
        "wait": None if signal is None and wake_at is None else {"signal": signal, "wake_at": wake_at},
        "superseded": row["generation"] != 0,
        "epoch": row["epoch"],
        # Seconds since the epoch: pydantic turns them into UTC datetimes.
        "started_at": row["started_at"],
        "completed_at": row["completed_at"],
    }


def steps(rows: list[sqlite3.Row]) -> list[Step]:
    """Rows to steps in one validation call (a journal can hold thousands)."""
    return _STEP_LIST.validate_python([_step_fields(r) for r in rows])


def definition(row: sqlite3.Row) -> Definition:
    return Definition(
        name=row["name"],
        kind=row["kind"],
        spec=json.loads(row["spec"]),
        created_at=dt(row["created_at"]),  # type: ignore[arg-type]
        updated_at=dt(row["updated_at"]),  # type: ignore[arg-type]
    )


def encode_cursor(created_at: float, execution_id: str) -> str:
    return base64.urlsafe_b64encode(dumps([created_at, execution_id]).encode()).decode()


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        created, last_id = json.loads(base64.urlsafe_b64decode(cursor.encode()))
        return float(created), str(last_id)
    except (ValueError, TypeError, RecursionError):  # RecursionError: deeply nested JSON
        shown = cursor if len(cursor) <= 60 else cursor[:60] + "..."
        raise InvalidInputError(
            f"cursor {shown!r} is not one this server issued; pass next_cursor from the previous page,"
            " or no cursor for the first page"
        ) from None

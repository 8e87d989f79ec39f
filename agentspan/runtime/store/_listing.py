"""Listing executions in SQL: filters, cursor pages, and the summaries a UI shows with each page.

A page is one indexed read newest first. Its summaries take two more reads over the page's ids only
(``WHERE execution_id IN (...)``, served by the journal's and the events' indexes): the active steps
grouped by kind, status and model, and the first claim of each execution. The total of a filtered
listing is one ``COUNT(*)``. Nothing here reads a row per execution in a loop.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .._budget import Spend
from .._models import Execution, ExecutionPage, ExecutionStatus, ExecutionSummary
from . import _rows as conv

__all__ = ["ListingFilters", "list_executions", "search_clause"]

# The usage of a model step counted as budgets count it (see agentspan.runtime._budget._tokens).
_PROMPT = "COALESCE(json_extract(usage, '$.prompt_tokens'), 0)"
_COMPLETION = "COALESCE(json_extract(usage, '$.completion_tokens'), 0)"
_TOKENS = f"COALESCE(NULLIF(json_extract(usage, '$.total_tokens'), 0), {_PROMPT} + {_COMPLETION})"
_COUNTED = "(kind = 'llm' AND status = 'completed')"
_GROUPS = (
    "SELECT execution_id, kind, status, CASE WHEN kind = 'llm' THEN name END AS model, COUNT(*) AS n,"
    f" SUM(CASE WHEN {_COUNTED} THEN {_PROMPT} ELSE 0 END) AS prompt,"
    f" SUM(CASE WHEN {_COUNTED} THEN {_COMPLETION} ELSE 0 END) AS completion,"
    f" SUM(CASE WHEN {_COUNTED} THEN {_TOKENS} ELSE 0 END) AS tokens, MIN(seq) AS first_seq"
    " FROM steps WHERE execution_id IN ({marks}) AND generation = 0 GROUP BY execution_id, kind, status, model"
)
_STARTS = (
    "SELECT execution_id, MIN(created_at) AS started FROM events WHERE execution_id IN ({marks})"
    " AND type = 'execution.running' GROUP BY execution_id"
)


@dataclass(frozen=True)
class ListingFilters:
    """What a listing is narrowed to; ``None`` leaves a filter out."""

    status: ExecutionStatus | None = None
    name: str | None = None
    framework: str | None = None
    q: str | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


def search_clause(q: str) -> tuple[str, list[Any]]:
    """SQL matching an execution whose id starts with ``q`` or whose name contains it, ignoring case."""
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    # LIKE ignores the case of ASCII letters; ids are lowercase hex, so an id prefix in capitals matches too.
    return "(id LIKE ? ESCAPE '\\' OR name LIKE ? ESCAPE '\\')", [escaped + "%", "%" + escaped + "%"]


def _where(filters: ListingFilters) -> tuple[list[str], list[Any]]:
    where: list[str] = []
    params: list[Any] = []
    for clause, value in (
        ("status = ?", None if filters.status is None else filters.status.value),
        ("name = ?", filters.name),
        ("framework = ?", filters.framework),
        ("created_at >= ?", None if filters.created_after is None else filters.created_after.timestamp()),
        ("created_at < ?", None if filters.created_before is None else filters.created_before.timestamp()),
    ):
        if value is not None:
            where.append(clause)
            params.append(value)
    if filters.q:
        clause, values = search_clause(filters.q)
        where.append(clause)
        params += values
    return where, params


def list_executions(
    conn: sqlite3.Connection, filters: ListingFilters, *, limit: int, cursor: str | None, summary: bool
) -> ExecutionPage:
    """One page newest first (``cursor`` from the previous page); with ``summary``, each item's
    :class:`ExecutionSummary` and the page's ``total``. Runs inside the caller's read."""
    where, params = _where(filters)
    total = None
    if summary:
        count_sql = "SELECT COUNT(*) FROM executions" + (" WHERE " + " AND ".join(where) if where else "")
        total = int(conn.execute(count_sql, params).fetchone()[0])
    if cursor is not None:
        created, last_id = conv.decode_cursor(cursor)
        where.append("(created_at < ? OR (created_at = ? AND id < ?))")
        params = [*params, created, created, last_id]
    sql = f"SELECT {conv.EXEC_COLUMNS} FROM executions"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY created_at DESC, id DESC LIMIT ?"
    rows = conn.execute(sql, [*params, limit + 1]).fetchall()
    items = [conv.execution(r) for r in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = rows[limit - 1]
        next_cursor = conv.encode_cursor(last["created_at"], last["id"])
    if summary and items:
        items = _summarized(conn, items)
    return ExecutionPage(items=items, next_cursor=next_cursor, total=total)


def _summarized(conn: sqlite3.Connection, items: Sequence[Execution]) -> list[Execution]:
    ids = [e.id for e in items]
    marks = ",".join("?" * len(ids))
    groups: dict[str, list[sqlite3.Row]] = {}
    for row in conn.execute(_GROUPS.format(marks=marks), ids).fetchall():
        groups.setdefault(row["execution_id"], []).append(row)
    starts = {row["execution_id"]: row["started"] for row in conn.execute(_STARTS.format(marks=marks), ids)}
    return [e.model_copy(update={"summary": _summary(e, groups.get(e.id, []), starts.get(e.id))}) for e in items]


def _summary(execution: Execution, groups: list[sqlite3.Row], started: float | None) -> ExecutionSummary:
    """The summary of one execution from its step groups (a handful of rows: kinds times models)."""
    spend = Spend()
    prices = {} if execution.budget is None else execution.budget.price_table()
    steps = llm_calls = tool_calls = 0
    waiting: tuple[int, str] | None = None
    for group in groups:
        n, kind = int(group["n"]), str(group["kind"])
        steps += n
        if kind == "llm":
            llm_calls += n
            if group["status"] == "completed":
                spend.add_calls(
                    str(group["model"]), n, int(group["prompt"]), int(group["completion"]), int(group["tokens"]), prices
                )
        elif kind == "tool":
            tool_calls += n
        if group["status"] == "suspended" and (waiting is None or group["first_seq"] < waiting[0]):
            waiting = (int(group["first_seq"]), kind)
    waiting_for = None
    if execution.status is ExecutionStatus.WAITING:
        if waiting is not None:
            waiting_for = waiting[1]
        elif execution.wait is not None:
            waiting_for = "signal" if execution.wait.signal is not None else "timer"
    return ExecutionSummary(
        steps=steps,
        llm_calls=llm_calls,
        tool_calls=tool_calls,
        tokens=spend.tokens,
        cost_usd=spend.known_cost_usd if spend.calls else 0.0,
        cost_note=spend.cost_note,
        started_at=conv.dt(started),
        ended_at=execution.updated_at if execution.status.is_terminal else None,
        waiting_for=waiting_for,
    )

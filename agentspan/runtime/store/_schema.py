"""Versioned schema migrations for the SQLite store.

Each migration runs once, in its own transaction, and bumps ``schema_version``. Never edit a
migration that has shipped: add the next one.
"""

from __future__ import annotations

import sqlite3

__all__ = ["MIGRATIONS", "migrate"]

MIGRATIONS: list[str] = [
    # 1: the initial schema.
    """
    CREATE TABLE executions (
        id               TEXT PRIMARY KEY,
        name             TEXT NOT NULL,
        status           TEXT NOT NULL,
        input            TEXT NOT NULL,
        output           TEXT,
        error            TEXT,
        idempotency_key  TEXT UNIQUE,
        created_at       REAL NOT NULL,
        updated_at       REAL NOT NULL,
        epoch            INTEGER NOT NULL DEFAULT 0,
        worker_id        TEXT,
        lease_expires_at REAL,
        wait             TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX executions_listing ON executions (created_at DESC, id DESC);
    CREATE INDEX executions_status ON executions (status, created_at DESC);
    CREATE INDEX executions_name ON executions (name, created_at DESC);

    -- The work queue holds only executions a worker may have to run: queued, running (leased) and
    -- waiting on a timer. It stays small however long the history grows.
    CREATE TABLE work_queue (
        execution_id     TEXT PRIMARY KEY REFERENCES executions (id),
        name             TEXT NOT NULL,
        available_at     REAL NOT NULL,
        worker_id        TEXT,
        lease_expires_at REAL
    );
    CREATE INDEX work_queue_ready ON work_queue (name, available_at);
    CREATE INDEX work_queue_leases ON work_queue (lease_expires_at);

    -- seq is the rowid: increasing in the order steps were first recorded.
    CREATE TABLE steps (
        seq              INTEGER PRIMARY KEY,
        execution_id     TEXT NOT NULL,
        key              TEXT NOT NULL,
        parent           TEXT,
        kind             TEXT NOT NULL,
        name             TEXT NOT NULL,
        status           TEXT NOT NULL,
        fingerprint      TEXT NOT NULL,
        input            TEXT,
        output           TEXT,
        error            TEXT,
        attempt          INTEGER NOT NULL,
        idempotency_key  TEXT NOT NULL,
        concurrent       INTEGER NOT NULL DEFAULT 0,
        usage            TEXT,
        signal           TEXT,
        wake_at          REAL,
        generation       INTEGER NOT NULL DEFAULT 0,
        epoch            INTEGER NOT NULL,
        started_at       REAL NOT NULL,
        completed_at     REAL
    );
    -- Active steps have generation 0, one per key. A divergence moves the steps it supersedes to
    -- generation = seq, keeping them as history. The same index serves journal reads.
    CREATE UNIQUE INDEX steps_key ON steps (execution_id, key, generation);

    -- No AUTOINCREMENT: it costs a write to sqlite_sequence on every insert. Ids still only grow
    -- within an execution (a new row gets the largest id + 1 while the execution exists).
    CREATE TABLE events (
        id           INTEGER PRIMARY KEY,
        execution_id TEXT NOT NULL,
        type         TEXT NOT NULL,
        data         TEXT NOT NULL,
        created_at   REAL NOT NULL
    );
    CREATE INDEX events_by_execution ON events (execution_id, id);

    -- External events delivered to an execution (approvals, replies, webhooks), once per name.
    CREATE TABLE signals (
        execution_id TEXT NOT NULL,
        name         TEXT NOT NULL,
        payload      TEXT NOT NULL,
        created_at   REAL NOT NULL,
        PRIMARY KEY (execution_id, name)
    );

    CREATE TABLE definitions (
        name       TEXT PRIMARY KEY,
        kind       TEXT NOT NULL,
        spec       TEXT NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # 2: the approvals inbox lists the waits for a person across executions. A partial index holds only
    # the suspended steps with a signal, so the listing reads those, never the whole history of steps.
    """
    CREATE INDEX steps_waiting ON steps (seq) WHERE status = 'suspended' AND signal IS NOT NULL AND generation = 0;
    """,
    # 3: the token and cost budget an execution was started with (JSON; NULL: no budget).
    """
    ALTER TABLE executions ADD COLUMN budget TEXT
    """,
    # 4: what runs an execution (native, langgraph, openai_agents, crewai, google_adk; NULL: a plain
    # durable function), so listings can filter by it; the index serves that filter newest first.
    """
    ALTER TABLE executions ADD COLUMN framework TEXT;
    CREATE INDEX executions_framework ON executions (framework, created_at DESC, id DESC)
    """,
    # 5: where a forked execution came from (JSON: source execution, step key and seq; NULL: not a fork).
    """
    ALTER TABLE executions ADD COLUMN forked_from TEXT
    """,
]


def migrate(conn: sqlite3.Connection) -> int:
    """Bring the database up to the newest schema; returns the version it is at."""
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    row = conn.execute("SELECT version FROM schema_version").fetchone()
    if row is None:
        conn.execute("INSERT INTO schema_version (version) VALUES (0)")
        version = 0
    else:
        version = int(row[0])
    if version > len(MIGRATIONS):
        from ...errors import ConfigurationError

        raise ConfigurationError(
            f"the database has schema version {version}, newer than this Agentspan knows "
            f"({len(MIGRATIONS)}); upgrade Agentspan or point it at another database"
        )
    for number in range(version + 1, len(MIGRATIONS) + 1):
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have migrated meanwhile.
            current = int(conn.execute("SELECT version FROM schema_version").fetchone()[0])
            if current < number:
                for statement in MIGRATIONS[number - 1].split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute("UPDATE schema_version SET version = ?", (number,))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
    return len(MIGRATIONS)

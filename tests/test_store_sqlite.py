"""The store contract against SQLite, plus what is specific to the SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from store_contract import StoreContract

from agentspan.errors import ConfigurationError
from agentspan.runtime import SQLiteStore
from agentspan.runtime.store._schema import MIGRATIONS


class TestSQLiteStore(StoreContract):
    @pytest.fixture
    def store(self, db_path: Path) -> Iterator[SQLiteStore]:
        store = SQLiteStore(db_path)
        yield store
        store.close()


def test_data_survives_reopening_the_file(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    store.create_execution("e1", "flow", "{}", None, 1.0)
    store.close()
    again = SQLiteStore(db_path)
    assert again.get_execution("e1") is not None
    again.close()


def test_the_database_is_in_wal_mode_with_durable_commits(db_path: Path) -> None:
    store = SQLiteStore(db_path)
    conn = sqlite3.connect(db_path)
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    conn.close()
    store.close()


def test_a_schema_newer_than_the_code_is_refused(db_path: Path) -> None:
    SQLiteStore(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("UPDATE schema_version SET version = ?", (len(MIGRATIONS) + 1,))
    conn.commit()
    conn.close()
    with pytest.raises(ConfigurationError, match="newer than this Agentspan"):
        SQLiteStore(db_path)


def test_migrations_run_once(db_path: Path) -> None:
    SQLiteStore(db_path).close()
    SQLiteStore(db_path).close()
    conn = sqlite3.connect(db_path)
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(len(MIGRATIONS),)]
    conn.close()


def test_at_once_writes_without_waiting_or_says_it_would_block(db_path: Path) -> None:
    """The server's per-step write on its event loop: made at once, or WouldBlock with nothing written."""
    import threading

    from agentspan.runtime import Service, StepRecord, StepStatus
    from agentspan.runtime.store._base import WouldBlock

    service = Service(SQLiteStore(db_path, busy_timeout=30))
    try:
        execution = service.create_execution("at-once", {})
        claim = service.claim("w", ["at-once"])
        assert claim is not None

        def record(n: int) -> list[StepRecord]:
            return [StepRecord(key=f"s{n}", kind="step", name="s", status=StepStatus.COMPLETED, output=n)]

        assert service.write_records_at_once(execution.id, "w", claim.epoch, record(1)).status.value == "running"

        other = sqlite3.connect(db_path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # another process holds the file's write lock
        try:
            with pytest.raises(WouldBlock):
                service.write_records_at_once(execution.id, "w", claim.epoch, record(2))
        finally:
            other.execute("ROLLBACK")
            other.close()

        store = service.store
        assert isinstance(store, SQLiteStore)
        held, release = threading.Event(), threading.Event()

        def hold() -> None:  # another request of this process is using the connection
            with store._held():
                held.set()
                release.wait(30)

        thread = threading.Thread(target=hold)
        thread.start()
        assert held.wait(30)
        try:
            with pytest.raises(WouldBlock):
                service.write_records_at_once(execution.id, "w", claim.epoch, record(3))
        finally:
            release.set()
            thread.join()

        assert [s.key for s in service.get_journal(execution.id)] == ["s1"]  # the refused ones wrote nothing
        service.write_records(execution.id, "w", claim.epoch, record(2))  # the normal path still waits/works
        assert store._conn.execute("PRAGMA busy_timeout").fetchone()[0] == 30000  # restored after at_once
    finally:
        service.close()

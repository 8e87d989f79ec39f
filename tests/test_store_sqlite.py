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

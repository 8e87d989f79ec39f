"""Shared fixtures. Tests are offline: framework telemetry is switched off for every test process."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
os.environ.pop("LANGSMITH_TRACING", None)
os.environ.pop("LANGCHAIN_TRACING_V2", None)
# Never let a test talk to a server configured in the developer's shell.
os.environ.pop("AGENTSPAN_SERVER_URL", None)

from agentspan.runtime import Service, SQLiteStore  # noqa: E402


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh SQLite file."""
    return tmp_path / "agentspan.db"


@pytest.fixture
def service(db_path: Path) -> Iterator[Service]:
    """The runtime service over a real SQLite file."""
    svc = Service(SQLiteStore(db_path))
    yield svc
    svc.close()

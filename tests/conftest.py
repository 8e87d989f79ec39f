"""Shared fixtures. Tests are offline: framework telemetry is switched off for every test process."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")
os.environ.pop("LANGSMITH_TRACING", None)
os.environ.pop("LANGCHAIN_TRACING_V2", None)
# Never let a test talk to a server configured in the developer's shell.
os.environ.pop("AGENTSPAN_SERVER_URL", None)

from agentspan.client import HttpClient
from agentspan.runtime import Claim, Service, SQLiteStore
from agentspan.testing import ServerHandle, serve_in_thread

# CrewAI pins openai<3 and Google ADK caps OpenTelemetry, so neither is in the main environment: their
# tests run in .ci/frameworks' one.
CREWAI_INSTALLED = importlib.util.find_spec("crewai") is not None
GOOGLE_ADK_INSTALLED = (
    importlib.util.find_spec("google") is not None and importlib.util.find_spec("google.adk") is not None
)
# The web UI's scenario fixtures (ui_service, ui_server, ui_runtime) and browser fixtures (browser, page).
pytest_plugins = ["browser", "ui_scenarios"]

collect_ignore_glob = ([] if CREWAI_INSTALLED else ["test_crewai*.py"]) + (
    [] if GOOGLE_ADK_INSTALLED else ["test_google_adk*.py"]
)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[str]:
    """A real ``agentspan server`` process on a free loopback port; yields its API URL."""
    from processes import free_port, start_server, stop

    port = free_port()
    proc = start_server(tmp_path / "server.db", port)
    yield f"http://127.0.0.1:{port}/api"
    stop(proc)


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


# --- HTTP API -------------------------------------------------------------------------------------------
@pytest.fixture
def http_server(service: Service) -> Iterator[ServerHandle]:
    """A real uvicorn serving ``service`` on a free loopback port, without authentication."""
    with serve_in_thread(service) as server:
        yield server


@pytest.fixture
def http_client(http_server: ServerHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[HttpClient]:
    """An :class:`HttpClient` of ``http_server`` (no token, whatever the shell exports)."""
    monkeypatch.delenv("AGENTSPAN_AUTH_TOKEN", raising=False)
    with HttpClient(http_server.url) as client:
        yield client


@pytest.fixture
def http_claim(http_client: HttpClient) -> Claim:
    """An execution of ``http-fn`` claimed by worker ``w1`` over HTTP."""
    execution = http_client.create_execution("http-fn", {"n": 1})
    claim = http_client.claim("w1", ["http-fn"])
    assert claim is not None and claim.execution.id == execution.id
    return claim


# --- model providers ------------------------------------------------------------------------------------
@pytest.fixture
def model_env_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    """No provider endpoint or key from the environment leaks into a model test."""
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The providers' backoff waits, recorded instead of slept."""
    from agentspan.agents.models import _http

    waits: list[float] = []
    monkeypatch.setattr(_http, "_sleep", waits.append)
    return waits


SLOW_TEST_TIMEOUT = 240.0
"""Per-test limit for tests marked ``slow`` (several processes, leases): they take 20-35 s alone but
far longer on a loaded 2-core machine, and the default 60 s limit made them fail for load, not bugs."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("slow") is not None and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(SLOW_TEST_TIMEOUT))

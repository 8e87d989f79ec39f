"""Closing an embedded runtime: its HTTP API and lease sweep stop before the store is closed."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from processes import free_port

from agentspan.agents import Agent, AgentRuntime
from agentspan.runtime import Service
from agentspan.testing import ScriptedModel


def test_closing_an_embedded_runtime_stops_its_server_before_closing_the_store(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The lease sweep runs in the server's thread: once the store is closed it would fail with
    ``Cannot operate on a closed database`` (logged as an error after a successful run)."""
    port = free_port()
    runtime = AgentRuntime(db=db_path, http_port=port)
    assert runtime.http_url is not None
    result = runtime.run(Agent(name="closer", model=ScriptedModel(["done"])), "hi")
    assert result.output == "done"

    service = runtime.client
    assert isinstance(service, Service)
    store = service.store
    serving_at_close: list[str] = []
    close_store = store.close

    def close() -> None:
        serving_at_close.extend(t.name for t in threading.enumerate() if t.name == f"agentspan-server-{port}")
        close_store()

    monkeypatch.setattr(store, "close", close)
    with caplog.at_level(logging.WARNING):
        runtime.close()
    assert serving_at_close == [], "the store was closed while its server (and lease sweep) still ran"
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

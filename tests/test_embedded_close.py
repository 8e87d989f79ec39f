"""Shutting down in order: an embedded runtime stops its HTTP API and lease sweep before closing the
store, and a stopping server ends its long polls and event streams instead of cutting them off."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import httpx
import pytest
from processes import free_port, wait_until

from agentspan.agents import Agent, AgentRuntime
from agentspan.runtime import Service
from agentspan.testing import ScriptedModel, serve_in_thread


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


def test_stopping_a_server_ends_open_event_streams_and_long_polls_cleanly(
    service: Service, caplog: pytest.LogCaptureFixture
) -> None:
    """Both outlast the graceful period: they must end when shutdown begins, not be cancelled."""
    execution = service.create_execution("never-claimed", {})
    server = serve_in_thread(service)
    polls: list[httpx.Response] = []
    streams: list[list[str]] = []

    def long_poll() -> None:
        body = {"worker_id": "w", "names": ["nobody-serves-this"], "wait_seconds": 60}
        polls.append(httpx.post(f"{server.url}/claims", json=body, timeout=90))

    def stream() -> None:
        url = f"{server.url}/executions/{execution.id}/events/stream"
        with httpx.stream("GET", url, timeout=90) as response:
            streams.append(list(response.iter_lines()))

    threads = [threading.Thread(target=long_poll), threading.Thread(target=stream)]
    with caplog.at_level(logging.WARNING):
        for thread in threads:
            thread.start()
        wait_until(lambda: service.notifier.waiting() >= 2, "the long poll and the stream to wait")
        server.stop()
        for thread in threads:
            thread.join(timeout=60)
    assert [p.status_code for p in polls] == [503]
    assert polls[0].headers["retry-after"] == "1"
    assert len(streams) == 1 and any(line.startswith("event: execution.queued") for line in streams[0])
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []

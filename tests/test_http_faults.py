"""Faults found by fault injection against a real server: batches past their finish record, crafted
cursors, and creates racing with one idempotency key."""

from __future__ import annotations

import base64
import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentspan.client import HttpClient
from agentspan.runtime import Claim, Service, SQLiteStore
from agentspan.testing import ServerHandle, serve_in_thread

STEP = {"type": "step", "key": "s1", "kind": "tool", "name": "search", "status": "completed", "output": 1}
COMPLETED = {"type": "finish", "status": "completed", "output": "done"}
FAILED = {"type": "finish", "status": "failed", "error": {"type": "builtins.ValueError", "message": "boom"}}
RELEASED = {"type": "finish", "status": "released"}
WAITING = {"type": "finish", "status": "waiting"}
TERMINAL = {"execution.completed", "execution.failed", "execution.cancelled"}


@pytest.fixture
def raw(http_server: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=http_server.url, timeout=30, headers={"Content-Type": "application/json"}) as client:
        yield client


def _snapshot(service: Service, execution_id: str) -> tuple[Any, ...]:
    execution = service.get_execution(execution_id)
    return (
        execution.status,
        execution.output,
        execution.error,
        service.get_journal(execution_id, include_superseded=True),
        service.get_events(execution_id),
    )


def _post_records(raw: httpx.Client, claim: Claim, records: list[dict[str, Any]]) -> httpx.Response:
    body = {"worker_id": "w1", "epoch": claim.epoch, "records": records}
    return raw.post(f"/executions/{claim.execution.id}/records", json=body)


# --- a batch past its finish record ----------------------------------------------------------------------
@pytest.mark.parametrize(
    "records",
    [
        [COMPLETED, RELEASED],
        [FAILED, COMPLETED],
        [COMPLETED, STEP],
        [STEP, COMPLETED, {**STEP, "key": "s2"}],
        [WAITING, RELEASED],
        [RELEASED, COMPLETED],
    ],
    ids=["completed-released", "failed-completed", "completed-step", "step-completed-step", "waiting-released",
         "released-completed"],
)  # fmt: skip
def test_a_batch_with_records_after_its_finish_is_409_and_writes_nothing(
    raw: httpx.Client, http_claim: Claim, service: Service, records: list[dict[str, Any]]
) -> None:
    execution_id = http_claim.execution.id
    before = _snapshot(service, execution_id)
    response = _post_records(raw, http_claim, records)
    assert response.status_code == 409, response.text
    error = response.json()["error"]
    assert error["type"] == "ConflictError"
    assert "must be the last" in error["message"] and "nothing was written" in error["message"]
    assert _snapshot(service, execution_id) == before

    # The lease is intact: the worker can still end the execution properly, once.
    assert _post_records(raw, http_claim, [STEP, COMPLETED]).json()["status"] == "completed"
    events = [event.type for event in service.get_events(execution_id)]
    assert [t for t in events if t in TERMINAL] == ["execution.completed"]
    assert service.get_execution(execution_id).error is None


def test_steps_sent_after_completion_are_refused(raw: httpx.Client, http_claim: Claim, service: Service) -> None:
    assert _post_records(raw, http_claim, [COMPLETED]).status_code == 200
    before = _snapshot(service, http_claim.execution.id)
    response = _post_records(raw, http_claim, [{**STEP, "key": "late"}])
    assert response.status_code == 409, response.text
    assert _snapshot(service, http_claim.execution.id) == before


def test_the_service_refuses_records_after_a_finish_in_process(service: Service) -> None:
    """The local transport (the embedded runtime) keeps the same rule as the HTTP API."""
    from agentspan.errors import ConflictError
    from agentspan.runtime import FinishRecord

    service.create_execution("fn", None)
    claim = service.claim("w1", ["fn"])
    assert claim is not None
    with pytest.raises(ConflictError, match="must be the last"):
        service.write_records(
            claim.execution.id, "w1", claim.epoch, [FinishRecord(status="completed"), FinishRecord(status="released")]
        )
    assert service.get_execution(claim.execution.id).status.value == "running"


# --- crafted cursors --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "cursor",
    [
        base64.urlsafe_b64encode(b"[" * 3000).decode(),
        base64.urlsafe_b64encode(b"[" * 3000 + b"]" * 3000).decode(),
        "[" * 3000,
        base64.urlsafe_b64encode(b'{"a": 1}').decode(),
        "%%%",
    ],
    ids=["nested-open", "nested-closed", "raw-brackets", "object", "not-base64"],
)
def test_a_crafted_cursor_is_400_and_the_connection_stays_open(http_server: ServerHandle, cursor: str) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", http_server.port, timeout=30)
    try:
        conn.request("GET", "/api/executions?" + httpx.QueryParams({"cursor": cursor}).__str__())
        response = conn.getresponse()
        body = json.loads(response.read())
        assert response.status == 400, body
        assert body["error"]["type"] == "InvalidInputError"
        assert "next_cursor" in body["error"]["message"]
        assert len(body["error"]["message"]) < 300  # the cursor is not echoed in full
        assert not response.will_close
        sock = conn.sock
        conn.request("GET", "/api/executions")
        again = conn.getresponse()
        again.read()
        assert again.status == 200
        assert conn.sock is sock  # the same kept-alive connection answered
    finally:
        conn.close()


# --- creates racing with one idempotency key --------------------------------------------------------------
@pytest.fixture
def normal_server(tmp_path: Path) -> Iterator[ServerHandle]:
    """A server over SQLite with ``synchronous=normal``, where commits are fast enough to race."""
    service = Service(SQLiteStore(tmp_path / "race.db", synchronous="normal"))
    with serve_in_thread(service) as server:
        yield server
    service.close()


def _race_creates(url: str, key: str, racers: int) -> list[tuple[int, str]]:
    """``racers`` threads, each on its own connection, POST one create with ``key`` at the same moment."""
    barrier = threading.Barrier(racers)
    answers: list[tuple[int, str]] = []
    lock = threading.Lock()

    def create() -> None:
        with httpx.Client(base_url=url, timeout=30) as client:
            client.get("/health")  # connect before the start line
            barrier.wait()
            response = client.post("/executions", json={"name": "fn", "input": {"n": 1}, "idempotency_key": key})
        with lock:
            answers.append((response.status_code, response.json()["id"]))

    threads = [threading.Thread(target=create) for _ in range(racers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return answers


def test_creates_racing_with_one_key_answer_201_exactly_once(normal_server: ServerHandle) -> None:
    racers = 6
    for round_ in range(12):
        answers = _race_creates(normal_server.url, f"race-{round_}", racers)
        statuses = sorted(status for status, _ in answers)
        assert statuses == [200] * (racers - 1) + [201], f"round {round_}: {statuses}"
        assert len({execution_id for _, execution_id in answers}) == 1


def test_http_client_sees_one_execution_per_key_from_many_threads(normal_server: ServerHandle) -> None:
    ids: list[str] = []
    with HttpClient(normal_server.url) as client:
        threads = [
            threading.Thread(target=lambda: ids.append(client.create_execution("fn", None, idempotency_key="k").id))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert len(ids) == 4 and len(set(ids)) == 1

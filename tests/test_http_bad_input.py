"""Bad requests over raw HTTP: each gets the right 4xx with a readable message, and nothing is stored."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from agentspan.client import HttpClient
from agentspan.client._http import _error_from
from agentspan.errors import (
    ConflictError,
    InvalidInputError,
    LeaseLostError,
    NotFoundError,
    NotJSONError,
    PayloadTooLargeError,
    TransportError,
)
from agentspan.runtime import Claim, Event, Service, Step
from agentspan.runtime.server._app import DEFAULT_MAX_REQUEST_BYTES
from agentspan.testing import ServerHandle

STEP = {"type": "step", "key": "s1", "kind": "tool", "name": "search", "status": "completed", "output": 1}


@pytest.fixture
def http_raw(http_server: ServerHandle) -> Iterator[httpx.Client]:
    """A bare httpx client of the API root, to send what ``HttpClient`` never would."""
    headers = {"Content-Type": "application/json"}  # as every client sends; without it the answer is 415
    with httpx.Client(base_url=http_server.url, timeout=30, headers=headers) as raw:
        yield raw


def _error(response: httpx.Response, status: int, error_type: str) -> str:
    """Assert the status and error type; return the message."""
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] == error_type
    message: str = error["message"]
    assert message
    return message


def _state(service: Service, execution_id: str) -> tuple[list[Step], list[Event]]:
    return service.get_journal(execution_id, include_superseded=True), service.get_events(execution_id)


def _records(claim: Claim, *records: Any, **overrides: Any) -> dict[str, Any]:
    return {"worker_id": "w1", "epoch": claim.epoch, "records": list(records), **overrides}


# --- bodies that are not JSON ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"name": "fn",', "line 1 column"),
        (b'{"name": "fn"} trailing', "trailing characters"),
        (b"", "empty"),
        (b"   ", "empty"),
        (b'{"name": "fn", "input": NaN}', "NaN"),
        (b'{"name": "fn", "input": [1, -Infinity]}', "Infinity"),
        (b'{"name": "fn", "input": "\\ud800"}', "not valid JSON"),
        (b'{"name": "fn", "input": "\xff\xfe"}', "not valid JSON"),
        (b'{"name": "fn", "input": ' + b"[" * 5000 + b"]" * 5000 + b"}", "recursion"),
    ],
    ids=["truncated", "trailing", "empty", "blank", "nan", "infinity", "lone-surrogate", "not-utf8", "deep"],
)
def test_create_with_a_body_that_is_not_json_is_400(
    http_raw: httpx.Client, service: Service, body: bytes, expected: str
) -> None:
    message = _error(http_raw.post("/executions", content=body), 400, "InvalidInputError")
    assert expected in message
    assert service.list_executions().items == []


def test_number_too_large_for_a_float_is_400(http_raw: httpx.Client, service: Service) -> None:
    response = http_raw.post("/executions", content=b'{"name": "fn", "input": 1e400}')
    assert "not JSON" in _error(response, 400, "NotJSONError")
    assert service.list_executions().items == []


def test_records_with_nan_are_400_and_write_nothing(
    http_raw: httpx.Client, http_claim: Claim, service: Service
) -> None:
    execution_id = http_claim.execution.id
    before = _state(service, execution_id)
    body = json.dumps(_records(http_claim, {**STEP, "output": float("nan")})).encode()
    assert b"NaN" in body
    response = http_raw.post(f"/executions/{execution_id}/records", content=body)
    assert "NaN" in _error(response, 400, "InvalidInputError")
    assert _state(service, execution_id) == before


def test_malformed_records_body_is_400_and_writes_nothing(
    http_raw: httpx.Client, http_claim: Claim, service: Service
) -> None:
    execution_id = http_claim.execution.id
    before = _state(service, execution_id)
    body = json.dumps(_records(http_claim, STEP)).encode()[:-3]
    response = http_raw.post(f"/executions/{execution_id}/records", content=body)
    assert "not valid JSON" in _error(response, 400, "InvalidInputError")
    assert _state(service, execution_id) == before


# --- bodies of the wrong shape ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ([], "body: Input should be a valid dictionary"),
        ({}, "body.name: Field required"),
        ({"name": 3}, "body.name: Input should be a valid string"),
        ({"name": "has spaces"}, "body.name: String should match pattern"),
        ({"name": "fn", "idempotency_key": ["k"]}, "body.idempotency_key"),
        ({"name": "fn", "colour": "red"}, "body.colour: Extra inputs are not permitted"),
    ],
)
def test_create_with_wrong_fields_is_422_naming_each_field(
    http_raw: httpx.Client, service: Service, body: Any, expected: str
) -> None:
    message = _error(http_raw.post("/executions", json=body), 422, "InvalidInputError")
    assert expected in message
    assert service.list_executions().items == []


def test_every_problem_of_a_body_is_listed(http_raw: httpx.Client) -> None:
    message = _error(http_raw.post("/claims", json={"names": "fn", "wait_seconds": "soon"}), 422, "InvalidInputError")
    assert "body.worker_id: Field required" in message
    assert "body.names: Input should be a valid list" in message
    assert "body.wait_seconds: Value error, Input should be a JSON number" in message


@pytest.mark.parametrize(
    ("overrides", "records", "expected"),
    [
        ({"worker_id": None}, [STEP], "body.worker_id"),
        ({"epoch": "latest"}, [STEP], "body.epoch"),
        ({"epoch": 2**70}, [STEP], "body.epoch"),
        ({}, [{**STEP, "type": "bogus"}], "'bogus'"),
        ({}, [{**STEP, "type": None}], "body.records.0"),
        ({}, [{k: v for k, v in STEP.items() if k != "key"}], "body.records.0.step.key: Field required"),
        ({}, [{**STEP, "status": "done"}], "body.records.0.step.status"),
        ({}, [STEP, {**STEP, "key": "s2", "attempt": 0}], "body.records.1.step.attempt"),
        ({}, [STEP, {"type": "finish", "status": "exploded"}], "body.records.1.finish.status"),
        ({"records": {"s1": STEP}}, [], "body.records"),
    ],
    ids=["worker", "epoch-type", "epoch-huge", "record-type", "no-type", "missing-key", "status", "attempt",
         "finish-status", "records-not-list"],
)  # fmt: skip
def test_records_of_the_wrong_shape_are_422_and_write_nothing(
    http_raw: httpx.Client,
    http_claim: Claim,
    service: Service,
    overrides: dict[str, Any],
    records: list[Any],
    expected: str,
) -> None:
    execution_id = http_claim.execution.id
    before = _state(service, execution_id)
    response = http_raw.post(f"/executions/{execution_id}/records", json=_records(http_claim, *records, **overrides))
    assert expected in _error(response, 422, "InvalidInputError")
    assert _state(service, execution_id) == before


def test_an_absurd_attempt_number_is_422_and_writes_nothing(
    http_raw: httpx.Client, http_claim: Claim, service: Service
) -> None:
    execution_id = http_claim.execution.id
    before = _state(service, execution_id)
    response = http_raw.post(
        f"/executions/{execution_id}/records", json=_records(http_claim, {**STEP, "attempt": 2**64})
    )
    assert "less than or equal to 1000000" in _error(response, 422, "InvalidInputError")
    assert _state(service, execution_id) == before


def test_batch_failing_halfway_in_the_store_writes_nothing(
    http_raw: httpx.Client, http_claim: Claim, service: Service
) -> None:
    """A batch is atomic: a conflict at its second record undoes its first."""
    execution_id = http_claim.execution.id
    url = f"/executions/{execution_id}/records"
    assert http_raw.post(url, json=_records(http_claim, STEP)).status_code == 200
    before = _state(service, execution_id)
    response = http_raw.post(url, json=_records(http_claim, {**STEP, "key": "s2"}, {**STEP, "output": "changed"}))
    assert "cannot change" in _error(response, 409, "ConflictError")
    assert _state(service, execution_id) == before


def test_stale_epoch_over_raw_http_is_409_with_the_epoch(
    http_raw: httpx.Client, http_claim: Claim, service: Service
) -> None:
    execution_id = http_claim.execution.id
    before = _state(service, execution_id)
    response = http_raw.post(f"/executions/{execution_id}/records", json=_records(http_claim, STEP, epoch=0))
    _error(response, 409, "LeaseLostError")
    assert response.json()["error"]["epoch"] == 0
    assert _state(service, execution_id) == before


@pytest.mark.parametrize(
    ("body", "status", "expected"),
    [
        ({"worker_id": "w1", "names": []}, 422, "body.names: List should have at least 1 item"),
        ({"worker_id": "w1", "names": ["fn"], "wait_seconds": 1000}, 422, "body.wait_seconds"),
        ({"worker_id": "w1", "names": ["fn"], "lease_seconds": 0}, 422, "body.lease_seconds"),
        ({"worker_id": "w1", "names": ["fn"], "wait_seconds": 1e400}, 422, "body.wait_seconds"),
        ({"worker_id": "", "names": ["fn"]}, 422, "body.worker_id"),
        ({"worker_id": "w1", "names": ["fn"] * 1001}, 422, "body.names"),
    ],
)
def test_bad_claims_are_refused_and_claim_nothing(
    http_raw: httpx.Client, service: Service, body: dict[str, Any], status: int, expected: str
) -> None:
    execution = service.create_execution("fn")
    raw = json.dumps(body).replace("Infinity", "1e400").encode()  # json.dumps writes inf as Infinity
    assert expected in _error(http_raw.post("/claims", content=raw), status, "InvalidInputError")
    assert service.get_execution(execution.id).epoch == 0


def test_bad_heartbeat_is_422(http_raw: httpx.Client, http_claim: Claim) -> None:
    response = http_raw.post(f"/executions/{http_claim.execution.id}/heartbeat", json={"worker_id": "w1"})
    assert "body.epoch: Field required" in _error(response, 422, "InvalidInputError")


def test_bad_definition_is_refused_and_stores_nothing(http_raw: httpx.Client, service: Service) -> None:
    assert "body.spec" in _error(http_raw.put("/definitions/bot", json={"spec": [1]}), 422, "InvalidInputError")
    assert "body.kind" in _error(http_raw.put("/definitions/bot", json={"kind": ""}), 422, "InvalidInputError")
    assert "path.name: String should match pattern" in _error(
        http_raw.put("/definitions/no%20spaces", json={}), 422, "InvalidInputError"
    )
    assert service.list_definitions() == []


def test_bad_signal_is_refused_and_delivers_nothing(http_raw: httpx.Client, service: Service) -> None:
    execution = service.create_execution("fn")
    before = service.get_events(execution.id)
    url = f"/executions/{execution.id}/signals"
    assert "body.extra" in _error(http_raw.post(f"{url}/go", json={"extra": 1}), 422, "InvalidInputError")
    assert "at most 200" in _error(http_raw.post(f"{url}/{'x' * 201}", json={}), 422, "InvalidInputError")
    assert "at least 1" in _error(http_raw.post(f"{url}/", json={}), 422, "InvalidInputError")
    assert service.get_events(execution.id) == before


# --- query parameters ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("params", "status", "expected"),
    [
        ({"limit": "many"}, 422, "query.limit"),
        ({"limit": 0}, 422, "query.limit"),
        ({"status": "sleeping"}, 422, "query.status"),
        ({"created_after": "1767225600"}, 422, "date-time"),
        ({"created_after": "yesterday"}, 422, "query.created_after"),
        ({"created_after": "2026-01-01T00:00:00"}, 400, "timezone"),
        ({"cursor": "not-a-cursor"}, 400, "cursor"),
    ],
)
def test_bad_listing_parameters_are_refused(
    http_raw: httpx.Client, params: dict[str, Any], status: int, expected: str
) -> None:
    assert expected in _error(http_raw.get("/executions", params=params), status, "InvalidInputError")


@pytest.mark.parametrize(
    ("params", "expected"),
    [({"after": "last"}, "query.after"), ({"after": 2**70}, "query.after"), ({"wait": -1}, "query.wait"),
     ({"wait": "nan"}, "query.wait"), ({"wait": 301}, "query.wait")],
)  # fmt: skip
def test_bad_event_parameters_are_422(
    http_raw: httpx.Client, service: Service, params: dict[str, Any], expected: str
) -> None:
    execution = service.create_execution("fn")
    assert expected in _error(
        http_raw.get(f"/executions/{execution.id}/events", params=params), 422, "InvalidInputError"
    )


@pytest.mark.parametrize("last_event_id", ["yesterday", str(2**64), "1.5"])
def test_bad_last_event_id_is_422(http_raw: httpx.Client, service: Service, last_event_id: str) -> None:
    execution = service.create_execution("fn")
    url = f"/executions/{execution.id}/events/stream"
    response = http_raw.get(url, headers={"Last-Event-ID": last_event_id})
    assert "header.last-event-id" in _error(response, 422, "InvalidInputError")


# --- unknown things --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/executions/nope", None),
        ("POST", "/executions/nope/cancel", None),
        ("DELETE", "/executions/nope", None),
        ("GET", "/executions/nope/journal", None),
        ("POST", "/executions/nope/records", {"worker_id": "w1", "epoch": 1, "records": [STEP]}),
        ("POST", "/executions/nope/heartbeat", {"worker_id": "w1", "epoch": 1}),
        ("POST", "/executions/nope/signals/go", {"payload": 1}),
        ("GET", "/executions/nope/events", None),
        ("GET", "/executions/nope/events?wait=1", None),
        ("GET", "/executions/nope/events/stream", None),
        ("GET", "/definitions/nope", None),
        ("DELETE", "/definitions/nope", None),
    ],
)
def test_unknown_ids_are_404(http_raw: httpx.Client, service: Service, method: str, path: str, body: Any) -> None:
    message = _error(http_raw.request(method, path, json=body), 404, "NotFoundError")
    assert "nope" in message
    assert service.list_executions().items == []


def test_unknown_routes_and_methods_answer_json(http_raw: httpx.Client) -> None:
    assert "/api/nowhere" in _error(http_raw.get("/nowhere"), 404, "NotFoundError")
    response = http_raw.patch("/executions")
    assert "PATCH" in _error(response, 405, "InvalidInputError")
    assert response.headers["allow"]


# --- size limits -----------------------------------------------------------------------------------------
def _oversized() -> bytes:
    """Valid JSON with a tiny payload, padded with whitespace past the request limit."""
    return b'{"name": "fn",' + b" " * DEFAULT_MAX_REQUEST_BYTES + b'"input": 1}'


def test_body_over_the_limit_by_content_length_is_413(http_raw: httpx.Client, service: Service) -> None:
    response = http_raw.post("/executions", content=_oversized())
    assert "request body is" in _error(response, 413, "PayloadTooLargeError")
    assert service.list_executions().items == []


def test_chunked_body_over_the_limit_is_413(http_raw: httpx.Client, service: Service) -> None:
    body = _oversized()

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(body), 1 << 16):
            yield body[start : start + (1 << 16)]

    response = http_raw.post("/executions", content=chunks())
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert "request body is over the limit" in _error(response, 413, "PayloadTooLargeError")
    assert service.list_executions().items == []
    assert http_raw.get("/executions").status_code == 200  # the connection is still usable


def test_chunked_body_under_the_limit_is_accepted(http_raw: httpx.Client, service: Service) -> None:
    response = http_raw.post("/executions", content=iter([b'{"name": ', b'"fn"}']))
    assert response.status_code == 201
    assert [e.name for e in service.list_executions().items] == ["fn"]


def test_payload_over_the_service_limit_is_413(http_raw: httpx.Client, service: Service) -> None:
    """Under the request limit but over the 4 MiB payload limit of the service."""
    response = http_raw.post("/executions", json={"name": "fn", "input": "x" * (5 * 1024 * 1024)})
    assert "over the limit" in _error(response, 413, "PayloadTooLargeError")
    assert service.list_executions().items == []


# --- the client side -------------------------------------------------------------------------------------
@pytest.mark.parametrize("value", [float("nan"), float("inf"), {1, 2}, object(), b"bytes", "\ud800"])
def test_client_refuses_non_json_before_sending(http_client: HttpClient, service: Service, value: Any) -> None:
    with pytest.raises(NotJSONError, match="not JSON"):
        http_client.create_execution("fn", {"value": value})
    with pytest.raises(NotJSONError):
        http_client.put_definition("bot", {"value": value})
    assert service.list_executions().items == []
    assert service.list_definitions() == []


def test_client_maps_errors_like_the_service(http_client: HttpClient) -> None:
    with pytest.raises(InvalidInputError, match="limit"):
        http_client.list_executions(limit=0)
    with pytest.raises(NotFoundError):
        http_client.get_execution("no/such/id")
    with pytest.raises(NotFoundError):
        http_client.get_journal("..")
    with pytest.raises(InvalidInputError, match="at least 1 item"):
        http_client.claim("w1", [])


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            409,
            {"error": {"type": "LeaseLostError", "message": "m", "execution_id": "e", "epoch": 3}},
            LeaseLostError,
        ),
        (409, {"error": {"type": "SomethingNew", "message": "m"}}, ConflictError),
        (413, "<html>too big</html>", PayloadTooLargeError),
        (418, {"unexpected": True}, InvalidInputError),
        (500, {"error": {"type": "InternalError", "message": "boom"}}, TransportError),
        (503, "unavailable", TransportError),
    ],
)
def test_error_answers_become_agentspan_errors(status: int, body: Any, expected: type[Exception]) -> None:
    request = httpx.Request("GET", "http://127.0.0.1/api/executions/e")
    if isinstance(body, str):
        response = httpx.Response(status, text=body, request=request)
    else:
        response = httpx.Response(status, json=body, request=request)
    error = _error_from(response)
    assert type(error) is expected
    if isinstance(error, LeaseLostError):
        assert (error.execution_id, error.epoch, error.message) == ("e", 3, "m")

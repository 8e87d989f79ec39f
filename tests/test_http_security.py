"""What a web page could make a developer's browser send to a loopback server is refused.

Cross-site form and plain-text bodies (no CORS preflight), foreign ``Origin`` headers and DNS-rebound
``Host`` names get 415/403 on every route, the per-step records fast path included, and write nothing.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from processes import wait_until

from agentspan.client import HttpClient
from agentspan.runtime import Claim, Event, Service, Step
from agentspan.runtime.server._app import DEFAULT_MAX_REQUEST_BYTES, create_app
from agentspan.runtime.server._run import uvicorn_server
from agentspan.testing import ServerHandle, serve_in_thread

STEP = {"type": "step", "key": "s1", "kind": "tool", "name": "search", "status": "completed", "output": 1}
JSON = {"Content-Type": "application/json"}


@pytest.fixture
def raw(http_server: ServerHandle) -> Iterator[httpx.Client]:
    """A bare httpx client of the API root that sends only the headers each test gives."""
    with httpx.Client(base_url=http_server.url, timeout=30) as client:
        yield client


def _state(service: Service, execution_id: str) -> tuple[list[Step], list[Event], str]:
    execution = service.get_execution(execution_id)
    return (
        service.get_journal(execution_id, include_superseded=True),
        service.get_events(execution_id),
        execution.status.value,
    )


def _records_body(claim: Claim) -> bytes:
    return json.dumps({"worker_id": "w1", "epoch": claim.epoch, "records": [STEP]}).encode()


def _refused(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["type"] in ("InvalidInputError", "UnauthorizedError", "PayloadTooLargeError")
    message: str = error["message"]
    return message


# --- content types ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
def test_create_with_a_body_a_cross_site_form_can_send_is_415(
    raw: httpx.Client, service: Service, content_type: str
) -> None:
    body = b'{"name": "fn", "input": {"prompt": "do evil"}}'
    message = _refused(raw.post("/executions", content=body, headers={"Content-Type": content_type}), 415)
    assert "application/json" in message and content_type.split(";")[0] in message
    assert service.list_executions().items == []


def test_a_body_without_a_content_type_is_415(raw: httpx.Client, service: Service) -> None:
    message = _refused(raw.post("/executions", content=b'{"name": "fn"}'), 415)
    assert "no Content-Type" in message
    assert service.list_executions().items == []


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8", "APPLICATION/JSON"])
def test_json_content_types_are_accepted(raw: httpx.Client, content_type: str) -> None:
    response = raw.post("/executions", content=b'{"name": "fn"}', headers={"Content-Type": content_type})
    assert response.status_code == 201, response.text


def test_a_post_without_a_body_needs_no_content_type(raw: httpx.Client, service: Service) -> None:
    execution = service.create_execution("fn", None)
    assert raw.post(f"/executions/{execution.id}/cancel").status_code == 200


def test_signal_as_plain_text_is_415_and_delivers_nothing(raw: httpx.Client, service: Service) -> None:
    execution = service.create_execution("fn", None)
    before = _state(service, execution.id)
    response = raw.post(
        f"/executions/{execution.id}/signals/approve", content=b'{"payload": 1}', headers={"Content-Type": "text/plain"}
    )
    _refused(response, 415)
    assert _state(service, execution.id) == before


def test_records_as_plain_text_are_415_and_write_nothing(
    raw: httpx.Client, http_claim: Claim, service: Service
) -> None:
    execution_id = http_claim.execution.id
    before = _state(service, execution_id)
    response = raw.post(
        f"/executions/{execution_id}/records", content=_records_body(http_claim), headers={"Content-Type": "text/plain"}
    )
    _refused(response, 415)
    assert _state(service, execution_id) == before


# --- Origin ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1", "file://"])
def test_create_from_a_foreign_origin_is_403(raw: httpx.Client, service: Service, origin: str) -> None:
    response = raw.post("/executions", json={"name": "fn"}, headers={"Origin": origin})
    assert "cross-origin" in _refused(response, 403)
    assert service.list_executions().items == []


def test_reads_from_a_foreign_origin_are_403(raw: httpx.Client, service: Service) -> None:
    execution = service.create_execution("fn", {"secret": 1})
    response = raw.get(f"/executions/{execution.id}", headers={"Origin": "http://evil.example"})
    _refused(response, 403)


def test_records_from_a_foreign_origin_are_403_and_write_nothing(
    raw: httpx.Client, http_claim: Claim, service: Service
) -> None:
    execution_id = http_claim.execution.id
    before = _state(service, execution_id)
    headers = {**JSON, "Origin": "http://evil.example"}
    response = raw.post(f"/executions/{execution_id}/records", content=_records_body(http_claim), headers=headers)
    _refused(response, 403)
    assert _state(service, execution_id) == before


def test_the_servers_own_origin_is_accepted(raw: httpx.Client, http_server: ServerHandle) -> None:
    """The API docs page served by the server itself sends its own origin."""
    origin = f"http://127.0.0.1:{http_server.port}"
    response = raw.post("/executions", json={"name": "fn"}, headers={"Origin": origin})
    assert response.status_code == 201, response.text


# --- Host (DNS rebinding) --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "host", ["evil.example:{port}", "evil.example", "127.0.0.1:1", "localhost.evil.example:{port}"]
)
def test_a_rebound_host_name_is_403_on_every_route(
    raw: httpx.Client, http_claim: Claim, service: Service, http_server: ServerHandle, host: str
) -> None:
    host = host.format(port=http_server.port)
    execution_id = http_claim.execution.id
    before = _state(service, execution_id)
    headers = {**JSON, "Host": host}
    assert "DNS rebinding" in _refused(raw.get("/executions", headers=headers), 403)
    _refused(raw.post("/executions", json={"name": "fn"}, headers=headers), 403)
    _refused(raw.post(f"/executions/{execution_id}/records", content=_records_body(http_claim), headers=headers), 403)
    assert _state(service, execution_id) == before
    assert len(service.list_executions().items) == 1


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1", "[::1]", "LOCALHOST"])
def test_loopback_host_names_with_the_port_are_accepted(
    raw: httpx.Client, http_server: ServerHandle, name: str
) -> None:
    response = raw.get("/executions", headers={"Host": f"{name}:{http_server.port}"})
    assert response.status_code == 200, response.text


def test_health_answers_any_host(http_server: ServerHandle) -> None:
    response = httpx.get(f"http://127.0.0.1:{http_server.port}/health", headers={"Host": "probe.internal"})
    assert response.status_code == 200


def test_http_client_by_localhost_name_works_on_both_transports(http_server: ServerHandle) -> None:
    """``HttpClient`` (httpx for most calls, its own wire connection for records) passes every check."""
    with HttpClient(f"http://localhost:{http_server.port}/api") as client:
        client.create_execution("fn", {"n": 1})
        claim = client.claim("w1", ["fn"])
        assert claim is not None
        result = client.write_records(claim.execution.id, "w1", claim.epoch, [_step_record()])
        assert result is not None


def _step_record() -> Any:
    from agentspan.runtime import StepRecord, StepStatus

    return StepRecord(key="s1", kind="tool", name="search", status=StepStatus.COMPLETED, output=1)


@pytest.fixture
def proxied_server(service: Service) -> Iterator[int]:
    """A loopback server that also answers to ``agents.example.com`` (a reverse proxy's name)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port: int = sock.getsockname()[1]
    app = create_app(service, allowed_hosts=["agents.example.com"])
    server = uvicorn_server(app, host="127.0.0.1", port=port, log_level="warning", graceful_seconds=1, log_config=None)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started, "the server to start", timeout=30)
    yield port
    server.should_exit = True
    thread.join(10)


def test_allowed_hosts_are_accepted_with_any_port(proxied_server: int) -> None:
    url = f"http://127.0.0.1:{proxied_server}/api/executions"
    assert httpx.get(url, headers={"Host": "agents.example.com"}).status_code == 200
    assert httpx.get(url, headers={"Host": "Agents.Example.com:443"}).status_code == 200
    assert httpx.get(url, headers={"Host": "evil.example"}).status_code == 403


# --- the records fast path keeps the token check and the size limit; signals keep the payload limit ----
TOKEN = "s3cret-token"


@pytest.fixture
def auth_server(service: Service) -> Iterator[ServerHandle]:
    with serve_in_thread(service, auth_token=TOKEN) as server:
        yield server


@pytest.fixture
def auth_claim(service: Service) -> Claim:
    service.create_execution("fn", None)
    claim = service.claim("w1", ["fn"])
    assert claim is not None
    return claim


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", TOKEN, f"Bearer {TOKEN}x", "Basic czNjcmV0"])
def test_records_without_the_right_token_are_401_and_write_nothing(
    auth_server: ServerHandle, auth_claim: Claim, service: Service, authorization: str | None
) -> None:
    execution_id = auth_claim.execution.id
    before = _state(service, execution_id)
    headers = {**JSON} if authorization is None else {**JSON, "Authorization": authorization}
    url = f"{auth_server.url}/executions/{execution_id}/records"
    response = httpx.post(url, content=_records_body(auth_claim), headers=headers)
    assert response.status_code == 401, response.text
    assert response.json()["error"]["type"] == "UnauthorizedError"
    assert response.headers["www-authenticate"] == "Bearer"
    assert _state(service, execution_id) == before


def test_records_with_the_token_are_written(auth_server: ServerHandle, auth_claim: Claim, service: Service) -> None:
    url = f"{auth_server.url}/executions/{auth_claim.execution.id}/records"
    headers = {**JSON, "Authorization": f"Bearer {TOKEN}"}
    response = httpx.post(url, content=_records_body(auth_claim), headers=headers)
    assert response.status_code == 200, response.text
    assert [step.key for step in service.get_journal(auth_claim.execution.id)] == ["s1"]


def _oversized_records(claim: Claim) -> bytes:
    """A valid records body with one tiny step, padded with whitespace past the 16 MiB request limit."""
    body = _records_body(claim)
    return body[:-1] + b" " * DEFAULT_MAX_REQUEST_BYTES + b"}"


def test_records_over_the_request_limit_are_413_and_write_nothing(
    raw: httpx.Client, http_claim: Claim, service: Service
) -> None:
    execution_id = http_claim.execution.id
    before = _state(service, execution_id)
    response = raw.post(f"/executions/{execution_id}/records", content=_oversized_records(http_claim), headers=JSON)
    assert "over the limit" in _refused(response, 413)
    assert response.json()["error"]["type"] == "PayloadTooLargeError"
    assert _state(service, execution_id) == before


def test_chunked_records_over_the_request_limit_are_413_and_write_nothing(
    raw: httpx.Client, http_claim: Claim, service: Service
) -> None:
    execution_id = http_claim.execution.id
    before = _state(service, execution_id)
    body = _oversized_records(http_claim)
    chunks = (body[start : start + (1 << 16)] for start in range(0, len(body), 1 << 16))
    response = raw.post(f"/executions/{execution_id}/records", content=chunks, headers=JSON)
    assert response.request.headers["transfer-encoding"] == "chunked"
    assert response.status_code == 413, response.text
    assert _state(service, execution_id) == before


def test_signal_payload_over_the_payload_limit_is_413_and_delivers_nothing(raw: httpx.Client, service: Service) -> None:
    """Under the 16 MiB request limit, over the 4 MiB payload limit."""
    execution = service.create_execution("fn", None)
    before = _state(service, execution.id)
    url = f"/executions/{execution.id}/signals/reply"
    response = raw.post(url, json={"payload": "x" * (5 * 1024 * 1024)}, headers=JSON)
    assert "over the limit" in _refused(response, 413)
    assert _state(service, execution.id) == before
    # Nothing was recorded: the same signal with another payload is delivered, not a conflict.
    assert raw.post(url, json={"payload": "small"}, headers=JSON).status_code == 200

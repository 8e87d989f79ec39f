"""The HTTP API through :class:`HttpClient`, against a real uvicorn on loopback and a real SQLite file."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from agentspan.client import Client, HttpClient, RetryPolicy
from agentspan.errors import (
    ConfigurationError,
    ConflictError,
    InvalidInputError,
    LeaseLostError,
    NotFoundError,
    TransportError,
    UnauthorizedError,
)
from agentspan.runtime import (
    Claim,
    DivergenceRecord,
    ExecutionStatus,
    FinishRecord,
    Service,
    StepRecord,
    StepStatus,
    WaitInfo,
)
from agentspan.runtime.server import create_app, run_server
from agentspan.runtime.server._run import is_loopback
from agentspan.runtime.server._sse import _frames
from agentspan.testing import ServerHandle, serve_in_thread

TOKEN = "s3cret-token"


def _step(key: str, output: object = None, status: StepStatus = StepStatus.COMPLETED) -> StepRecord:
    return StepRecord(key=key, kind="tool", name="search", status=status, input={"q": key}, output=output)


def _read_sse(response: httpx.Response) -> Iterator[dict[str, str]]:
    """The events of a ``text/event-stream`` answer, as dicts of their fields (comments skipped)."""
    fields: dict[str, str] = {}
    for line in response.iter_lines():
        if not line:
            if fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(": ")
            fields[name] = value


# --- basics ----------------------------------------------------------------------------------------------
def test_http_client_satisfies_the_client_protocol(http_client: HttpClient) -> None:
    assert isinstance(http_client, Client)
    assert http_client.inline_writes is False


def test_health_answers_on_both_paths(http_server: ServerHandle) -> None:
    for url in (f"http://127.0.0.1:{http_server.port}/health", f"{http_server.url}/health"):
        response = httpx.get(url)
        assert response.status_code == 200
        assert response.json() == {"status": "ok"}


def test_openapi_document_describes_every_endpoint_and_body(http_server: ServerHandle) -> None:
    document = httpx.get(f"{http_server.url}/openapi.json").json()
    paths = document["paths"]
    for path in (
        "/api/executions",
        "/api/executions/{execution_id}",
        "/api/executions/{execution_id}/records",
        "/api/executions/{execution_id}/fork",
        "/api/executions/{execution_id}/events/stream",
        "/api/claims",
        "/api/definitions/{name}",
    ):
        assert path in paths
    body = paths["/api/executions/{execution_id}/records"]["post"]["requestBody"]
    assert body["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/RecordsBody"}
    schemas = document["components"]["schemas"]
    assert {"RecordsBody", "StepRecord", "FinishRecord", "ClaimBody", "CreateExecution"} <= set(schemas)
    assert httpx.get(f"{http_server.url}/docs").status_code == 200


# --- executions ------------------------------------------------------------------------------------------
def test_created_execution_can_be_fetched(http_client: HttpClient) -> None:
    created = http_client.create_execution("checkout", {"order": 7})
    fetched = http_client.get_execution(created.id)
    assert fetched == created
    assert fetched.status is ExecutionStatus.QUEUED
    assert fetched.input == {"order": 7}


def test_same_idempotency_key_returns_the_same_execution_with_200(
    http_client: HttpClient, http_server: ServerHandle
) -> None:
    first = httpx.post(f"{http_server.url}/executions", json={"name": "checkout", "idempotency_key": "k1"})
    again = httpx.post(f"{http_server.url}/executions", json={"name": "checkout", "idempotency_key": "k1"})
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]
    assert http_client.create_execution("checkout", idempotency_key="k1").id == first.json()["id"]


def test_idempotency_key_reused_with_other_input_is_conflict(http_client: HttpClient) -> None:
    http_client.create_execution("checkout", {"a": 1}, idempotency_key="k1")
    with pytest.raises(ConflictError, match="idempotency key"):
        http_client.create_execution("checkout", {"a": 2}, idempotency_key="k1")


def test_list_filters_by_status_and_name_and_pages_with_cursor(http_client: HttpClient) -> None:
    ids = [http_client.create_execution("alpha", {"i": i}).id for i in range(5)]
    other = http_client.create_execution("beta")
    http_client.cancel_execution(ids[0])

    queued_alpha = http_client.list_executions(name="alpha", status=ExecutionStatus.QUEUED)
    assert {e.id for e in queued_alpha.items} == set(ids[1:])
    assert {e.id for e in http_client.list_executions(status="cancelled").items} == {ids[0]}

    seen: list[str] = []
    cursor = None
    while True:
        page = http_client.list_executions(limit=2, cursor=cursor)
        assert len(page.items) <= 2
        seen += [e.id for e in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert sorted(seen) == sorted([*ids, other.id])
    assert len(seen) == len(set(seen))


def test_list_filters_by_creation_time(http_client: HttpClient) -> None:
    created = http_client.create_execution("alpha")
    # A millisecond either side: created_at is rounded to microseconds on its way out of the store.
    before, after = created.created_at - timedelta(milliseconds=1), created.created_at + timedelta(milliseconds=1)
    assert [e.id for e in http_client.list_executions(created_after=before).items] == [created.id]
    assert http_client.list_executions(created_after=after).items == []
    assert http_client.list_executions(created_before=before).items == []
    later = datetime.now(UTC) + timedelta(hours=1)
    assert [e.id for e in http_client.list_executions(created_before=later).items] == [created.id]


def test_cancel_then_delete_removes_the_execution(http_client: HttpClient) -> None:
    execution = http_client.create_execution("alpha")
    cancelled = http_client.cancel_execution(execution.id)
    assert cancelled.status is ExecutionStatus.CANCELLED
    http_client.delete_execution(execution.id)
    with pytest.raises(NotFoundError):
        http_client.get_execution(execution.id)
    assert http_client.list_executions().items == []


def test_deleting_a_running_execution_is_conflict(http_client: HttpClient, http_claim: Claim) -> None:
    with pytest.raises(ConflictError, match="running"):
        http_client.delete_execution(http_claim.execution.id)
    assert http_client.get_execution(http_claim.execution.id).status is ExecutionStatus.RUNNING


def test_cancelling_a_completed_execution_is_conflict(http_client: HttpClient, http_claim: Claim) -> None:
    execution_id = http_claim.execution.id
    http_client.write_records(execution_id, "w1", http_claim.epoch, [FinishRecord(status="completed", output=1)])
    with pytest.raises(ConflictError) as caught:
        http_client.cancel_execution(execution_id)
    assert caught.value.execution_id == execution_id


# --- journal, records, fencing ---------------------------------------------------------------------------
def test_written_records_come_back_in_the_journal(http_client: HttpClient, http_claim: Claim) -> None:
    execution_id = http_claim.execution.id
    result = http_client.write_records(
        execution_id, "w1", http_claim.epoch, [_step("s1", {"hits": 2}), _step("s2", [1, "two", None])]
    )
    assert result.written == 2 and result.status is ExecutionStatus.RUNNING
    journal = http_client.get_journal(execution_id)
    assert [(s.key, s.seq, s.output) for s in journal] == [
        ("s1", 1, {"hits": 2}),
        ("s2", 2, [1, "two", None]),
    ]
    assert journal[0].input == {"q": "s1"} and journal[0].epoch == http_claim.epoch

    finish = http_client.write_records(
        execution_id, "w1", http_claim.epoch, [FinishRecord(status="completed", output="done")]
    )
    assert finish.status is ExecutionStatus.COMPLETED
    assert http_client.get_execution(execution_id).output == "done"


def test_superseded_steps_only_appear_on_request(http_client: HttpClient, http_claim: Claim) -> None:
    execution_id = http_claim.execution.id
    http_client.write_records(execution_id, "w1", http_claim.epoch, [_step("old", 1)])
    http_client.write_records(
        execution_id,
        "w1",
        http_claim.epoch,
        [DivergenceRecord(key="new", expected="old", superseded=["old"]), _step("new", 2)],
    )
    assert [s.key for s in http_client.get_journal(execution_id)] == ["new"]
    everything = http_client.get_journal(execution_id, include_superseded=True)
    assert {(s.key, s.superseded) for s in everything} == {("old", True), ("new", False)}


def test_stale_epoch_write_is_lease_lost_and_writes_nothing(http_client: HttpClient, http_claim: Claim) -> None:
    execution_id = http_claim.execution.id
    events_before = http_client.get_events(execution_id)
    with pytest.raises(LeaseLostError) as caught:
        http_client.write_records(execution_id, "w1", http_claim.epoch - 1, [_step("s1", 1)])
    assert caught.value.execution_id == execution_id
    assert caught.value.epoch == http_claim.epoch - 1
    assert http_client.get_journal(execution_id) == []
    assert http_client.get_events(execution_id) == events_before


def test_write_after_cancel_is_lease_lost(http_client: HttpClient, http_claim: Claim) -> None:
    http_client.cancel_execution(http_claim.execution.id)
    with pytest.raises(LeaseLostError, match="cancelled"):
        http_client.write_records(http_claim.execution.id, "w1", http_claim.epoch, [_step("s1", 1)])
    assert http_client.get_journal(http_claim.execution.id) == []


# --- claims and heartbeats -------------------------------------------------------------------------------
def test_claim_without_work_returns_none(http_client: HttpClient) -> None:
    assert http_client.claim("w1", ["nothing-here"]) is None
    assert http_client.claim("w1", ["nothing-here"], wait_seconds=0.05) is None


def test_claim_returns_the_journal_for_replay(http_client: HttpClient, http_claim: Claim) -> None:
    execution_id = http_claim.execution.id
    http_client.write_records(
        execution_id, "w1", http_claim.epoch, [_step("s1", "memo"), FinishRecord(status="released")]
    )
    again = http_client.claim("w2", ["http-fn"])
    assert again is not None and again.execution.id == execution_id
    assert again.epoch == http_claim.epoch + 1
    assert [(s.key, s.output) for s in again.journal] == [("s1", "memo")]


def test_long_poll_claim_returns_work_created_while_it_waits(http_client: HttpClient, service: Service) -> None:
    created: list[str] = []

    def create_soon() -> None:
        time.sleep(0.2)  # let the claim start waiting first
        created.append(service.create_execution("late-fn").id)

    thread = threading.Thread(target=create_soon)
    started = time.monotonic()
    thread.start()
    claim = http_client.claim("w1", ["late-fn"], wait_seconds=20)
    thread.join()
    assert claim is not None and claim.execution.id == created[0]
    assert time.monotonic() - started < 5


def test_long_poll_abandoned_by_its_worker_claims_nothing(http_server: ServerHandle, http_client: HttpClient) -> None:
    """A worker that hangs up while it waits must not be handed the next execution."""
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(
            f"{http_server.url}/claims",
            json={"worker_id": "ghost", "names": ["fn"], "wait_seconds": 30},
            timeout=httpx.Timeout(5.0, read=0.2),
        )
    time.sleep(0.2)  # the server notices the hang-up on its next loop turn; give it a moment
    execution = http_client.create_execution("fn")
    time.sleep(0.3)  # a claim still waiting would wake on the creation and take it within this time
    assert http_client.get_execution(execution.id).status is ExecutionStatus.QUEUED
    claim = http_client.claim("w1", ["fn"])
    assert claim is not None and claim.execution.id == execution.id


def test_heartbeat_renews_the_lease_and_stale_epoch_is_lease_lost(http_client: HttpClient, http_claim: Claim) -> None:
    execution_id = http_claim.execution.id
    beat = http_client.heartbeat(execution_id, "w1", http_claim.epoch, lease_seconds=120)
    assert beat.cancel_requested is False
    assert beat.lease_expires_at > http_claim.lease_expires_at
    with pytest.raises(LeaseLostError):
        http_client.heartbeat(execution_id, "w2", http_claim.epoch)


def test_heartbeat_tells_the_worker_its_execution_was_cancelled(http_client: HttpClient, http_claim: Claim) -> None:
    http_client.cancel_execution(http_claim.execution.id)
    assert http_client.heartbeat(http_claim.execution.id, "w1", http_claim.epoch).cancel_requested is True


@pytest.mark.slow
def test_expired_lease_shows_as_queued_without_another_claim(http_client: HttpClient) -> None:
    execution = http_client.create_execution("fn")
    claim = http_client.claim("w1", ["fn"], lease_seconds=1)
    assert claim is not None
    deadline = time.monotonic() + 10
    while http_client.get_execution(execution.id).status is not ExecutionStatus.QUEUED:
        assert time.monotonic() < deadline, "the lease sweeper never re-queued the execution"
        time.sleep(0.05)
    assert "lease.expired" in [e.type for e in http_client.get_events(execution.id)]


# --- signals ---------------------------------------------------------------------------------------------
def test_signal_resumes_a_waiting_execution(http_client: HttpClient, http_claim: Claim) -> None:
    execution_id = http_claim.execution.id
    wait = WaitInfo(signal="approval")
    suspended = _step("approve", status=StepStatus.SUSPENDED).model_copy(update={"wait": wait})
    result = http_client.write_records(
        execution_id, "w1", http_claim.epoch, [suspended, FinishRecord(status="waiting", wait=wait)]
    )
    assert result.status is ExecutionStatus.WAITING

    resumed = http_client.send_signal(execution_id, "approval", {"approved": True, "by": "ana"})
    assert resumed.status is ExecutionStatus.QUEUED
    claim = http_client.claim("w2", ["http-fn"])
    assert claim is not None and claim.execution.id == execution_id
    assert [(s.key, s.status, s.output) for s in claim.journal] == [
        ("approve", StepStatus.COMPLETED, {"approved": True, "by": "ana"})
    ]


def test_signal_names_are_sent_verbatim(http_client: HttpClient, http_claim: Claim) -> None:
    http_client.send_signal(http_claim.execution.id, "team/reply to #7?", "yes")
    types = [(e.type, e.data) for e in http_client.get_events(http_claim.execution.id)]
    assert ("signal.delivered", {"name": "team/reply to #7?"}) in types


def test_same_signal_with_another_payload_is_conflict(http_client: HttpClient, http_claim: Claim) -> None:
    http_client.send_signal(http_claim.execution.id, "approval", 1)
    with pytest.raises(ConflictError, match="once"):
        http_client.send_signal(http_claim.execution.id, "approval", 2)


# --- events and SSE --------------------------------------------------------------------------------------
def test_events_are_paged_by_id(http_client: HttpClient, http_claim: Claim) -> None:
    execution_id = http_claim.execution.id
    http_client.write_records(execution_id, "w1", http_claim.epoch, [_step("s1", 1), _step("s2", 2)])
    events = http_client.get_events(execution_id)
    assert [e.type for e in events] == [
        "execution.queued",
        "execution.running",
        "step.completed",
        "step.completed",
    ]
    assert [e.id for e in events] == sorted(e.id for e in events)
    assert http_client.get_events(execution_id, after=events[1].id) == events[2:]
    assert http_client.get_events(execution_id, limit=1) == events[:1]


def test_wait_events_returns_when_an_event_arrives(
    http_client: HttpClient, http_claim: Claim, service: Service
) -> None:
    execution_id = http_claim.execution.id
    last = http_client.get_events(execution_id)[-1].id
    timer = threading.Timer(0.2, lambda: service.send_signal(execution_id, "poke", 1))
    timer.start()
    events = http_client.wait_events(execution_id, after=last, timeout=20)
    timer.join()
    assert [e.type for e in events] == ["signal.delivered"]
    assert http_client.wait_events(execution_id, after=events[-1].id, timeout=0.05) == []


def test_event_stream_follows_an_execution_to_its_end(
    http_server: ServerHandle, http_claim: Claim, service: Service
) -> None:
    execution_id = http_claim.execution.id
    received: list[dict[str, str]] = []
    connected = threading.Event()

    def follow() -> None:
        with httpx.stream("GET", f"{http_server.url}/executions/{execution_id}/events/stream", timeout=20) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            connected.set()
            received.extend(_read_sse(response))

    reader = threading.Thread(target=follow)
    reader.start()
    assert connected.wait(10)
    service.write_records(execution_id, "w1", http_claim.epoch, [_step("s1", 1)])
    service.write_records(execution_id, "w1", http_claim.epoch, [FinishRecord(status="completed", output=1)])
    reader.join(20)
    assert not reader.is_alive(), "the stream did not end after execution.completed"

    assert [e["event"] for e in received] == [
        "execution.queued", "execution.running", "step.completed", "execution.completed"
    ]  # fmt: skip
    stored = service.get_events(execution_id)
    assert [int(e["id"]) for e in received] == [e.id for e in stored]
    assert [json.loads(e["data"])["type"] for e in received] == [e.type for e in stored]


def test_event_stream_resumes_after_last_event_id(
    http_server: ServerHandle, http_claim: Claim, service: Service
) -> None:
    execution_id = http_claim.execution.id
    service.write_records(execution_id, "w1", http_claim.epoch, [_step("s1", 1), FinishRecord(status="failed")])
    stored = service.get_events(execution_id)
    url = f"{http_server.url}/executions/{execution_id}/events/stream"
    with httpx.stream("GET", url, headers={"Last-Event-ID": str(stored[1].id)}, timeout=20) as response:
        resumed = list(_read_sse(response))
    assert [int(e["id"]) for e in resumed] == [e.id for e in stored[2:]]
    assert resumed[-1]["event"] == "execution.failed"

    with httpx.stream("GET", url, params={"after": stored[-1].id}, timeout=20) as response:
        assert list(_read_sse(response)) == []  # already ended: the stream closes at once


def test_event_stream_of_unknown_execution_is_404(http_server: ServerHandle) -> None:
    response = httpx.get(f"{http_server.url}/executions/nope/events/stream")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "NotFoundError"


def test_idle_event_stream_sends_keepalive_comments(service: Service) -> None:
    execution = service.create_execution("fn")
    last = service.get_events(execution.id)[-1].id

    async def first_frame() -> bytes:
        frames = _frames(service, execution.id, last, 0.05)
        try:
            return await anext(frames)
        finally:
            await frames.aclose()

    assert asyncio.run(first_frame()) == b": keep-alive\n\n"


# --- definitions -----------------------------------------------------------------------------------------
def test_definitions_can_be_put_listed_fetched_and_deleted(http_client: HttpClient) -> None:
    put = http_client.put_definition("team/support-bot", {"model": "openai/gpt-4o-mini"}, kind="agent")
    assert (put.name, put.kind, put.spec) == ("team/support-bot", "agent", {"model": "openai/gpt-4o-mini"})
    http_client.put_definition("billing")
    assert [d.name for d in http_client.list_definitions()] == ["billing", "team/support-bot"]
    assert http_client.get_definition("team/support-bot") == put
    assert http_client.get_definition("billing").spec == {}

    replaced = http_client.put_definition("billing", {"v": 2})
    assert replaced.spec == {"v": 2}
    http_client.delete_definition("team/support-bot")
    with pytest.raises(NotFoundError):
        http_client.get_definition("team/support-bot")
    with pytest.raises(NotFoundError):
        http_client.delete_definition("team/support-bot")
    assert [d.name for d in http_client.list_definitions()] == ["billing"]


def test_definition_with_an_invalid_name_is_refused(http_client: HttpClient) -> None:
    with pytest.raises(InvalidInputError, match="pattern"):
        http_client.put_definition("not a name")
    assert http_client.list_definitions() == []


# --- authentication --------------------------------------------------------------------------------------
@pytest.fixture
def http_auth_server(service: Service) -> Iterator[ServerHandle]:
    with serve_in_thread(service, auth_token=TOKEN) as server:
        yield server


def test_token_is_required_everywhere_but_health(http_auth_server: ServerHandle) -> None:
    url = http_auth_server.url
    missing = httpx.get(f"{url}/executions")
    assert missing.status_code == 401
    assert missing.json()["error"]["type"] == "UnauthorizedError"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert httpx.get(f"{url}/executions", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.get(f"{url}/executions", headers={"Authorization": TOKEN}).status_code == 401
    assert httpx.get(f"{url}/openapi.json").status_code == 401
    assert httpx.post(f"{url}/executions", json={"name": "fn"}).status_code == 401
    assert httpx.get(f"{url}/executions", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200
    assert httpx.get(f"{url}/health").status_code == 200
    assert httpx.get(f"http://127.0.0.1:{http_auth_server.port}/health").status_code == 200


def test_http_client_sends_its_token(http_auth_server: ServerHandle, service: Service) -> None:
    with HttpClient(http_auth_server.url, token=TOKEN) as client:
        created = client.create_execution("fn")
    assert service.get_execution(created.id).name == "fn"
    with HttpClient(http_auth_server.url, token="wrong") as client, pytest.raises(UnauthorizedError):
        client.create_execution("fn")
    assert len(service.list_executions().items) == 1


def test_http_client_reads_url_and_token_from_the_environment(
    http_auth_server: ServerHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENTSPAN_SERVER_URL", http_auth_server.url)
    monkeypatch.setenv("AGENTSPAN_AUTH_TOKEN", TOKEN)
    with HttpClient() as client:
        assert client.base_url == http_auth_server.url
        assert client.list_executions().items == []


def test_server_without_token_accepts_requests_without_one(http_server: ServerHandle) -> None:
    assert httpx.get(f"{http_server.url}/executions").status_code == 200


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::", "example.com", ""])
def test_run_server_refuses_a_reachable_host_without_token(service: Service, host: str) -> None:
    with pytest.raises(ConfigurationError, match="AGENTSPAN_AUTH_TOKEN"):
        run_server(service, host=host, port=1)


@pytest.mark.parametrize(("host", "expected"), [("127.0.0.1", True), ("127.8.9.1", True), ("::1", True),
                                                ("[::1]", True), ("localhost", True), ("0.0.0.0", False),
                                                ("10.0.0.1", False), ("myhost", False)])  # fmt: skip
def test_loopback_hosts_are_recognised(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


def test_empty_auth_token_is_a_configuration_error(service: Service) -> None:
    with pytest.raises(ConfigurationError, match="empty"):
        create_app(service, auth_token="")


# --- transport failures ----------------------------------------------------------------------------------
def test_unreachable_server_is_transport_error(service: Service) -> None:
    with serve_in_thread(service) as server:
        url = server.url
    no_retries = RetryPolicy(give_up_after=0)
    with (
        HttpClient(url, timeout=2, retry=no_retries) as client,
        pytest.raises(TransportError, match="cannot reach") as caught,
    ):
        client.get_execution("x")
    assert caught.value.retryable is True

"""``HttpClient`` retries: capped jittered backoff, ``Retry-After``, and only what is safe to repeat."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from processes import free_port

from agentspan.client import HttpClient, RetryPolicy
from agentspan.client._retry import Backoff
from agentspan.errors import NotFoundError, TransportError
from agentspan.runtime import Service, SQLiteStore
from agentspan.testing import ServerHandle, serve_in_thread


class _Enough(Exception):
    """Stops a retry loop from the test's sleep."""


def test_backoff_doubles_up_to_the_cap_with_jitter_between_half_and_all() -> None:
    policy = RetryPolicy(initial_delay=0.25, max_delay=10.0)
    top = Backoff(policy, rng=lambda: 1.0)
    assert [top.next_delay() for _ in range(8)] == [0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    bottom = Backoff(policy, rng=lambda: 0.0)
    assert [bottom.next_delay() for _ in range(3)] == [0.125, 0.25, 0.5]


def test_backoff_honours_retry_after_within_the_cap() -> None:
    backoff = Backoff(RetryPolicy(max_delay=5.0), rng=lambda: 0.0)
    assert backoff.next_delay(retry_after=3.0) == 3.0
    assert backoff.next_delay(retry_after=60.0) == 5.0


def test_backoff_gives_up_after_its_bound_and_forever_never_does() -> None:
    assert Backoff(RetryPolicy(give_up_after=0)).next_delay() is None
    forever = Backoff(RetryPolicy(give_up_after=None), rng=lambda: 1.0)
    assert all(forever.next_delay() is not None for _ in range(100))


@pytest.mark.parametrize(
    "options",
    [{"initial_delay": 0}, {"initial_delay": 2.0, "max_delay": 1.0}, {"multiplier": 0.5}, {"give_up_after": -1}],
)
def test_a_retry_policy_that_cannot_work_is_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="RetryPolicy|give_up_after"):
        RetryPolicy(**options)


def test_a_client_waits_for_a_server_that_is_not_up_yet(db_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    service = Service(SQLiteStore(db_path))
    started: list[ServerHandle] = []
    sleeps: list[float] = []

    def start_server_instead_of_sleeping(seconds: float) -> None:
        sleeps.append(seconds)
        if not started:
            started.append(serve_in_thread(service, port=port))

    try:
        with HttpClient(url) as client, caplog.at_level(logging.WARNING, logger="agentspan.client"):
            client._sleep = start_server_instead_of_sleeping
            with pytest.raises(NotFoundError):  # the server's answer, once it is up
                client.get_execution("nope")
        assert len(sleeps) == 1
        assert f"Agentspan server unreachable at {url}, retrying in" in caplog.text
        assert "(attempt 2)" in caplog.text
    finally:
        for server in started:
            server.stop()
        service.close()


def test_a_503_is_retried_after_its_retry_after() -> None:
    answers = iter(
        [
            httpx.Response(503, headers={"Retry-After": "3"}, json={"error": {"type": "UnavailableError", "message": "locked"}}),
            httpx.Response(200, json={"name": "d", "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"}),
        ]
    )  # fmt: skip
    sleeps: list[float] = []
    with HttpClient("http://127.0.0.1:9/api", retry=RetryPolicy(max_delay=10.0)) as client:
        client._http = httpx.Client(transport=httpx.MockTransport(lambda request: next(answers)))
        client._sleep = sleeps.append
        assert client.get_definition("d").name == "d"
    assert sleeps == [3.0]


@pytest.fixture
def hangs_up() -> Iterator[tuple[str, list[int]]]:
    """A server that reads each request and closes the connection without answering."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}/api", accepted
    listener.close()


def test_a_create_without_idempotency_key_is_not_repeated_after_a_broken_connection(
    hangs_up: tuple[str, list[int]],
) -> None:
    url, accepted = hangs_up
    sleeps: list[float] = []
    with HttpClient(url) as client:
        client._sleep = sleeps.append
        with pytest.raises(TransportError):
            client.create_execution("once", {})
    assert sleeps == [] and len(accepted) == 1


def test_requests_safe_to_repeat_are_retried_after_a_broken_connection(hangs_up: tuple[str, list[int]]) -> None:
    url, _ = hangs_up

    def stop_at_the_second_wait(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            raise _Enough

    for call in (
        lambda c: c.create_execution("keyed", {}, idempotency_key="k"),
        lambda c: c.get_execution("e1"),
        lambda c: c.write_records("e1", "w1", 1, []),
    ):
        sleeps: list[float] = []
        with HttpClient(url) as client:
            client._sleep = stop_at_the_second_wait
            with pytest.raises(_Enough):
                call(client)
        assert len(sleeps) == 2

"""The lean HTTP/1.1 connection of the per-step write, against scripted raw-socket servers."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from agentspan.client._wire import WireConnection, WireError


@pytest.fixture
def scripted() -> Iterator[tuple[str, list[bytes], list[bytes]]]:
    """A loopback server that answers each request with the next scripted bytes; yields its URL,
    the script (append answers) and the raw requests it received."""
    answers: list[bytes] = []
    received: list[bytes] = []
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def serve() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                buffer = b""
                while answers:
                    while b"\r\n\r\n" not in buffer:
                        chunk = conn.recv(65536)
                        if not chunk:
                            break
                        buffer += chunk
                    if b"\r\n\r\n" not in buffer:
                        break
                    head, _, rest = buffer.partition(b"\r\n\r\n")
                    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
                    while len(rest) < length:
                        rest += conn.recv(65536)
                    received.append(head + b"\r\n\r\n" + rest[:length])
                    buffer = rest[length:]
                    answer = answers.pop(0)
                    conn.sendall(answer)
                    if b"Connection: close" in answer:
                        break

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}/api", answers, received
    listener.close()


def test_posts_with_headers_and_reads_a_content_length_answer(scripted: tuple[str, list[bytes], list[bytes]]) -> None:
    url, answers, received = scripted
    answers += [
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"HTTP/1.1 409 Conflict\r\nContent-Length: 3\r\n\r\nno!",
    ]
    wire = WireConnection(url, {"Authorization": "Bearer t"}, timeout=5)
    assert wire.post("/executions/e1/records", b'{"a":1}') == (200, b"ok")
    assert wire.post("/executions/e1/records", b"{}") == (409, b"no!")
    assert received[0].startswith(b"POST /api/executions/e1/records HTTP/1.1\r\n")
    assert b"Authorization: Bearer t\r\n" in received[0]
    assert received[0].endswith(b'\r\n\r\n{"a":1}')
    wire.close()


def test_reads_a_chunked_answer(scripted: tuple[str, list[bytes], list[bytes]]) -> None:
    url, answers, _ = scripted
    answers.append(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
    wire = WireConnection(url, {}, timeout=5)
    assert wire.post("/x", b"") == (200, b"abcde")
    wire.close()


def test_reconnects_after_the_server_closes_the_connection(scripted: tuple[str, list[bytes], list[bytes]]) -> None:
    url, answers, received = scripted
    answers += [
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\n1",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n2",
    ]
    wire = WireConnection(url, {}, timeout=5)
    assert wire.post("/x", b"") == (200, b"1")
    assert wire.post("/x", b"") == (200, b"2")
    assert len(received) == 2
    wire.close()


def test_garbage_instead_of_http_is_an_error(scripted: tuple[str, list[bytes], list[bytes]]) -> None:
    url, answers, _ = scripted
    answers.append(b"SMTP ready\r\n\r\n")
    with pytest.raises(WireError, match="not an HTTP/1.1 answer"):
        WireConnection(url, {}, timeout=5).post("/x", b"")


def test_nothing_listening_is_connection_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionRefusedError):
        WireConnection(f"http://127.0.0.1:{port}/api", {}, timeout=2).post("/x", b"")


def test_a_threads_connection_is_closed_when_the_thread_is_gone_and_close_closes_all(
    scripted: tuple[str, list[bytes], list[bytes]],
) -> None:
    import gc

    url, answers, _ = scripted
    answers += [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"] * 3
    wire = WireConnection(url, {}, timeout=5)
    opened: list[object] = []

    def write() -> None:
        assert wire.post("/x", b"{}") == (200, b"{}")
        opened.append(wire._local.conn)

    thread = threading.Thread(target=write)
    thread.start()
    thread.join()
    conn = opened.pop()
    assert conn.sock.fileno() != -1  # type: ignore[attr-defined]
    del thread
    gc.collect()
    assert conn.sock.fileno() == -1, "the ended thread's connection was left open"  # type: ignore[attr-defined]

    other = threading.Thread(target=write)  # kept referenced: only close() can close its connection
    other.start()
    other.join()
    wire.close()
    assert opened[0].sock.fileno() == -1  # type: ignore[attr-defined]
    assert other.ident is not None

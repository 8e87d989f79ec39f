"""A lean HTTP/1.1 keep-alive connection for the per-step journal write.

A durable step costs one request. httpx spends about 0.6 ms of client CPU on each and the standard
library's ``http.client`` about 0.15 ms (it parses headers with the e-mail parser); the budget for a
whole step over HTTP is 1 ms. This connection speaks just the HTTP/1.1 that request needs: a POST
with a body, and an answer with ``Content-Length`` or chunked encoding. Every other request keeps
using httpx.
"""

from __future__ import annotations

import socket
import ssl
import threading
import time
import weakref
from typing import BinaryIO
from urllib.parse import urlsplit

__all__ = ["WireConnection", "WireError"]

# Reconnect before reusing a connection idle this long: servers close idle keep-alive connections
# (ours after 30 s), and a request sent on a connection the server just closed cannot be told apart
# from one it received, so it could not be retried safely.
_MAX_IDLE_SECONDS = 5.0
_MAX_HEADER_LINES = 100


class WireError(OSError):
    """The server's answer was not the HTTP/1.1 this connection understands, or the connection failed."""


class _Conn:
    __slots__ = ("__weakref__", "last", "reader", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader: BinaryIO = sock.makefile("rb")
        self.last = time.monotonic()

    def close(self) -> None:
        self.reader.close()
        self.sock.close()


class WireConnection:
    """One kept-alive connection per thread to the server of ``base_url``.

    Args:
        base_url: The API root (``http://host:port/api`` or ``https://...``).
        headers: Sent with every request (content type, authorization).
        timeout: Seconds to connect and to wait for an answer.
    """

    def __init__(self, base_url: str, headers: dict[str, str], timeout: float) -> None:
        parts = urlsplit(base_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or "localhost"
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        name = f"[{self._host}]" if ":" in self._host else self._host  # an IPv6 address goes in brackets
        host_header = name if parts.port is None else f"{name}:{self._port}"
        fixed = {"Host": host_header, **headers}
        self._head = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self._timeout = timeout
        self._local = threading.local()
        self._open: weakref.WeakSet[_Conn] = weakref.WeakSet()
        self._lock = threading.Lock()

    def _connection(self) -> _Conn:
        conn: _Conn | None = getattr(self._local, "conn", None)
        if conn is not None and (conn.sock.fileno() == -1 or time.monotonic() - conn.last > _MAX_IDLE_SECONDS):
            conn.close()  # closed by close() from another thread, or idle for too long
            conn = None
        if conn is None:
            sock = socket.create_connection((self._host, self._port), timeout=self._timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self._https:
                sock = ssl.create_default_context().wrap_socket(sock, server_hostname=self._host)
            conn = _Conn(sock)
            self._local.conn = conn
            with self._lock:
                self._open.add(conn)
            # A thread's connection is closed when the thread is gone (a journal writer's thread ends
            # with its execution), not left to the garbage collector's warning about an open socket.
            weakref.finalize(threading.current_thread(), conn.close)
        return conn

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST ``body`` to ``path`` under the API root; returns the status and the answer's body.

        Raises ``OSError`` (``ConnectionRefusedError`` when nothing listens) when the exchange
        fails; the connection is then dropped and the next call opens a new one.
        """
        status, data, _ = self.exchange(path, body)
        return status, data

    def exchange(self, path: str, body: bytes) -> tuple[int, bytes, str | None]:
        """:meth:`post`, also returning the answer's ``Retry-After`` header (None without one)."""
        conn = self._connection()
        request = f"POST {self._prefix}{path} HTTP/1.1\r\n{self._head}Content-Length: {len(body)}\r\n\r\n"
        try:
            conn.sock.sendall(request.encode("latin-1") + body)
            status, data, keep, retry_after = _read_response(conn.reader)
        except BaseException:
            conn.close()
            self._local.conn = None
            raise
        conn.last = time.monotonic()
        if not keep:
            conn.close()
            self._local.conn = None
        return status, data, retry_after

    def close(self) -> None:
        """Close every thread's connection (a thread that calls again opens a new one)."""
        self._local.conn = None
        with self._lock:
            conns = list(self._open)
            self._open.clear()
        for conn in conns:
            conn.close()


def _read_response(reader: BinaryIO) -> tuple[int, bytes, bool, str | None]:
    readline = reader.readline
    read = reader.read
    line = readline(65537)
    if not line:
        raise WireError("the server closed the connection without answering")
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise WireError(f"not an HTTP/1.1 answer: {line[:100]!r}")
    status = int(parts[1])
    length: int | None = None
    chunked = False
    retry_after: str | None = None
    keep = parts[0] == b"HTTP/1.1"
    for _ in range(_MAX_HEADER_LINES):
        line = readline(65537)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding":
            chunked = b"chunked" in value.lower()
        elif name == b"connection":
            keep = value.strip().lower() != b"close"
        elif name == b"retry-after":
            retry_after = value.strip().decode("latin-1")
    else:
        raise WireError("the answer has too many header lines")
    if chunked:
        data = b""
        while True:
            size = int(readline(65537).split(b";")[0], 16)
            if size == 0:
                while readline(65537) not in (b"\r\n", b"\n", b""):
                    pass
                break
            data += read(size)
            readline(65537)
        return status, data, keep, retry_after
    if length is None:
        return status, read(), False, retry_after
    data = read(length)
    if len(data) != length:
        raise WireError("the server closed the connection in the middle of its answer")
    return status, data, keep, retry_after

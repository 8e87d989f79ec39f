"""A lean HTTP/1.1 keep-alive connection for the per-step journal write.

A durable step costs one request, and httpx spends about 0.6 ms of client CPU on each (measured:
``benchmarks/step_overhead.py``), more than half of the per-step budget. The standard library's
``http.client`` on a kept-alive connection costs a fraction of that, so the one request a step makes
goes through it; every other request keeps using httpx.
"""

from __future__ import annotations

import http.client
import socket
import threading
import time
from urllib.parse import urlsplit

__all__ = ["WireConnection"]

# Reconnect before reusing a connection idle this long: servers close idle keep-alive connections
# (ours after 30 s), and a request sent on a connection the server just closed cannot be told apart
# from one it received, so it could not be retried safely.
_MAX_IDLE_SECONDS = 5.0


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
        self._headers = dict(headers)
        self._timeout = timeout
        self._local = threading.local()

    def _connection(self) -> http.client.HTTPConnection:
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        last: float = getattr(self._local, "last", 0.0)
        if conn is not None and time.monotonic() - last > _MAX_IDLE_SECONDS:
            conn.close()
            conn = None
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = cls(self._host, self._port, timeout=self._timeout)
            conn.connect()
            if conn.sock is not None and not self._https:
                conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._local.conn = conn
        return conn

    def post(self, path: str, body: bytes) -> tuple[int, bytes]:
        """POST ``body`` to ``path`` under the API root; returns the status and the answer's body.

        Raises ``OSError`` or ``http.client.HTTPException`` when the exchange fails; the connection
        is then dropped, and the next call opens a new one.
        """
        conn = self._connection()
        try:
            conn.request("POST", self._prefix + path, body, self._headers)
            response = conn.getresponse()
            data = response.read()
        except BaseException:
            conn.close()
            self._local.conn = None
            raise
        self._local.last = time.monotonic()
        if response.will_close:
            conn.close()
            self._local.conn = None
        return response.status, data

    def close(self) -> None:
        """Close this thread's connection (other threads' close when they are collected)."""
        conn: http.client.HTTPConnection | None = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

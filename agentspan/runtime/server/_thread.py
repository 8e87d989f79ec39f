"""A real runtime server on a loopback port, in a background thread: for the embedded runtime and tests."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

import httpx

from ...errors import ConfigurationError
from ._ui import DEFAULT_UI_DIR

if TYPE_CHECKING:
    import uvicorn

    from .._service import Service

__all__ = ["ServerHandle", "serve_in_thread"]

_STARTUP_SECONDS = 10.0


class ServerHandle:
    """A server started by :func:`serve_in_thread`; stops it when used as a context manager exits.

    Attributes:
        url: The API root to give :class:`~agentspan.client.HttpClient`, ``http://127.0.0.1:PORT/api``.
        port: The TCP port it listens on.
    """

    def __init__(self, server: uvicorn.Server, thread: threading.Thread, port: int) -> None:
        self._server = server
        self._thread = thread
        self.port = port
        self.url = f"http://127.0.0.1:{port}/api"

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread to end (idempotent).

        Long polls and event streams end as soon as shutdown begins; a lease sweep under way is
        waited for, so the service can be closed once this returns.
        """
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_in_thread(
    service: Service, *, auth_token: str | None = None, port: int = 0, ui_dir: Path | None = DEFAULT_UI_DIR
) -> ServerHandle:
    """Serve ``service`` over HTTP on a loopback port (a free one by default) in a daemon thread.

    Returns once ``/health`` answers. Use the handle as a context manager (or call ``stop()``)::

        with serve_in_thread(service) as server, HttpClient(server.url) as client:
            client.create_execution("checkout", {"order": 7})

    Args:
        service: The runtime to serve; it stays the caller's to close.
        auth_token: Require this bearer token, as ``agentspan server`` does with ``AGENTSPAN_AUTH_TOKEN``.
        port: The port to listen on; 0 picks a free one.
        ui_dir: The web UI's files (the package's own by default; ``None``: no UI).

    Raises:
        ImportError: The ``server`` extra is not installed.
        OSError: The port is taken.
        ConfigurationError: The server did not come up.
    """
    from ._app import create_app
    from ._run import uvicorn_server

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", port))
        port = sock.getsockname()[1]
        app = create_app(service, auth_token=auth_token, ui_dir=ui_dir)
        # log_config=None leaves the test process's logging configuration alone.
        server = uvicorn_server(
            app, host="127.0.0.1", port=port, log_level="warning", graceful_seconds=1, log_config=None
        )
    except BaseException:
        sock.close()
        raise
    thread = threading.Thread(
        target=server.run, kwargs={"sockets": [sock]}, name=f"agentspan-server-{port}", daemon=True
    )
    thread.start()
    handle = ServerHandle(server, thread, port)
    _wait_until_healthy(handle, server, thread, sock)
    return handle


def _wait_until_healthy(
    handle: ServerHandle, server: uvicorn.Server, thread: threading.Thread, sock: socket.socket
) -> None:
    deadline = time.monotonic() + _STARTUP_SECONDS
    with httpx.Client(timeout=1.0) as http:
        while time.monotonic() < deadline:
            if not thread.is_alive():
                sock.close()
                raise ConfigurationError(f"the server on port {handle.port} stopped during startup")
            if server.started:
                try:
                    if http.get(f"http://127.0.0.1:{handle.port}/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            time.sleep(0.005)
    handle.stop()
    raise ConfigurationError(f"the server on port {handle.port} did not answer /health in time")

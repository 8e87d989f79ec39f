"""Running the HTTP API with uvicorn."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Collection
from typing import Any

import uvicorn
from fastapi import FastAPI

from ...errors import ConfigurationError
from .._service import Service
from ._app import create_app
from ._guard import is_loopback

__all__ = ["is_loopback", "run_server", "uvicorn_server"]

# Longer than httpx's 5 s keep-alive expiry, so an idle connection is always dropped by the client
# first and a request never races the server closing the connection it was sent on.
_KEEP_ALIVE_SECONDS = 30


class _DrainingServer(uvicorn.Server):
    """A uvicorn server that tells the app when shutdown begins, before it waits for open requests,
    so long polls and event streams end at once with a clean answer instead of being cancelled
    (a ``CancelledError`` traceback, a 500) when the graceful period runs out."""

    def __init__(self, config: uvicorn.Config, draining: asyncio.Event | None) -> None:
        super().__init__(config)
        self._draining = draining

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._draining is not None:
            self._draining.set()
        await super().shutdown(sockets)


def uvicorn_server(
    app: FastAPI, *, host: str, port: int, log_level: str, graceful_seconds: int, **options: Any
) -> uvicorn.Server:
    """A uvicorn server for ``app``: uvloop and httptools when installed, no access log.

    ``graceful_seconds`` bounds how long shutdown waits for requests under way; long polls and
    event streams of an app made by :func:`create_app` end as soon as shutdown begins.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        access_log=False,
        ws="none",
        lifespan="on",
        timeout_keep_alive=_KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=graceful_seconds,
        **options,
    )
    return _DrainingServer(config, getattr(app.state, "draining", None))


def run_server(
    service: Service,
    host: str = "127.0.0.1",
    port: int = 6767,
    auth_token: str | None = None,
    log_level: str = "warning",
    allowed_hosts: Collection[str] = (),
) -> None:
    """Serve the HTTP API of ``service`` until interrupted.

    Args:
        service: The runtime to serve.
        host: The address to bind. Anything but a loopback address needs ``auth_token``.
        port: The TCP port.
        auth_token: Bearer token required on every route but ``/health`` (``AGENTSPAN_AUTH_TOKEN``).
        log_level: uvicorn's log level.
        allowed_hosts: ``Host`` names a loopback server answers to besides localhost, 127.0.0.1 and
            [::1] (see :func:`create_app`).

    Raises:
        ConfigurationError: ``host`` is reachable from other machines and there is no token.
    """
    if auth_token is None and not is_loopback(host):
        raise ConfigurationError(
            f"refusing to serve on {host!r} without authentication: anyone who can reach it could read"
            " and change every execution; set AGENTSPAN_AUTH_TOKEN, or bind to 127.0.0.1"
        )
    app = create_app(service, auth_token=auth_token, allowed_hosts=allowed_hosts)
    uvicorn_server(app, host=host, port=port, log_level=log_level, graceful_seconds=5).run()

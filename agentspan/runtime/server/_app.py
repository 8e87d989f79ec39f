"""The FastAPI application over a :class:`~agentspan.runtime.Service`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Collection
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.routing import APIRoute
from starlette.routing import Route

from ... import __version__
from ...errors import ConfigurationError, UnavailableError
from .._service import Service
from ._agents import agents_router
from ._approvals import approvals_router
from ._auth import SESSION_PATH, BearerAuth
from ._docs import install_docs
from ._errors import install_error_handlers, route_methods
from ._fast import RecordsFastPath
from ._guard import RequestGuard
from ._limits import BodySizeLimit
from ._openapi import install_openapi
from ._prices import prices_router
from ._routes import health, router
from ._session import session_router
from ._ui import DEFAULT_UI_DIR, LOGIN_SCRIPT_PATH, install_ui, login_page

__all__ = ["DEFAULT_LEASE_SWEEP_SECONDS", "DEFAULT_MAX_REQUEST_BYTES", "create_app"]

DEFAULT_MAX_REQUEST_BYTES = 16 * 1024 * 1024
"""The largest request body accepted unless ``create_app`` is told otherwise."""

DEFAULT_LEASE_SWEEP_SECONDS = 1.0
"""How often the app looks for expired leases unless ``create_app`` is told otherwise."""
logger = logging.getLogger("agentspan.server")


def create_app(
    service: Service,
    *,
    auth_token: str | None = None,
    max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
    keepalive_seconds: float = 15.0,
    allowed_hosts: Collection[str] = (),
    lease_sweep_seconds: float = DEFAULT_LEASE_SWEEP_SECONDS,
    ui_dir: Path | None = DEFAULT_UI_DIR,
) -> FastAPI:
    """The HTTP API of ``service`` under ``/api``, with ``/health``, the OpenAPI document and the web UI.

    While the app runs, a background task re-queues executions whose lease expired, once a second,
    so a dead worker's executions show as queued even before another worker asks for work. The app's
    shutdown waits for a sweep under way, so the caller may close the service once it has stopped.

    Args:
        service: The runtime to expose; the caller keeps ownership (the app does not close it).
        auth_token: When set, every route but the health check and the UI's login requires
            ``Authorization: Bearer <auth_token>`` or the session cookie ``POST /api/session`` sets;
            a UI page load without either answers 401 with a login page.
        max_request_bytes: Larger request bodies are refused with 413 before anything is parsed.
        keepalive_seconds: How often an idle event stream sends a keep-alive comment.
        allowed_hosts: ``Host`` names (any port) accepted on a loopback address besides
            ``localhost``, ``127.0.0.1`` and ``[::1]`` with the server's port: for a reverse proxy on
            the same machine that passes its own host name on.
        lease_sweep_seconds: How often expired leases are looked for.
        ui_dir: The web UI's files (its ``index.html`` and assets), served at ``/`` and under
            ``/ui/``; the package's own by default, ``None`` for no UI.

    Raises:
        ConfigurationError: ``auth_token`` is empty or ``max_request_bytes`` is not positive.
    """
    if auth_token is not None and not auth_token:
        raise ConfigurationError("the auth token is empty; set a non-empty AGENTSPAN_AUTH_TOKEN or none at all")
    if lease_sweep_seconds <= 0:
        raise ConfigurationError(f"lease_sweep_seconds must be positive, not {lease_sweep_seconds}")
    if max_request_bytes < 1:
        raise ConfigurationError(f"max_request_bytes must be positive, not {max_request_bytes}")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        stop = asyncio.Event()
        sweeper = asyncio.create_task(
            _expire_leases_forever(service, stop, lease_sweep_seconds), name="agentspan-lease-sweeper"
        )
        try:
            yield
        finally:
            # Not cancelled: a sweep under way runs in a thread, and the store may be closed as soon
            # as the app has shut down, so shutdown waits for it to end.
            stop.set()
            await sweeper

    app = FastAPI(
        title="Agentspan runtime",
        version=__version__,
        description="Durable executions, their journals, the work queue, signals and event streams.",
        openapi_url="/api/openapi.json",
        docs_url=None,  # served from the package by install_docs, not from a CDN
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.draining = asyncio.Event()  # set by the server when it begins to shut down
    app.state.keepalive_seconds = keepalive_seconds
    app.state.auth_token = auth_token
    app.include_router(router, prefix="/api")
    app.include_router(agents_router, prefix="/api")
    app.include_router(approvals_router, prefix="/api")
    app.include_router(prices_router, prefix="/api")
    app.include_router(session_router, prefix="/api")
    app.add_api_route("/health", health, methods=["GET"], include_in_schema=False)
    install_docs(app, docs_url="/api/docs", openapi_url="/api/openapi.json", title=app.title)
    if ui_dir is not None:
        install_ui(app, ui_dir)
    install_error_handlers(app)
    paths = [
        ("/api" + route.path, route.methods or ())
        for api in (router, approvals_router, prices_router, session_router)
        for route in api.routes
        if isinstance(route, APIRoute)
    ]
    paths += [(route.path, route.methods or ()) for route in app.router.routes if isinstance(route, Route)]
    app.state.route_methods = route_methods(paths)  # the Allow header of 405 answers
    # The last middleware added is the outermost: authenticate before reading any body.
    app.add_middleware(BodySizeLimit, max_bytes=max_request_bytes)
    if auth_token is not None:
        # Logging in is open; so is the login page's script, which the page loads before it has logged in.
        opened = frozenset({SESSION_PATH} | ({LOGIN_SCRIPT_PATH} if ui_dir is not None else set()))
        app.add_middleware(
            BearerAuth, token=auth_token, open_paths=opened, login=login_page if ui_dir is not None else None
        )
    # Added last, so it is the outermost: the per-step write skips the rest of the stack.
    app.add_middleware(RecordsFastPath, service=service, auth_token=auth_token, max_bytes=max_request_bytes)
    # Outermost of all, the fast path included: refuse what a web page could send before anything else.
    app.add_middleware(RequestGuard, allowed_hosts=allowed_hosts)
    install_openapi(app)
    return app


async def _expire_leases_forever(service: Service, stop: asyncio.Event, interval: float) -> None:
    while True:
        try:
            async with asyncio.timeout(interval):
                await stop.wait()
            return
        except TimeoutError:
            pass
        try:
            await asyncio.to_thread(service.expire_leases)
        except UnavailableError as exc:
            logger.warning("expiring leases: %s; retrying in %s s", exc.message, interval)
        except Exception:
            logger.exception("expiring leases failed; retrying in %s s", interval)

"""The FastAPI application over a :class:`~agentspan.runtime.Service`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from ... import __version__
from ...errors import ConfigurationError, UnavailableError
from .._service import Service
from ._auth import BearerAuth
from ._bodies import BODIES
from ._errors import install_error_handlers
from ._fast import RecordsFastPath
from ._limits import BodySizeLimit
from ._routes import health, router

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
    lease_sweep_seconds: float = DEFAULT_LEASE_SWEEP_SECONDS,
) -> FastAPI:
    """The HTTP API of ``service`` under ``/api``, with ``/health`` and the OpenAPI document.

    While the app runs, a background task re-queues executions whose lease expired, once a second,
    so a dead worker's executions show as queued even before another worker asks for work. The app's
    shutdown waits for a sweep under way, so the caller may close the service once it has stopped.

    Args:
        service: The runtime to expose; the caller keeps ownership (the app does not close it).
        auth_token: When set, every route but the health check requires
            ``Authorization: Bearer <auth_token>``.
        max_request_bytes: Larger request bodies are refused with 413 before anything is parsed.
        keepalive_seconds: How often an idle event stream sends a keep-alive comment.
        lease_sweep_seconds: How often expired leases are looked for.

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
        docs_url="/api/docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    app.state.draining = asyncio.Event()  # set by the server when it begins to shut down
    app.state.keepalive_seconds = keepalive_seconds
    app.include_router(router, prefix="/api")
    app.add_api_route("/health", health, methods=["GET"], include_in_schema=False)
    install_error_handlers(app)
    # The last middleware added is the outermost: authenticate before reading any body.
    app.add_middleware(BodySizeLimit, max_bytes=max_request_bytes)
    if auth_token is not None:
        app.add_middleware(BearerAuth, token=auth_token)
    # Added last, so it is the outermost: the per-step write skips the rest of the stack.
    app.add_middleware(RecordsFastPath, service=service, auth_token=auth_token, max_bytes=max_request_bytes)
    app.openapi = _openapi_with_bodies(app)  # type: ignore[method-assign]
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


def _openapi_with_bodies(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """FastAPI's OpenAPI document plus the schemas of the bodies the routes read themselves."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = FastAPI.openapi(app)
            _, defs = models_json_schema(
                [(model, "validation") for model in BODIES], ref_template="#/components/schemas/{model}"
            )
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for name, schema in defs.get("$defs", {}).items():
                schemas.setdefault(name, schema)
        assert app.openapi_schema is not None
        return app.openapi_schema

    return openapi

"""The one place where errors become HTTP answers.

Every error body has the same shape, ``{"error": {"type": ..., "message": ...}}``, so a client can
raise the same :mod:`agentspan.errors` class the server raised (see :class:`agentspan.client.HttpClient`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from ...errors import (
    AgentspanError,
    ConflictError,
    InvalidInputError,
    LeaseLostError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnavailableError,
)

__all__ = ["describe_errors", "error_response", "install_error_handlers", "route_methods", "status_for"]

logger = logging.getLogger("agentspan.server")

# Most specific first: the first class in an error's MRO that is listed here decides its status.
_STATUS: dict[type, int] = {
    PayloadTooLargeError: 413,
    InvalidInputError: 400,
    NotFoundError: 404,
    LeaseLostError: 409,
    ConflictError: 409,
    UnauthorizedError: 401,
    UnavailableError: 503,
}
# Errors raised by the framework itself (unknown route, wrong method) get a category by status.
_TYPE_BY_STATUS = {
    401: "UnauthorizedError",
    403: "UnauthorizedError",
    404: "NotFoundError",
    409: "ConflictError",
    413: "PayloadTooLargeError",
}


def status_for(exc: AgentspanError) -> int:
    """The HTTP status of an error: 4xx for what the caller can fix, 503 for "try again shortly",
    500 for everything else."""
    for cls in type(exc).__mro__:
        status = _STATUS.get(cls)
        if status is not None:
            return status
    return 500


def error_response(exc: AgentspanError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The JSON answer for ``exc``, with the status :func:`status_for` gives it (and, for a 503,
    ``Retry-After``)."""
    body = exc.to_dict()
    if isinstance(exc, LeaseLostError) and exc.epoch is not None:
        body["epoch"] = exc.epoch
    if isinstance(exc, UnavailableError):
        headers = {**(headers or {}), "Retry-After": str(max(1, round(exc.retry_after)))}
    return JSONResponse({"error": body}, status_code=status_for(exc), headers=headers)


def describe_errors(errors: Iterable[Mapping[str, Any]]) -> str:
    """One line for pydantic error dicts, in the form of :func:`agentspan.runtime._models.describe`."""
    parts = []
    for err in errors:
        where = ".".join(str(p) for p in err.get("loc", ())) or "body"
        parts.append(f"{where}: {err.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


async def _agentspan_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, AgentspanError)
    if status_for(exc) == 500:
        logger.error("%s %s failed: %r", request.method, request.url.path, exc)
    return error_response(exc)


def validation_response(exc: RequestValidationError) -> JSONResponse:
    """422 listing each problem of a request that has the wrong shape."""
    body = {"type": InvalidInputError.__name__, "message": describe_errors(exc.errors())}
    return JSONResponse({"error": body}, status_code=422)


def internal_error_response() -> JSONResponse:
    """500 without details (they go to the server log)."""
    body = {"type": "InternalError", "message": "internal server error; the server log has the details"}
    return JSONResponse({"error": body}, status_code=500)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return validation_response(exc)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        message = f"no such endpoint: {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    error_type = _TYPE_BY_STATUS.get(exc.status_code, "InvalidInputError" if exc.status_code < 500 else "InternalError")
    headers = exc.headers
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        headers = {**(headers or {}), "Allow": ", ".join(allowed)}
        message += f"; this path allows {', '.join(allowed)}"
    return JSONResponse(
        {"error": {"type": error_type, "message": message}}, status_code=exc.status_code, headers=headers
    )


def route_methods(routes: Iterable[tuple[str, Iterable[str]]]) -> list[tuple[re.Pattern[str], frozenset[str]]]:
    """The table :func:`install_error_handlers` answers 405's ``Allow`` from: (path, methods) pairs."""
    return [(compile_path(path)[0], frozenset(methods)) for path, methods in routes]


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on the request's path.

    Starlette's 405 names only the methods of the first route whose path matched, while one path
    (``/api/definitions/{name}``) is often served by several routes, one per method.
    """
    table: list[tuple[re.Pattern[str], frozenset[str]]] = getattr(request.app.state, "route_methods", [])
    methods: set[str] = set()
    for pattern, route_methods_ in table:
        if pattern.match(request.url.path):
            methods |= route_methods_
    return sorted(methods)


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    # Starlette raises the exception again after this answer, so the server logs its traceback.
    return internal_error_response()


def install_error_handlers(app: FastAPI) -> None:
    """Make every error of ``app`` answer with the JSON error body."""
    app.add_exception_handler(AgentspanError, _agentspan_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected)

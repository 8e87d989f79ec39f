"""The OpenAPI document: FastAPI's, made true to what the server answers.

FastAPI describes what the route functions declare. The rest of the server is middleware and hand
written body readers, so the generated document alone would leave out the request bodies, every
error answer (the JSON error body, not FastAPI's ``{"detail": ...}``), and that a discriminated
record needs its ``type``. :func:`install_openapi` adds them once, when the document is first asked
for; a test runs a property-based fuzzer against a live server with this document.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from pydantic.json_schema import models_json_schema

from ._bodies import BODIES

__all__ = ["ERROR_SCHEMA", "install_openapi"]

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "description": "Every error answer; `type` names the `agentspan.errors` class the client raises.",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "message"],
            "properties": {
                "type": {"type": "string", "description": "The error category, e.g. NotFoundError"},
                "message": {"type": "string", "description": "What went wrong and what to do about it"},
                "execution_id": {"type": "string", "description": "The execution concerned"},
                "epoch": {"type": "integer", "description": "The rejected fencing epoch (LeaseLostError)"},
            },
        }
    },
}

_ERRORS = {
    400: "Malformed request: a body that is not JSON, or a value the server cannot use",
    401: "A bearer token is required (`AGENTSPAN_AUTH_TOKEN`) and none or a wrong one came",
    403: "Refused: a cross-origin browser request, or a Host name a loopback server does not answer to",
    404: "No such execution, definition or approval",
    409: "Contradicts the stored state (a finished execution, a reused key, a stale lease epoch)",
    413: "The request body, or a payload in it, is over the size limit",
    415: "A request body that is not sent as `application/json`",
    422: "A request of the wrong shape; the message lists every problem",
    503: "The store is busy (a write lock held elsewhere): retry after `Retry-After` seconds",
}
# Operations that can contradict stored state, by (method, path).
_CONFLICTS = {
    ("post", "/api/executions"),
    ("delete", "/api/executions/{execution_id}"),
    ("post", "/api/executions/{execution_id}/cancel"),
    ("post", "/api/executions/{execution_id}/fork"),
    ("post", "/api/executions/{execution_id}/heartbeat"),
    ("post", "/api/executions/{execution_id}/records"),
    ("post", "/api/executions/{execution_id}/signals/{name}"),
    ("post", "/api/approvals/{approval_id}/approve"),
    ("post", "/api/approvals/{approval_id}/reject"),
    ("post", "/api/approvals/{approval_id}/respond"),
    ("post", "/api/executions/{execution_id}/budget"),
}
_REF = "#/components/schemas/Error"
_METHODS = ("get", "put", "post", "delete", "patch")


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the completed document (built once, then cached)."""
    app.openapi = _builder(app)  # type: ignore[method-assign]


def _builder(app: FastAPI) -> Callable[[], dict[str, Any]]:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = complete(FastAPI.openapi(app))
        return app.openapi_schema

    return openapi


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """Add body schemas, error answers and discriminator requirements to a generated document."""
    schemas: dict[str, Any] = document.setdefault("components", {}).setdefault("schemas", {})
    _, defs = models_json_schema(
        [(model, "validation") for model in BODIES], ref_template="#/components/schemas/{model}"
    )
    for name, schema in defs.get("$defs", {}).items():
        schemas.setdefault(name, schema)
    schemas["Error"] = ERROR_SCHEMA
    for path, method, operation in _operations(document):
        _declare_errors(path, method, operation)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)  # FastAPI's 422 body; this server answers with Error
    _require_discriminators(schemas)
    return document


def _operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document.get("paths", {}).items():
        for method in _METHODS:
            if method in item:
                yield path, method, item[method]


def _declare_errors(path: str, method: str, operation: dict[str, Any]) -> None:
    codes = [400, 401, 403, 422, 503]
    if "{" in path:
        codes.append(404)
    if (method, path) in _CONFLICTS:
        codes.append(409)
    if method != "get":
        codes += [413, 415]  # every write passes the size limit and the content-type check
    responses: dict[str, Any] = operation.setdefault("responses", {})
    for code in sorted(codes):
        answer: dict[str, Any] = {
            "description": _ERRORS[code],
            "content": {"application/json": {"schema": {"$ref": _REF}}},
        }
        if code == 401:
            answer["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        if code == 503:
            answer["headers"] = {"Retry-After": {"schema": {"type": "integer"}, "description": "Seconds to wait"}}
        responses[str(code)] = answer


def _require_discriminators(schemas: dict[str, Any]) -> None:
    """A discriminated union needs its tag: mark the property required in every member.

    The record models default ``type`` so Python callers can omit it, which makes the generated
    schema call it optional; the server cannot tell the members apart without it.
    """
    for schema in list(schemas.values()):
        for discriminator in _find(schema, "discriminator"):
            prop = discriminator.get("propertyName")
            for ref in discriminator.get("mapping", {}).values():
                member = schemas.get(ref.rsplit("/", 1)[-1])
                if prop and member is not None:
                    required: list[str] = member.setdefault("required", [])
                    if prop not in required:
                        required.insert(0, prop)


def _find(node: Any, key: str) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get(key), dict):
            yield node[key]
        for value in node.values():
            yield from _find(value, key)
    elif isinstance(node, list):
        for value in node:
            yield from _find(value, key)

"""Refusing what a web page could make a developer's browser send to the API.

A server on a loopback port without a token trusts whoever can reach it, and every web page the
developer opens can reach it: a ``<form>`` or ``fetch`` with ``Content-Type: text/plain`` is sent
cross-site without a CORS preflight, and a DNS-rebinding page makes its own name resolve to
``127.0.0.1``. So, on every route but the health check:

- a ``Host`` header that is not ``localhost``, ``127.0.0.1`` or ``[::1]`` with the server's port is
  refused (403) when the request arrived on a loopback address (DNS rebinding);
- an ``Origin`` header that is not the server's own is refused (403): browsers send it on every
  cross-site write;
- a body that is not declared as JSON is refused (415): every body of the API is JSON, and a
  cross-site page can only send form and plain-text bodies without a preflight.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Collection
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from ...errors import InvalidInputError, UnauthorizedError
from ._auth import OPEN_PATHS

__all__ = ["LOOPBACK_NAMES", "RequestGuard", "is_loopback"]

LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "[::1]"})
"""The ``Host`` names a server on a loopback address answers to (with its port)."""

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (``localhost``, ``127.0.0.0/8``, ``::1``)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _split_host(value: str) -> tuple[str, int | None] | None:
    """``name:port`` of a ``Host`` header, the name lowercased, IPv6 in brackets; None if malformed."""
    value = value.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        name, rest = value[: end + 1], value[end + 1 :]
        if rest and not rest.startswith(":"):
            return None
        port_text = rest[1:] if rest else None
    else:
        name, sep, port_text_ = value.rpartition(":")
        if not sep:
            name, port_text = value, None
        else:
            port_text = port_text_
    if port_text is None:
        return name, None
    if not port_text.isdigit():
        return None
    return name, int(port_text)


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))


class RequestGuard:
    """ASGI middleware applying the ``Host``, ``Origin`` and content-type checks of this module.

    Args:
        app: The application to protect.
        allowed_hosts: More ``Host`` names (any port) a loopback server answers to, for a reverse
            proxy on the same machine that passes its own host name on.
    """

    def __init__(self, app: ASGIApp, *, allowed_hosts: Collection[str] = ()) -> None:
        self.app = app
        self._allowed_hosts = frozenset(name.strip().lower() for name in allowed_hosts)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            refusal = self._refusal(scope)
            if refusal is not None:
                status, error_type, message = refusal
                body = json.dumps({"error": {"type": error_type, "message": message}}).encode()
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _refusal(self, scope: Scope) -> tuple[int, str, str] | None:
        host = origin = content_type = None
        has_body = False
        for name, value in scope["headers"]:
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origin = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"content-length":
                has_body = has_body or value.strip() not in (b"0", b"")
            elif name == b"transfer-encoding":
                has_body = True
        forbidden = UnauthorizedError.__name__
        server = scope.get("server")
        if host is not None and server is not None and is_loopback(str(server[0])):
            problem = self._host_problem(host, int(server[1]))
            if problem is not None:
                return 403, forbidden, problem
        if origin is not None and not _same_origin(origin, host):
            return (
                403,
                forbidden,
                (
                    f"cross-origin request refused: Origin {origin!r} is not this server's own"
                    f" ({'http://' + host if host else 'unknown'}); the API answers only its own pages and"
                    " non-browser clients"
                ),
            )
        if scope["method"] not in _READ_METHODS:
            if content_type is not None and not _is_json(content_type):
                return (
                    415,
                    InvalidInputError.__name__,
                    (
                        f"the request body must be JSON, not {content_type!r};"
                        " send it with 'Content-Type: application/json'"
                    ),
                )
            if content_type is None and has_body:
                return (
                    415,
                    InvalidInputError.__name__,
                    ("the request has a body but no Content-Type; send JSON with 'Content-Type: application/json'"),
                )
        return None

    def _host_problem(self, host: str, port: int) -> str | None:
        parts = _split_host(host)
        if parts is not None:
            name, given_port = parts
            if name in self._allowed_hosts:
                return None
            if name in LOOPBACK_NAMES and (given_port or 80) == port:
                return None
        return (
            f"Host {host!r} is not this server's address: a server bound to a loopback address answers"
            f" only to localhost, 127.0.0.1 or [::1] on port {port} (a guard against DNS rebinding);"
            " connect by one of those names"
        )


def _same_origin(origin: str, host: str | None) -> bool:
    if host is None:
        return False
    parts = urlsplit(origin)
    return parts.scheme in ("http", "https") and parts.netloc.lower() == host.strip().lower()

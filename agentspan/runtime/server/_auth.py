"""Authentication for the whole API except the health check: a bearer token, or the UI's session cookie.

A browser cannot add an ``Authorization`` header to a page load, so the UI logs in once with
``POST /api/session`` and gets the cookie :data:`SESSION_COOKIE`. Its value is an HMAC of a fixed label
keyed with the token, never the token itself: it is only as good as the token, and it changes when
the token does. The cookie is ``HttpOnly`` (page scripts cannot read it) and ``SameSite=Strict`` (a
cross-site page cannot make the browser send it); :class:`~agentspan.runtime.server._guard.RequestGuard`
refuses cross-origin writes besides.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from ...errors import UnauthorizedError
from ._errors import error_response

__all__ = ["OPEN_PATHS", "SESSION_COOKIE", "SESSION_PATH", "BearerAuth", "credentials_valid", "session_value"]

OPEN_PATHS = frozenset({"/health", "/api/health"})
"""Paths answered without a token, so load balancers and probes need no secret."""

SESSION_PATH = "/api/session"
"""Where the UI logs in and out (open: logging in is how a browser gets credentials)."""

SESSION_COOKIE = "agentspan_session"
"""The UI's session cookie."""

_LABEL = b"agentspan ui session v1"

LoginPage = Callable[[Scope], ASGIApp | None]
"""Given a request refused for want of credentials, the login page to answer it with, or ``None``."""


@functools.lru_cache(maxsize=8)  # checked on every request: the HMAC is computed once per token
def session_value(token: str) -> str:
    """The session cookie's value for ``token``: HMAC-SHA256 of a fixed label keyed with it, in hex."""
    return hmac.new(token.encode(), _LABEL, hashlib.sha256).hexdigest()


def _cookie(scope: Scope) -> bytes:
    """The value of the session cookie the request carries (empty if none)."""
    prefix = SESSION_COOKIE.encode() + b"="
    for name, value in scope["headers"]:
        if name == b"cookie":
            for part in value.split(b";"):
                part = part.strip()
                if part.startswith(prefix):
                    return bytes(part[len(prefix) :])
    return b""


def _bearer(scope: Scope) -> bytes:
    for name, value in scope["headers"]:
        if name == b"authorization":
            return bytes(value)
    return b""


def credentials_valid(scope: Scope, token: str) -> bool:
    """Whether the request carries ``Authorization: Bearer <token>`` or the session cookie of ``token``
    (both compared in constant time)."""
    bearer_ok = hmac.compare_digest(_bearer(scope), b"Bearer " + token.encode())
    cookie_ok = hmac.compare_digest(_cookie(scope), session_value(token).encode())
    return bearer_ok or cookie_ok


class BearerAuth:
    """ASGI middleware requiring the bearer token or the session cookie on every path but the open ones.

    A missing or wrong credential gets 401: the JSON error body, or, for a page of the UI, its login
    page (``login``).

    Args:
        app: The application to protect.
        token: The expected token (``AGENTSPAN_AUTH_TOKEN``).
        open_paths: Paths answered without credentials besides :data:`OPEN_PATHS`.
        login: What a refused UI page is answered with instead of the JSON error.
    """

    def __init__(
        self, app: ASGIApp, token: str, *, open_paths: frozenset[str] = frozenset(), login: LoginPage | None = None
    ) -> None:
        self.app = app
        self._token = token
        self._open = OPEN_PATHS | open_paths
        self._login = login

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in self._open and not credentials_valid(scope, self._token):
            page = None if self._login is None else self._login(scope)
            if page is not None:
                await page(scope, receive, send)
                return
            supplied = _bearer(scope)
            problem = "a wrong bearer token" if supplied else "no bearer token"
            if not supplied and _cookie(scope):
                problem = "a session cookie that is not valid (the token changed?)"
            exc = UnauthorizedError(
                f"this server requires a bearer token and the request carried {problem};"
                " send 'Authorization: Bearer <AGENTSPAN_AUTH_TOKEN>', or log in with POST /api/session"
            )
            await error_response(exc, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
            return
        await self.app(scope, receive, send)

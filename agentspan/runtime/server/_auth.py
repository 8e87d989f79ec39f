"""Bearer-token authentication for the whole API except the health check."""

from __future__ import annotations

import hmac

from starlette.types import ASGIApp, Receive, Scope, Send

from ...errors import UnauthorizedError
from ._errors import error_response

__all__ = ["OPEN_PATHS", "BearerAuth"]

OPEN_PATHS = frozenset({"/health", "/api/health"})
"""Paths answered without a token, so load balancers and probes need no secret."""


class BearerAuth:
    """ASGI middleware requiring ``Authorization: Bearer <token>`` on every path but ``OPEN_PATHS``.

    The token is compared in constant time; a missing or wrong token gets 401.

    Args:
        app: The application to protect.
        token: The expected token (``AGENTSPAN_AUTH_TOKEN``).
    """

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self._expected = b"Bearer " + token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] not in OPEN_PATHS:
            supplied = b""
            for name, value in scope["headers"]:
                if name == b"authorization":
                    supplied = value
                    break
            if not hmac.compare_digest(supplied, self._expected):
                problem = "a wrong bearer token" if supplied else "no bearer token"
                exc = UnauthorizedError(
                    f"this server requires a bearer token and the request carried {problem};"
                    " send 'Authorization: Bearer <AGENTSPAN_AUTH_TOKEN>'"
                )
                await error_response(exc, headers={"WWW-Authenticate": "Bearer"})(scope, receive, send)
                return
        await self.app(scope, receive, send)

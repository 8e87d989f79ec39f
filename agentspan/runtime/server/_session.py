"""``/api/session``: how the UI logs in and out when the server has an auth token.

``POST`` with ``{"token": "..."}`` sets the session cookie (see :mod:`._auth`) when the token is
right; ``DELETE`` clears it; ``GET`` says whether a login is needed and whether this request has
one. All three are open routes, still behind the request guard (same origin, JSON bodies only).
"""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict

from ...errors import UnauthorizedError
from ._auth import SESSION_COOKIE, credentials_valid, session_value
from ._bodies import BodyReader, SessionBody, body_doc

__all__ = ["SessionState", "session_router"]

session_router = APIRouter()


class SessionState(BaseModel):
    """Whether the UI must log in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    auth_required: bool
    """The server has an auth token: requests need it or the session cookie."""
    authenticated: bool
    """This request carries valid credentials (always true when no token is required)."""


_LOGIN = BodyReader(SessionBody)
_NO_CONTENT = 204


def _token(request: Request) -> str | None:
    token: str | None = request.app.state.auth_token
    return token


def _cookie_attributes(request: Request) -> str:
    secure = "; Secure" if request.url.scheme == "https" else ""
    return f"HttpOnly; SameSite=Strict; Path=/{secure}"


@session_router.get("/session", response_model=SessionState, tags=["session"])
async def get_session(request: Request) -> SessionState:
    """Whether this server requires a login, and whether this request is logged in."""
    token = _token(request)
    authenticated = token is None or credentials_valid(request.scope, token)
    return SessionState(auth_required=token is not None, authenticated=authenticated)


@session_router.post(
    "/session",
    status_code=_NO_CONTENT,
    responses={401: {"description": "The token is wrong"}},
    openapi_extra=body_doc(SessionBody),
    tags=["session"],
)
async def create_session(request: Request) -> Response:
    """Log in with the server's token: sets the ``HttpOnly`` session cookie (nothing to do without a token)."""
    body = await _LOGIN.read(request)
    token = _token(request)
    response = Response(status_code=_NO_CONTENT)
    if token is None:
        return response
    if not hmac.compare_digest(body.token.encode(), token.encode()):
        raise UnauthorizedError("the token is wrong; give the server's AGENTSPAN_AUTH_TOKEN")
    response.headers["Set-Cookie"] = f"{SESSION_COOKIE}={session_value(token)}; {_cookie_attributes(request)}"
    return response


@session_router.delete("/session", status_code=_NO_CONTENT, tags=["session"])
async def delete_session(request: Request) -> Response:
    """Log out: clears the session cookie."""
    response = Response(status_code=_NO_CONTENT)
    response.headers["Set-Cookie"] = f"{SESSION_COOKIE}=; Max-Age=0; {_cookie_attributes(request)}"
    return response

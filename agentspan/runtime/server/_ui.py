"""The web UI: its single page at ``/`` and ``/ui/...``, its files under ``/ui/static/``, its login page.

The UI is a single-page application: every ``/ui/...`` path that is not one of its files (the UI's own
routes, ``/ui/executions/<id>``, ``/ui/approvals``) answers its ``index.html``, which reads the path
and calls the API. Files are served only from inside the UI's folder and only with the media types
listed in :data:`MEDIA_TYPES`. Every answer carries a strict Content-Security-Policy (nothing but
this server: no inline script, no other origin, no framing).

When the server has an auth token, a page load without credentials answers 401 with a small login
page (:func:`login_page`), whose script ``/ui/login.js`` is the one open UI route: it posts the token
to ``/api/session``, which sets the session cookie, and reloads.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.types import ASGIApp, Scope

from ...errors import NotFoundError

__all__ = [
    "DEFAULT_UI_DIR",
    "LOGIN_SCRIPT_PATH",
    "MEDIA_TYPES",
    "SECURITY_HEADERS",
    "install_ui",
    "is_ui_path",
    "login_page",
]

DEFAULT_UI_DIR = Path(__file__).parent / "static" / "ui"
"""The UI shipped in the package."""

LOGIN_SCRIPT_PATH = "/ui/login.js"
"""The login page's script: open, so the page can load it before anyone has logged in."""

MEDIA_TYPES: dict[str, str] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".json": "application/json",
    ".map": "application/json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
"""The files the UI may have, by suffix; anything else under ``/ui/static/`` is a 404."""

SECURITY_HEADERS: dict[str, str] = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self';"
        " frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
"""Sent with every UI answer, the login page's included."""

_NO_CACHE = {"Cache-Control": "no-cache"}  # the page names its assets; a new release must be seen at once
_ASSET_CACHE = {"Cache-Control": "public, max-age=3600"}
_HERE = Path(__file__).parent
_LOGIN_HTML = _HERE / "_login.html"
_LOGIN_JS = _HERE / "_login.js"


def is_ui_path(path: str) -> bool:
    """Whether ``path`` is one of the UI's (``/``, ``/ui`` or under ``/ui/``)."""
    return path in ("/", "/ui") or path.startswith("/ui/")


def login_page(scope: Scope) -> ASGIApp | None:
    """The 401 login page for a UI page load without credentials; ``None`` for any other request."""
    if scope["method"] not in ("GET", "HEAD") or not is_ui_path(scope["path"]):
        return None
    return Response(
        _LOGIN_HTML.read_bytes(),
        status_code=401,
        media_type=MEDIA_TYPES[".html"],
        headers={**SECURITY_HEADERS, **_NO_CACHE, "WWW-Authenticate": 'Bearer realm="agentspan"'},
    )


def _inside(root: Path, relative: str) -> Path | None:
    """The file ``relative`` names under ``root``, or ``None`` if it is not a file inside ``root``."""
    parts = relative.split("/")
    if any(part in ("", ".", "..") or "\\" in part or "\0" in part for part in parts):
        return None
    try:
        found = (root / relative).resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    # A symbolic link out of the folder resolves outside it: refused like a '..'.
    if not found.is_relative_to(root.resolve()) or not found.is_file():
        return None
    return found


def install_ui(app: FastAPI, static_dir: Path) -> None:
    """Serve the UI in ``static_dir`` (its ``index.html`` and assets) at ``/`` and under ``/ui/``."""
    root = Path(static_dir)

    def index() -> Response:
        page = root / "index.html"
        if not page.is_file():
            raise NotFoundError(f"the UI is not installed: {page} is missing")
        return FileResponse(page, media_type=MEDIA_TYPES[".html"], headers={**SECURITY_HEADERS, **_NO_CACHE})

    async def spa(request: Request) -> Response:
        return index()

    async def asset(request: Request) -> Response:
        relative: str = request.path_params["path"]
        found = _inside(root, relative)
        media_type = None if found is None else MEDIA_TYPES.get(found.suffix.lower())
        if found is None or media_type is None:
            raise NotFoundError(f"the UI has no file {relative!r}")
        cache = _NO_CACHE if found.suffix.lower() == ".html" else _ASSET_CACHE
        return FileResponse(found, media_type=media_type, headers={**SECURITY_HEADERS, **cache})

    async def login_script(request: Request) -> Response:
        return FileResponse(_LOGIN_JS, media_type=MEDIA_TYPES[".js"], headers={**SECURITY_HEADERS, **_NO_CACHE})

    # Starlette routes, so HEAD is answered too; none of them is in the OpenAPI document.
    routes = app.router
    routes.add_route("/", spa, methods=["GET"], include_in_schema=False)
    routes.add_route("/ui", spa, methods=["GET"], include_in_schema=False)
    routes.add_route(LOGIN_SCRIPT_PATH, login_script, methods=["GET"], include_in_schema=False)
    routes.add_route("/ui/static/{path:path}", asset, methods=["GET"], include_in_schema=False)
    routes.add_route("/ui/{path:path}", spa, methods=["GET"], include_in_schema=False)

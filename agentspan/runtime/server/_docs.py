"""``/api/docs``: Swagger UI served from the package itself, so the docs work offline.

FastAPI's own docs page loads Swagger UI from a CDN; a developer without network (or behind a
proxy that blocks it) would get a blank page. The assets ship under ``static/swagger-ui`` (see its
``VERSION`` file), and the page references nothing but this server.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, Response

from ...errors import NotFoundError

__all__ = ["ASSETS", "install_docs"]

_STATIC = Path(__file__).parent / "static" / "swagger-ui"
ASSETS: dict[str, str] = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
"""The files under ``/api/docs/static/`` and their media types; nothing else is served from there."""

_CACHE = {"Cache-Control": "public, max-age=86400"}


def install_docs(app: FastAPI, *, docs_url: str, openapi_url: str, title: str) -> None:
    """Serve Swagger UI for ``openapi_url`` at ``docs_url``, its assets under ``docs_url/static/``."""
    static = f"{docs_url}/static"

    async def docs(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{title} - API docs",
            swagger_js_url=f"{static}/swagger-ui-bundle.js",
            swagger_css_url=f"{static}/swagger-ui.css",
            swagger_favicon_url=f"{static}/favicon-32x32.png",
            # No online validator badge: it would send the document to a third-party service.
            swagger_ui_parameters={"validatorUrl": None, "deepLinking": True},
        )

    async def asset(request: Request) -> Response:
        name: str = request.path_params["name"]
        media_type = ASSETS.get(name)
        if media_type is None:
            raise NotFoundError(f"no docs asset named {name!r}")
        return FileResponse(_STATIC / name, media_type=media_type, headers=_CACHE)

    app.add_api_route(docs_url, docs, methods=["GET"], include_in_schema=False)
    app.add_api_route(f"{static}/{{name}}", asset, methods=["GET"], include_in_schema=False)

"""``/api/docs`` works without network: the page references only this server, which serves the assets."""

from __future__ import annotations

import re

import httpx
import pytest

from agentspan.testing import ServerHandle

_ATTRIBUTE_URL = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")
_OPENAPI_URL = re.compile(r"""url:\s*["']([^"']+)["']""")


def _origin(server: ServerHandle) -> str:
    return f"http://127.0.0.1:{server.port}"


def test_docs_page_references_only_same_origin_urls(http_server: ServerHandle) -> None:
    page = httpx.get(f"{http_server.url}/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    html = page.text
    assert "SwaggerUIBundle" in html
    assert "http://" not in html and "https://" not in html, "the page names another site"
    urls = _ATTRIBUTE_URL.findall(html) + _OPENAPI_URL.findall(html)
    assert len(urls) >= 4  # stylesheet, icon, script, document
    for url in urls:
        assert url.startswith("/") and not url.startswith("//"), url


def test_every_url_of_the_docs_page_is_served(http_server: ServerHandle) -> None:
    html = httpx.get(f"{http_server.url}/docs").text
    kinds = set()
    for url in _ATTRIBUTE_URL.findall(html) + _OPENAPI_URL.findall(html):
        response = httpx.get(_origin(http_server) + url)
        assert response.status_code == 200, url
        content_type = response.headers["content-type"]
        kinds.add(content_type.split(";")[0])
        if url.endswith(".js"):
            assert content_type.startswith("text/javascript")
            assert b"SwaggerUIBundle" in response.content and len(response.content) > 100_000
        if url.endswith(".css"):
            assert content_type.startswith("text/css") and b".swagger-ui" in response.content
    assert {"text/javascript", "text/css", "image/png", "application/json"} <= kinds


@pytest.mark.parametrize("name", ["nope.js", "..%2F_docs.py", "LICENSE", "%2e%2e%2f%2e%2e%2f_app.py"])
def test_only_the_docs_assets_are_served(http_server: ServerHandle, name: str) -> None:
    response = httpx.get(f"{http_server.url}/docs/static/{name}")
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "NotFoundError"

"""The web UI as the server serves it: the single page at ``/`` and under ``/ui/``, its files with
their media types and caching, nothing outside its folder, a strict Content-Security-Policy; and, with
an auth token, the login page and the session cookie that opens every route a bearer token opens,
while cross-site requests stay refused. Real uvicorn on a loopback port, a temporary UI folder."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Route

from agentspan.runtime import Service
from agentspan.runtime.server._app import create_app
from agentspan.runtime.server._auth import session_value
from agentspan.runtime.server._ui import SECURITY_HEADERS
from agentspan.testing import ServerHandle, serve_in_thread

TOKEN = "s3cret-token"
CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; connect-src 'self';"
    " frame-ancestors 'none'"
)
INDEX = "<!doctype html><title>Agentspan UI</title><script src='/ui/static/app.js'></script>"


@pytest.fixture
def ui_dir(tmp_path: Path) -> Path:
    """A UI folder with a page and a few assets, next to a file that must never be served."""
    root = tmp_path / "ui"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text(INDEX)
    (root / "app.js").write_text("console.log('ui');")
    (root / "app.js.map").write_text("{}")
    (root / "assets" / "style.css").write_text("body{}")
    (root / "assets" / "logo.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'/>")
    (root / "assets" / "font.woff2").write_bytes(b"wOF2")
    (root / "notes.exe").write_bytes(b"MZ")
    (tmp_path / "secret.txt").write_text("TOP SECRET")
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    return root


@pytest.fixture
def open_server(service: Service, ui_dir: Path) -> Iterator[ServerHandle]:
    with serve_in_thread(service, ui_dir=ui_dir) as server:
        yield server


@pytest.fixture
def locked_server(service: Service, ui_dir: Path) -> Iterator[ServerHandle]:
    with serve_in_thread(service, auth_token=TOKEN, ui_dir=ui_dir) as server:
        yield server


def root_of(server: ServerHandle) -> str:
    return f"http://127.0.0.1:{server.port}"


@pytest.fixture
def web(open_server: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=root_of(open_server), timeout=30) as client:
        yield client


@pytest.fixture
def locked(locked_server: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=root_of(locked_server), timeout=30) as client:
        yield client


def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """A GET of ``target`` exactly as written (httpx would normalise the dots away)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data


def assert_security_headers(response: httpx.Response) -> None:
    assert response.headers["content-security-policy"] == CSP
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"


# --- serving ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/ui", "/ui/", "/ui/executions/0123abcd", "/ui/approvals", "/ui/a/b/c?x=1"])
def test_the_page_answers_every_ui_route(web: httpx.Client, path: str) -> None:
    response = web.get(path)
    assert response.status_code == 200 and response.text == INDEX
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert_security_headers(response)


@pytest.mark.parametrize(
    ("path", "media_type"),
    [
        ("/ui/static/app.js", "text/javascript; charset=utf-8"),
        ("/ui/static/app.js.map", "application/json"),
        ("/ui/static/assets/style.css", "text/css; charset=utf-8"),
        ("/ui/static/assets/logo.svg", "image/svg+xml"),
        ("/ui/static/assets/font.woff2", "font/woff2"),
    ],
)
def test_assets_are_served_with_their_media_type_and_cached_for_an_hour(
    web: httpx.Client, path: str, media_type: str
) -> None:
    response = web.get(path)
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type
    assert response.headers["cache-control"] == "public, max-age=3600"
    assert_security_headers(response)


def test_the_page_itself_under_static_is_not_cached(web: httpx.Client) -> None:
    response = web.get("/ui/static/index.html")
    assert response.status_code == 200 and response.headers["cache-control"] == "no-cache"


@pytest.mark.parametrize(
    "target",
    [
        "/ui/static/../secret.txt",
        "/ui/static/..%2fsecret.txt",
        "/ui/static/%2e%2e/secret.txt",
        "/ui/static/assets/../../secret.txt",
        "/ui/static//etc/passwd",
        "/ui/static/link.txt",  # a symbolic link out of the folder
        "/ui/static/notes.exe",  # not a type the UI has
        "/ui/static/missing.js",
        "/ui/static/assets",
    ],
)
def test_nothing_outside_the_ui_folder_nor_of_an_unknown_type_is_served(open_server: ServerHandle, target: str) -> None:
    status, data = raw_get(open_server.port, target)
    assert status in (400, 404), data
    assert b"TOP SECRET" not in data and b"root:" not in data and b"MZ" not in data.split(b"\r\n\r\n", 1)[1]


def test_the_api_health_and_docs_are_unchanged_and_ui_routes_are_not_in_the_schema(
    web: httpx.Client, service: Service
) -> None:
    assert web.get("/health").json() == {"status": "ok"}
    created = web.post("/api/executions", json={"name": "fn"})
    assert created.status_code == 201
    assert web.get("/api/executions").json()["items"][0]["id"] == created.json()["id"]
    assert web.get("/api/docs").status_code == 200
    assert web.get("/api/nothing").status_code == 404
    assert web.get("/elsewhere").status_code == 404
    paths = web.get("/api/openapi.json").json()["paths"]
    assert "/api/session" in paths
    assert not [p for p in paths if p == "/" or p.startswith("/ui")]
    # The per-step write (answered in front of FastAPI) still works.
    claim = service.claim("w1", ["fn"])
    assert claim is not None
    step = {"type": "step", "key": "s1", "kind": "tool", "name": "t", "status": "completed", "output": 1}
    written = web.post(
        f"/api/executions/{claim.execution.id}/records",
        json={"worker_id": "w1", "epoch": claim.epoch, "records": [step]},
    )
    assert written.status_code == 200 and written.json()["written"] == 1


def test_a_server_without_a_ui_answers_404_at_the_root(service: Service) -> None:
    with serve_in_thread(service, ui_dir=None) as server, httpx.Client(base_url=root_of(server)) as web:
        assert web.get("/").status_code == 404
        assert web.get("/ui/executions/x").status_code == 404
        assert web.get("/health").status_code == 200


def test_a_ui_folder_without_its_page_says_so(service: Service, tmp_path: Path) -> None:
    with serve_in_thread(service, ui_dir=tmp_path / "empty") as server, httpx.Client(base_url=root_of(server)) as web:
        response = web.get("/")
    assert response.status_code == 404 and "index.html" in response.json()["error"]["message"]


# --- sessions without a token ----------------------------------------------------------------------------
def test_without_a_token_there_is_nothing_to_log_in_to(web: httpx.Client) -> None:
    assert web.get("/api/session").json() == {"auth_required": False, "authenticated": True}
    response = web.post("/api/session", json={"token": "anything"})
    assert response.status_code == 204 and "set-cookie" not in response.headers


# --- sessions with a token -------------------------------------------------------------------------------
def login(client: httpx.Client, token: str = TOKEN, **headers: str) -> httpx.Response:
    return client.post("/api/session", json={"token": token}, headers=headers)


def test_the_right_token_sets_an_httponly_strict_cookie_that_is_not_the_token(locked: httpx.Client) -> None:
    assert locked.get("/api/session").json() == {"auth_required": True, "authenticated": False}
    response = login(locked)
    assert response.status_code == 204
    cookie = response.headers["set-cookie"]
    name, _, rest = cookie.partition("=")
    value, *attributes = [part.strip() for part in rest.split(";")]
    assert name == "agentspan_session" and value == session_value(TOKEN)
    assert re.fullmatch(r"[0-9a-f]{64}", value) and TOKEN not in cookie
    assert set(attributes) == {"HttpOnly", "SameSite=Strict", "Path=/"}
    assert locked.get("/api/session").json() == {"auth_required": True, "authenticated": True}
    assert locked.get("/api/executions").status_code == 200
    assert locked.get("/").text == INDEX
    assert locked.get("/api/docs").status_code == 200


def test_the_cookie_is_secure_when_the_request_came_over_https(locked: httpx.Client) -> None:
    # uvicorn trusts X-Forwarded-Proto from a proxy on 127.0.0.1, as from a TLS-terminating proxy.
    response = login(locked, **{"X-Forwarded-Proto": "https"})
    assert response.status_code == 204 and "Secure" in response.headers["set-cookie"].split("; ")


def test_a_wrong_token_is_401_with_the_usual_error_body_and_sets_nothing(locked: httpx.Client) -> None:
    response = login(locked, "not-the-token")
    assert response.status_code == 401 and "set-cookie" not in response.headers
    assert response.json()["error"]["type"] == "UnauthorizedError"
    assert "token" in response.json()["error"]["message"]
    assert locked.get("/api/executions").status_code == 401


def test_a_forged_or_stale_cookie_is_refused(locked: httpx.Client) -> None:
    for value in (TOKEN, session_value("another-token"), "", "x" * 64):
        locked.cookies.set("agentspan_session", value)
        response = locked.get("/api/executions")
        assert response.status_code == 401, value
    assert "session cookie" in response.json()["error"]["message"]


def test_logging_out_clears_the_cookie(locked: httpx.Client) -> None:
    assert login(locked).status_code == 204
    response = locked.delete("/api/session")
    assert response.status_code == 204
    assert (
        response.headers["set-cookie"].startswith("agentspan_session=;")
        and "Max-Age=0" in response.headers["set-cookie"]
    )
    assert locked.get("/api/executions").status_code == 401


def test_a_page_load_without_credentials_gets_the_login_page(locked: httpx.Client) -> None:
    for path in ("/", "/ui/executions/abc", "/ui/static/app.js"):
        response = locked.get(path)
        assert response.status_code == 401, path
        assert response.headers["content-type"].startswith("text/html")
        assert_security_headers(response)
        page = response.text
        assert 'data-testid="login-token"' in page and 'type="password"' in page
        assert 'data-testid="login-submit"' in page
        assert '<script src="/ui/login.js"></script>' in page
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "no inline script: the policy forbids it"
    script = locked.get("/ui/login.js")
    assert script.status_code == 200 and script.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "/api/session" in script.text and "reload" in script.text
    assert_security_headers(script)


def _concrete(path: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", path)


def _routes(service: Service, ui_dir: Path) -> list[tuple[str, str]]:
    """Every (method, path) the app serves under ``/api`` and at ``/``: what its OpenAPI document lists
    (every router's routes) and the routes it keeps out of the document (docs, UI)."""
    app = create_app(service, auth_token=TOKEN, ui_dir=ui_dir)
    pairs = {(method.upper(), path) for path, operations in app.openapi()["paths"].items() for method in operations}
    pairs |= {
        (method, route.path)
        for route in app.router.routes
        if isinstance(route, Route)
        for method in route.methods or ()
    }
    found = {(method, _concrete(path)) for method, path in pairs if method != "HEAD"} - {("GET", "/health")}
    return sorted((method, path) for method, path in found if path.startswith("/api/") or path == "/")


OPEN = {("GET", "/api/health"), ("GET", "/api/session"), ("POST", "/api/session"), ("DELETE", "/api/session")}


def test_every_route_refuses_without_credentials_and_opens_with_the_cookie_or_the_bearer(
    locked_server: ServerHandle, service: Service, ui_dir: Path
) -> None:
    routes = _routes(service, ui_dir)
    assert len(routes) > 20 and ("POST", "/api/executions/x/records") in routes and ("GET", "/") in routes

    def call(client: httpx.Client, method: str, path: str) -> httpx.Response:
        kwargs: dict[str, Any] = {"json": {}} if method in ("POST", "PUT") else {}
        return client.request(method, path, **kwargs)

    with (
        httpx.Client(base_url=root_of(locked_server), timeout=30) as anonymous,
        httpx.Client(base_url=root_of(locked_server), timeout=30) as browser,
        httpx.Client(
            base_url=root_of(locked_server), timeout=30, headers={"Authorization": f"Bearer {TOKEN}"}
        ) as bearer,
    ):
        assert login(browser).status_code == 204
        for method, path in routes:
            refused = call(anonymous, method, path)
            if (method, path) in OPEN:
                assert refused.status_code != 401, (method, path)
                continue
            assert refused.status_code == 401, (method, path, refused.text)
            for client in (browser, bearer):
                answered = call(client, method, path)
                assert answered.status_code != 401, (method, path, answered.text)
                assert answered.status_code < 500, (method, path, answered.text)


def test_a_cross_site_form_post_with_the_valid_cookie_is_refused(locked: httpx.Client, service: Service) -> None:
    assert login(locked).status_code == 204
    evil = {"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"}
    response = locked.post("/api/executions", content=b"name=fn", headers=evil)
    assert response.status_code in (403, 415)
    json_from_evil = locked.post("/api/executions", json={"name": "fn"}, headers={"Origin": "http://evil.example"})
    assert json_from_evil.status_code == 403
    login_from_evil = login(locked, Origin="http://evil.example")
    assert login_from_evil.status_code == 403 and "set-cookie" not in login_from_evil.headers
    assert service.list_executions().items == []
    same_site = locked.post(
        "/api/executions", json={"name": "fn"}, headers={"Origin": str(locked.base_url).rstrip("/")}
    )
    assert same_site.status_code == 201, same_site.text


def test_security_headers_constant_is_the_documented_policy() -> None:
    assert SECURITY_HEADERS["Content-Security-Policy"] == CSP

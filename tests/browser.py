"""Browser tests on Debian's Chromium (``/usr/bin/chromium``, nothing downloaded), offline.

The ``browser`` fixture (one Chromium for the session) and the ``page`` fixture (a fresh context and page
per test) skip the test, saying why, when Playwright or Chromium is missing. Every request that is not
to the loopback interface is aborted and its URL kept in :attr:`OfflinePage.refused`, so a test can
assert that the page tried none. :meth:`OfflinePage.screenshot` saves PNGs under ``$UI_SCREENSHOTS``
(default ``tests/screenshots``, ignored by git). Tests that use the fixtures run after all others (see
:func:`pytest_collection_modifyitems`); inside them, do not call ``asyncio.run`` on the main thread.

``conftest.py`` registers this module as a plugin, so every test can ask for ``browser`` and ``page``.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, Route

__all__ = ["BROWSER_FIXTURES", "CHROMIUM_ARGS", "OfflinePage", "browser", "chromium_path", "page", "screenshots_dir"]

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
"""Headless, and none of Chromium's own calls home (updates, sync, first-run pages)."""

LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
"""The hosts a page may reach; every other request is aborted."""


def chromium_path() -> str | None:
    """Debian's Chromium (``$CHROMIUM`` if set), or ``None`` when it is not installed."""
    return os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def screenshots_dir() -> Path:
    """Where screenshots go: ``$UI_SCREENSHOTS``, else ``tests/screenshots``."""
    return Path(os.environ.get("UI_SCREENSHOTS") or Path(__file__).parent / "screenshots")


class OfflinePage:
    """A Playwright page whose context may reach only the loopback interface.

    Attributes:
        page: The Playwright ``Page``.
        refused: The URLs of the requests that were aborted because they left the machine, in order.
    """

    def __init__(self, page: Page) -> None:
        self.page = page
        self.refused: list[str] = []
        page.context.route("**/*", self._route)

    def _route(self, route: Route) -> None:
        url = route.request.url
        scheme, host = urlsplit(url).scheme, urlsplit(url).hostname
        if scheme in ("data", "blob", "about") or host in LOCAL_HOSTS:
            route.continue_()
        else:
            self.refused.append(url)
            route.abort("blockedbyclient")

    def screenshot(self, name: str, **options: Any) -> Path:
        """Save a PNG of the page as ``<screenshots_dir>/<name>.png`` and return its path."""
        folder = screenshots_dir()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
        self.page.screenshot(path=str(path), **options)
        return path

    def __getattr__(self, name: str) -> Any:
        return getattr(self.page, name)  # goto, locator... straight to the Playwright page


BROWSER_FIXTURES = frozenset({"browser", "page"})


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the browser tests last. Playwright's sync API keeps an event loop running on the main thread
    while it is alive (the session-scoped ``browser``): ``asyncio.run`` in a later test would fail."""
    items.sort(key=lambda item: bool(BROWSER_FIXTURES & set(getattr(item, "fixturenames", ()))))


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the session; skips when Playwright or Chromium is not installed."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("browser tests need Playwright for Python: pip install -e '.[dev]'")
    executable = chromium_path()
    if executable is None:
        pytest.skip("browser tests need Debian's Chromium: apt-get install chromium (no browser is downloaded)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[OfflinePage]:
    """A fresh browser context and page that can reach only 127.0.0.1/localhost (see :class:`OfflinePage`)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield OfflinePage(context.new_page())
    finally:
        context.close()

"""What every command shares: reaching the runtime, loading user code, saying what went wrong."""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import shutil
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

from ..client import Client

__all__ = ["UsageError", "connect", "fail", "import_target", "load_functions", "server_url"]


class UsageError(Exception):
    """A mistake in the command line (exit code 2, one line, no traceback)."""


def fail(message: str) -> NoReturn:
    """Stop with ``agentspan: message`` on stderr and exit code 2 (the user's input is wrong)."""
    raise UsageError(message)


def server_url(args: argparse.Namespace) -> str | None:
    """--server, else ``AGENTSPAN_SERVER_URL``; a URL whose path does not end in ``/api`` gets a hint."""
    url: str | None = getattr(args, "server", None) or os.environ.get("AGENTSPAN_SERVER_URL")
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        fail(f"the server URL {url!r} is not an http(s) URL; e.g. http://127.0.0.1:6767/api")
    if not parts.path.rstrip("/").endswith("/api"):
        suggested = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}/api"
        print(
            f"agentspan: hint: the server URL {url} does not end in /api, where the API lives; try {suggested}",
            file=sys.stderr,
        )
    return url


INTERACTIVE_GIVE_UP_SECONDS = 10.0
"""How long a command someone waits on retries a server that does not answer (a worker waits forever)."""


def connect(args: argparse.Namespace, *, reading: bool = False, interactive: bool = True) -> Client:
    """The server named by --server or AGENTSPAN_SERVER_URL, else the embedded database.

    ``reading``: the command only reads or changes existing executions, so a database file that does
    not exist is a mistake (a wrong --db path), not a database to create. ``interactive``: a person
    waits on the command, so an unreachable server is reported after
    :data:`INTERACTIVE_GIVE_UP_SECONDS` of retries rather than the client's default 60 s.
    """
    url = server_url(args)
    if url:
        from ..client import HttpClient, RetryPolicy

        if interactive:
            return HttpClient(url, retry=RetryPolicy(give_up_after=INTERACTIVE_GIVE_UP_SECONDS))
        return HttpClient(url)
    from ..durable import default_db_path
    from ..runtime import Service, SQLiteStore

    db = Path(getattr(args, "db", None) or default_db_path())
    if reading and not db.exists():
        where = "--db" if getattr(args, "db", None) else "the default database (--db, $AGENTSPAN_DB)"
        fail(f"no database at {db} ({where}): nothing has run with it yet; check the path, or pass --server URL")
    try:
        return Service(SQLiteStore(db))
    except (OSError, sqlite3.Error) as exc:
        fail(f"cannot open the database {db}: {exc}")


def import_target(target: str) -> Any:
    """The object ``module:attribute`` names, importing the module from the current directory; one clear
    line (exit code 2) when the module cannot be imported or lacks the attribute."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        fail(f"{target!r} is not module:attribute (e.g. myapp.flows:checkout)")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        fail(f"cannot import {module_name!r}: {exc}")
    except Exception as exc:  # the module itself raised while importing: name it, in one line
        fail(f"importing {module_name!r} failed: {type(exc).__name__}: {exc}")
    try:
        return getattr(module, attr)
    except AttributeError:
        fail(f"module {module_name!r} has no attribute {attr!r}")


def load_functions(target: str) -> list[Callable[..., Any]]:
    """``module:attr`` → the durable functions it names (a function, an agent, or a list of them)."""
    found = import_target(target)
    items = list(found) if isinstance(found, list | tuple) else [found]
    return [_as_function(item) for item in items]


def _as_function(item: Any) -> Callable[..., Any]:
    """Agents, compiled graphs, SDK agents, crews and flows, ADK agents and apps become the durable function their worker runs; durable functions stay."""
    from ..agents import Agent
    from ..agents._runtime import is_framework_agent

    # Compiled LangGraph graphs, OpenAI Agents SDK agents, CrewAI crews and flows and Google ADK agents and
    # apps are served under their name.
    if isinstance(item, Agent) or is_framework_agent(item):
        from ..agents._runtime import durable_function

        return durable_function(item)
    return item  # type: ignore[no-any-return]


def command_name() -> str:
    """How to call this CLI again as it was called: ``agentspan`` when that is what the shell finds,
    else the path it was started by (``.venv/bin/agentspan`` without an activated venv)."""
    invoked = sys.argv[0]
    found = shutil.which("agentspan")
    if found is not None and os.path.realpath(found) == os.path.realpath(invoked):
        return "agentspan"
    if os.path.basename(invoked) == "agentspan" and os.path.exists(invoked):
        return shlex.quote(invoked)
    return "agentspan"

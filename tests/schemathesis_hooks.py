"""Schemathesis hooks for ``test_openapi_fuzz.py`` (loaded through ``SCHEMATHESIS_HOOKS``).

They keep the run short without hiding anything from the checks: long polls the document allows (up
to 300 s) are cut to a fraction of a second, and a cursor of the right shape is replaced by one the
server issued (a cursor is opaque: the document cannot say which strings the server issued).
Values outside the documented ranges are left alone, so negative cases stay negative.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import httpx
import schemathesis

_SHORT = 0.05


def _short(value: Any, limit: float) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool) and 0 < value <= limit:
        return min(value, _SHORT)
    return value


def _describe_lambdas_one_at_a_time() -> None:
    """Let hypothesis describe one filter lambda at a time in this process.

    Describing a lambda the first time parses the source file it is in (per thread); two workers
    parsing schemathesis' large coverage module at once can fail in CPython 3.11 with "AST constructor
    recursion depth mismatch" (concurrent ``ast.parse``, CPython gh-106905), reported as a runtime
    error of whichever operation was being generated.
    """
    from hypothesis.internal import lambda_sources

    describe = lambda_sources._lambda_description
    lock = threading.Lock()

    def one_at_a_time(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return describe(*args, **kwargs)

    lambda_sources._lambda_description = one_at_a_time


_describe_lambdas_one_at_a_time()


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    path = case.operation.path
    if path.endswith("/events") and isinstance(case.query, dict) and "wait" in case.query:
        case.query["wait"] = _short(case.query["wait"], 300)
    if path.endswith("/claims") and isinstance(case.body, dict) and "wait_seconds" in case.body:
        case.body["wait_seconds"] = _short(case.body["wait_seconds"], 300)
    if path.endswith("/executions") and case.method.upper() == "GET" and isinstance(case.query, dict):
        cursor = case.query.get("cursor")
        if isinstance(cursor, str) and cursor:
            case.query["cursor"] = os.environ["AGENTSPAN_FUZZ_CURSOR"]


def issued_cursor(api_url: str) -> str:
    """A real ``next_cursor``: two executions listed one per page."""
    with httpx.Client(base_url=api_url, timeout=10) as http:
        for n in range(2):
            http.post("/executions", json={"name": "fuzz-seed", "input": {"n": n}}).raise_for_status()
        cursor: str = http.get("/executions", params={"limit": 1}).json()["next_cursor"]
    return cursor

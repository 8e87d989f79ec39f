"""One event loop per process for the async executions of every worker in it.

Async clients are shared process-wide by the frameworks (the OpenAI Agents SDK's default client keeps one
``httpx`` connection pool for the whole process), and a connection pool belongs to the loop that opened
its connections. So async executions run on one loop that lives as long as the process, in a thread of
its own, whatever worker (or ``AgentRuntime``) runs them: a second runtime in the same process, or a
worker started after another stopped, finds the pool's loop still alive.

Each coroutine runs in a copy of the calling thread's context, so the durable context the worker
activated is the coroutine's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import os
import threading
from collections.abc import Coroutine
from typing import Any

__all__ = ["run_async"]

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None
_pid: int | None = None


def _process_loop() -> asyncio.AbstractEventLoop:
    global _loop, _pid
    with _lock:
        if _loop is None or _pid != os.getpid() or _loop.is_closed():  # a forked child starts its own
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="agentspan-async", daemon=True).start()
            _loop, _pid = loop, os.getpid()
        return _loop


def run_async(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run ``coro`` on the process's loop and return its result (or raise its error) in this thread."""
    loop = _process_loop()
    context = contextvars.copy_context()
    done: concurrent.futures.Future[Any] = concurrent.futures.Future()

    async def outcome() -> None:
        try:
            result = await coro
        except BaseException as exc:
            done.set_exception(exc)
        else:
            done.set_result(result)

    loop.call_soon_threadsafe(lambda: loop.create_task(outcome(), context=context))
    return done.result()

"""What a caller in this process hands to the run of its execution, and gets back from it.

The drop-in :class:`~._runner.Runner` starts an execution and a worker thread of this process runs it.
The SDK's objects that are not JSON (``context``, ``hooks``, ``run_config``) go to that run through
this registry, keyed by execution id, and the run's own ``RunResult`` (or exception) comes back the
same way, with the stream events when the caller streams. A run without an entry here (resumed by
another process) runs with the agent's defaults and hands nothing back.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["END", "LiveCall", "find", "forget", "registering"]

END = object()
"""Put on a stream after the run's last event here."""


@dataclasses.dataclass
class LiveCall:
    """One caller's options for the run of its execution, and what the run hands back."""

    options: dict[str, Any]
    """Keyword arguments for the SDK's ``Runner`` (``context``, ``hooks``, ``max_turns``...)."""
    run_config: Any = None
    stream: asyncio.Queue[Any] | None = None
    """Where stream events go (on the caller's event loop), when the caller streams."""
    loop: asyncio.AbstractEventLoop | None = None
    result: Any = None
    """The SDK's result: final, or stopped at tool calls waiting for approval."""
    error: BaseException | None = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    """Set when the run stops in this process (finished, failed, or waiting for approval)."""

    def finish(self, result: Any = None, error: BaseException | None = None) -> None:
        """The run stopped here: hand over its result (or error) and end the caller's stream."""
        self.result = result
        self.error = error
        self.done.set()
        self.emit(END)

    def emit(self, item: Any) -> None:
        """Hand a stream event (or :data:`END`) to the caller's loop; dropped when the caller is gone."""
        if self.stream is None or self.loop is None:
            return
        try:
            self.loop.call_soon_threadsafe(self.stream.put_nowait, item)
        except RuntimeError:  # the caller's loop is closed
            self.stream = None


_lock = threading.Lock()
_calls: dict[str, LiveCall] = {}


@contextmanager
def registering() -> Iterator[dict[str, LiveCall]]:
    """Hold the registry while an execution is created and its call entered, so that a worker thread
    that claims the execution at once still finds the entry."""
    with _lock:
        yield _calls


def find(execution_id: str) -> LiveCall | None:
    """The call registered for ``execution_id`` in this process, if any."""
    with _lock:
        return _calls.get(execution_id)


def forget(execution_id: str) -> None:
    """Drop the entry (the caller has what it waited for)."""
    with _lock:
        _calls.pop(execution_id, None)

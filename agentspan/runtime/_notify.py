"""In-process wake-ups for long polls: a waiter sleeps until its topic changes, with no polling loop."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict

__all__ = ["Notifier"]

_MAX_TOPICS = 10_000


class Notifier:
    """Versioned topics that threads and asyncio tasks can wait on.

    ``version(topic)`` is read before checking the store; ``wait(topic, seen, timeout)`` then returns as
    soon as the topic was notified after that read, so a notification between the check and the wait
    is never missed.
    """

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._versions: dict[str, int] = defaultdict(int)
        self._async: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Event]]] = defaultdict(set)

    def version(self, topic: str) -> int:
        """The topic's current version."""
        with self._cond:
            return self._versions[topic]

    def waiting(self) -> int:
        """How many asyncio waits are under way (for tests and diagnostics)."""
        with self._cond:
            return sum(len(waiters) for waiters in self._async.values())

    def notify(self, *topics: str) -> None:
        """Wake every waiter of the given topics."""
        with self._cond:
            if len(self._versions) > _MAX_TOPICS:
                # Forget old topics. A waiter on a forgotten topic sees its version change and
                # wakes once, spuriously; callers re-check the store, so that is harmless.
                self._versions = defaultdict(int)
            for topic in topics:
                self._versions[topic] += 1
                for loop, event in self._async.get(topic, ()):
                    loop.call_soon_threadsafe(event.set)
            self._cond.notify_all()

    def wait(self, topic: str, seen: int, timeout: float) -> bool:
        """Block until ``topic`` moves past ``seen`` or ``timeout`` passes; True if it moved."""
        with self._cond:
            return self._cond.wait_for(lambda: self._versions[topic] != seen, timeout=max(timeout, 0.0))

    async def wait_async(self, topic: str, seen: int, seconds: float) -> bool:
        """The asyncio form of :meth:`wait`."""
        event = asyncio.Event()
        entry = (asyncio.get_running_loop(), event)
        with self._cond:
            if self._versions[topic] != seen:
                return True
            self._async[topic].add(entry)
        try:
            async with asyncio.timeout(max(seconds, 0.0)):
                await event.wait()
            return True
        except TimeoutError:
            return False
        finally:
            with self._cond:
                waiters = self._async.get(topic)
                if waiters is not None:
                    waiters.discard(entry)
                    if not waiters:
                        del self._async[topic]

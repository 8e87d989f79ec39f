"""How a client waits for a server that is unreachable, restarting or busy: capped, jittered backoff."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["Backoff", "RetryPolicy"]

log = logging.getLogger("agentspan.client")


@dataclass(frozen=True)
class RetryPolicy:
    """When and how long to retry a request that did not get through.

    Retried: connections that could not be made, and 503 answers (a locked database, a server
    shutting down; their ``Retry-After`` is honoured). Requests that are safe to repeat (all but
    creating an execution without an idempotency key) are also retried after a connection broke
    before the answer came, a timeout, or a proxy's 502 or 504.

    The delays grow ``initial_delay``, ×``multiplier``, ... up to ``max_delay``, each drawn at random
    between half and all of that (jitter, so that many workers do not come back in lock step).
    """

    initial_delay: float = 0.25
    """The first wait, in seconds."""
    max_delay: float = 10.0
    """No wait is longer than this."""
    multiplier: float = 2.0
    """Each wait is this many times the one before (before jitter)."""
    give_up_after: float | None = 60.0
    """Seconds after the first failure at which the error is raised instead; ``None`` retries forever."""

    def __post_init__(self) -> None:
        if self.initial_delay <= 0 or self.max_delay < self.initial_delay or self.multiplier < 1:
            raise ValueError(
                "a RetryPolicy needs 0 < initial_delay <= max_delay and multiplier >= 1, not"
                f" initial_delay={self.initial_delay}, max_delay={self.max_delay}, multiplier={self.multiplier}"
            )
        if self.give_up_after is not None and self.give_up_after < 0:
            raise ValueError(f"give_up_after must be >= 0 seconds or None, not {self.give_up_after}")


FOREVER = RetryPolicy(give_up_after=None)
"""The policy of a worker: it waits for its server however long it takes."""


class Backoff:
    """The retries of one request under ``policy``: call :meth:`wait` after each failure.

    Args:
        policy: The delays and the bound.
        sleep: Injectable for tests.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        sleep: Callable[[float], object] = time.sleep,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._policy = policy
        self._sleep = sleep
        self._rng = rng
        self._started = time.monotonic()
        self.attempt = 0

    def next_delay(self, retry_after: float | None = None) -> float | None:
        """The next wait in seconds, or None when the policy says to give up."""
        policy = self._policy
        self.attempt += 1
        base = min(policy.initial_delay * policy.multiplier ** (self.attempt - 1), policy.max_delay)
        delay = base * (0.5 + 0.5 * self._rng())
        if retry_after is not None:
            delay = min(max(delay, retry_after), policy.max_delay)
        if policy.give_up_after is not None:
            left = policy.give_up_after - (time.monotonic() - self._started)
            if left <= 0:
                return None
            delay = min(delay, left)
        return delay

    def wait(self, problem: str, retry_after: float | None = None) -> bool:
        """Log ``problem`` with the coming wait and sleep; False (no sleep) when it is time to give up."""
        delay = self.next_delay(retry_after)
        if delay is None:
            return False
        log.warning("%s, retrying in %.1f s (attempt %d)", problem, delay, self.attempt + 1)
        self._sleep(delay)
        return True

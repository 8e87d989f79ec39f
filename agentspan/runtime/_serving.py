"""Which names the runtime can run: deployed definitions, and the names workers ask for work by.

A worker announces what it serves with every claim (its long poll names them). The service remembers
each (worker, name) pair for a while after the poll ends, so "no worker serves X" can be said to a
user who starts X, instead of leaving the execution queued without a word. The memory is per
service (per server process): workers seen by another replica, or by another process on the same
SQLite file, are not in it.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict

__all__ = ["AgentStatus", "ServingRegistry"]

# How long after its last claim request ends a worker still counts as serving its names: a worker
# between two long polls, or running an execution, does not ask for work for a moment.
_GRACE_SECONDS = 30.0
_PRUNE_AT = 1024


class AgentStatus(BaseModel):
    """Whether a name can run: deployed, and how many workers serve it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    """The agent's (or durable function's) name."""
    deployed: bool
    """A definition with this name is deployed."""
    workers: int
    """Workers that asked this server for work by this name recently (or hold a lease on one)."""
    queued: int = 0
    """Executions of this name waiting for a worker."""

    @property
    def known(self) -> bool:
        """Deployed or served: starting it makes sense."""
        return self.deployed or self.workers > 0


class ServingRegistry:
    """In memory: the (worker, name) pairs seen in claims, each until a deadline (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._until: dict[tuple[str, str], float] = {}

    def saw(self, worker_id: str, names: Sequence[str], now: float, wait_seconds: float) -> None:
        """A claim by ``worker_id`` for ``names`` that may wait ``wait_seconds``."""
        until = now + wait_seconds + _GRACE_SECONDS
        with self._lock:
            if len(self._until) > _PRUNE_AT:  # worker ids change with every process: forget the gone ones
                self._prune(now)
            for name in names:
                self._until[(worker_id, name)] = until

    def workers(self, name: str, now: float) -> set[str]:
        """The workers serving ``name`` at ``now`` (forgetting the ones past their deadline)."""
        with self._lock:
            self._prune(now)
            return {worker for worker, served in self._until if served == name}

    def _prune(self, now: float) -> None:
        for key in [k for k, until in self._until.items() if until < now]:
            del self._until[key]

"""Decisions sent at awkward moments: several released in one instant, or one just after a claim."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from agentspan.runtime import Claim, Service, StepStatus


def at_once(*decisions: Callable[[], Any]) -> list[BaseException | None]:
    """Run each decision in its own thread, all released in the same instant by one barrier; returns
    what each raised (``None`` for those that returned)."""
    barrier = threading.Barrier(len(decisions))
    outcomes: list[BaseException | None] = [None] * len(decisions)

    def decide(position: int, fn: Callable[[], Any]) -> None:
        barrier.wait()
        try:
            fn()
        except BaseException as exc:  # reported by the test, not lost in the thread
            outcomes[position] = exc

    threads = [threading.Thread(target=decide, args=(i, d)) for i, d in enumerate(decisions)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


class DecidesAfterClaim:
    """The service, except that ``decide`` runs just after the first claim, while the worker replays a
    journal in which a call still waits (a race made certain). A Client in all but name."""

    def __init__(self, service: Service, decide: Callable[[], Any]) -> None:
        self._service = service
        self._decide: Callable[[], Any] | None = decide

    def __getattr__(self, name: str) -> Any:
        return getattr(self._service, name)

    def claim(self, worker_id: str, names: Sequence[str], **kwargs: Any) -> Claim | None:
        claim = self._service.claim(worker_id, names, **kwargs)
        if claim is not None and self._decide is not None:
            suspended = [s.key for s in claim.journal if s.status is StepStatus.SUSPENDED]
            assert suspended, "the claim's journal still has the undecided call suspended"
            self._decide, decide = None, self._decide
            decide()
        return claim

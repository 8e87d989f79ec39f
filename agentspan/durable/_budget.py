"""The budget gate of one execution: counts the usage of its model steps, and stops a model call from
starting once the budget is spent (failing the execution, or waiting for a raise).

Spent is the usage of every completed ``llm`` step in the journal the worker claimed, plus that of
the ``llm`` steps completed since: a replayed step is already in the journal and never completes
again, so it counts once, whichever worker replays it and however often.
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from ..errors import BudgetExceededError
from ..runtime import Budget, Step
from ..runtime._budget import BUDGET_PREFIX, budget_raises, raise_of, spend_of

if TYPE_CHECKING:
    from ._context import DurableContext

__all__ = ["BudgetGate"]

log = logging.getLogger("agentspan.budget")


def _wait_number(step: Step) -> int:
    number = step.name[len(BUDGET_PREFIX) :]
    return int(number) if number.isdigit() else 0


class BudgetGate:
    """Checks one execution's budget before each model call that will execute.

    Args:
        execution_id: The execution.
        budget: Its budget as it was started.
        journal: The journal of the claim.
    """

    def __init__(self, execution_id: str, budget: Budget, journal: list[Step]) -> None:
        self.execution_id = execution_id
        self.budget = budget
        self._prices = budget.price_table()
        self.spend = spend_of(journal, budget)
        self.limit = budget.raised_by(budget_raises(journal))
        waits = [_wait_number(s) for s in journal if s.kind == "budget"]
        self._next_wait = max(waits, default=0) + 1
        self._lock = threading.Lock()
        for model in sorted(self.spend.unpriced):
            self._say_unpriced(model)

    def _say_unpriced(self, model: str) -> None:
        log.info(
            "execution %s: no price for model %r; its tokens count toward the budget, its cost does not"
            " (give one with Budget(prices={...}))",
            self.execution_id,
            model,
        )

    def record(self, model: str, usage: dict[str, int] | None) -> None:
        """Count a model call that has just completed."""
        with self._lock:
            new = self.spend.add(model, usage, self._prices)
        if new:
            self._say_unpriced(model)

    def details(self, model: str) -> dict[str, Any]:
        """What a budget wait records: the spend and the limits, for whoever raises it."""
        with self._lock:
            return {
                "model": model,
                "spent_tokens": self.spend.tokens,
                "spent_cost_usd": round(self.spend.cost_usd, 10),
                "max_tokens": self.limit.max_tokens,
                "max_cost_usd": self.limit.max_cost_usd,
                "unpriced": sorted(self.spend.unpriced),
            }

    def check(self, ctx: DurableContext, model: str) -> None:
        """Return if a call to ``model`` may start; else fail with :class:`BudgetExceededError` or wait
        (suspend) for a raise, as the budget says."""
        while True:
            with self._lock:
                exhausted = self.spend.exhausts(self.limit)
            if not exhausted:
                return
            details = self.details(model)
            if self.budget.on_exhausted == "fail":
                raise BudgetExceededError(self._exceeded(details), execution_id=self.execution_id,
                                          tokens=details["spent_tokens"], cost_usd=details["spent_cost_usd"])  # fmt: skip
            payload = ctx.wait_for_signal(f"{BUDGET_PREFIX}{self._next_wait}", kind="budget", details=details)
            # Only a wait recorded as completed returns (a raise delivered before a replay): count it.
            self._next_wait += 1
            with self._lock:
                self.limit = self.limit.raised_by([raise_of(payload)])

    def _exceeded(self, details: dict[str, Any]) -> str:
        spent = [f"{details['spent_tokens']} tokens"]
        limits = []
        if details["max_tokens"] is not None:
            limits.append(f"max_tokens={details['max_tokens']}")
        if details["max_cost_usd"] is not None:
            spent.append(f"${details['spent_cost_usd']:.6f}")
            limits.append(f"max_cost_usd={details['max_cost_usd']}")
        return (
            f"the budget of execution {self.execution_id} is spent ({', '.join(spent)}; {', '.join(limits)}):"
            f" the model call to {details['model']} did not start; start the run with a larger Budget, or"
            " with on_exhausted='wait' to raise it while the run waits"
        )

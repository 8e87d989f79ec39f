"""Forking an execution from a step: which recorded steps the fork's journal starts with.

The fork runs again from the chosen step. Everything recorded before it that finished is copied, so
a worker replays it; the chosen step's ancestors (the sub-agent, node or task it runs inside) are
not, because they are still under way at that point and run again, replaying their earlier children
from the copies. Every store uses this one rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from ..errors import InvalidInputError, NotFoundError

__all__ = ["ForkPlan", "StepRef", "plan_fork"]

_FINISHED = frozenset({"completed", "failed"})


@dataclasses.dataclass(frozen=True, slots=True)
class StepRef:
    """What the rule needs to know about one recorded step."""

    seq: int
    key: str
    parent: str | None
    status: str
    superseded: bool = False


@dataclasses.dataclass(frozen=True, slots=True)
class ForkPlan:
    """The chosen step's position and the steps to copy, by ``seq`` in journal order."""

    seq: int
    copy: list[int]


def _where_to_look(execution_id: str) -> str:
    return (
        f"list its step keys with `agentspan executions show {execution_id} --full`"
        f" or GET /api/executions/{execution_id}/journal"
    )


def plan_fork(execution_id: str, step_key: str, steps: Iterable[StepRef]) -> ForkPlan:
    """The plan to fork ``execution_id`` from ``step_key``, given its steps (active and superseded) by ``seq``.

    Raises:
        NotFoundError: no step has that key.
        InvalidInputError: the step was superseded by a divergence (history, never replayed).
    """
    ordered = sorted(steps, key=lambda s: s.seq)
    active = {s.key: s for s in ordered if not s.superseded}
    chosen = active.get(step_key)
    if chosen is None:
        if any(s.key == step_key for s in ordered):
            raise InvalidInputError(
                f"step {step_key!r} of execution {execution_id} was superseded by a divergence: it is history,"
                f" never replayed, so there is nothing to fork from; fork from an active step ({_where_to_look(execution_id)})",
                execution_id=execution_id,
            )
        raise NotFoundError(
            f"execution {execution_id} has no step {step_key!r}; {_where_to_look(execution_id)}",
            execution_id=execution_id,
        )
    ancestors: set[str] = set()
    parent = chosen.parent
    while parent is not None and parent not in ancestors and parent in active:
        ancestors.add(parent)
        parent = active[parent].parent
    copied: set[str] = set()
    plan: list[int] = []
    for step in ordered:
        if step.superseded or step.seq >= chosen.seq or step.key in ancestors or step.status not in _FINISHED:
            continue
        if step.parent is not None and step.parent not in copied and step.parent not in ancestors:
            continue
        copied.add(step.key)
        plan.append(step.seq)
    return ForkPlan(seq=chosen.seq, copy=plan)

"""The service's approvals inbox: list, look up and decide every wait for a person.

A mixin of :class:`~agentspan.runtime.Service`, kept in its own module: it reads through the store's
inbox queries and decides only through ``send_signal``, which owns delivering a decision once.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import ConflictError, InvalidInputError, NotFoundError
from ._approval import APPROVAL_PREFIX
from ._inbox import (
    FRAMEWORKS,
    InboxDecision,
    InboxItem,
    InboxPage,
    InboxStatus,
    describe_decision,
    item_of,
    payload_for,
    split_inbox_id,
)
from ._models import validate

if TYPE_CHECKING:
    from ._models import Execution
    from .store import Store

__all__ = ["InboxMethods"]


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        shown = cursor if len(cursor) <= 60 else cursor[:60] + "..."
        raise InvalidInputError(
            f"cursor {shown!r} is not one this server issued; pass next_cursor from the previous page,"
            " or no cursor for the first page"
        )
    return int(cursor)


class InboxMethods:
    """``list_approvals``, ``get_approval`` and ``decide_approval`` of the runtime service."""

    store: Store

    if TYPE_CHECKING:

        def send_signal(self, execution_id: str, name: str, payload: Any = None) -> Execution: ...

    def list_approvals(
        self,
        *,
        execution_id: str | None = None,
        agent: str | None = None,
        framework: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> InboxPage:
        """The waits for a person not yet decided, across executions, oldest first.

        Args:
            execution_id: Only this execution's.
            agent: Only executions of this agent (its name).
            framework: Only this framework's: ``native``, ``openai_agents``, ``langgraph``, ``crewai``
                or ``google_adk``.
            limit: At most this many (1 to 1000).
            cursor: The ``next_cursor`` of the previous page.
        """
        if not 1 <= limit <= 1000:
            raise InvalidInputError(f"limit must be between 1 and 1000, not {limit}")
        if framework is not None and framework not in FRAMEWORKS:
            raise InvalidInputError(f"unknown framework {framework!r}; use one of {', '.join(FRAMEWORKS)}")
        rows = self.store.pending_waits(
            execution_id=execution_id, name=agent, framework=framework, limit=limit + 1, after_seq=_cursor(cursor)
        )
        items = [item_of(row) for row in rows[:limit]]
        more = len(rows) > limit
        return InboxPage(items=items, next_cursor=str(rows[limit - 1].step.seq) if more else None)

    def get_approval(self, approval_id: str) -> InboxItem:
        """One wait by its inbox id, pending or already decided; ``NotFoundError`` if unknown."""
        prefix = split_inbox_id(approval_id)
        if prefix is not None:
            for row in self.store.waits_of_executions(prefix):
                item = item_of(row)
                if item.id == approval_id:
                    return item
        raise NotFoundError(f"no approval with id {approval_id!r}; `agentspan approvals list` shows the pending ones")

    def decide_approval(self, approval_id: str, decision: InboxDecision | dict[str, Any]) -> InboxItem:
        """Decide the wait ``approval_id`` (approve, reject, respond) and return it, decided.

        The decision becomes the payload its kind of wait understands (see
        :func:`agentspan.runtime._inbox.payload_for`) and is delivered with ``send_signal``: recorded
        once, the execution queued again. Deciding again the same way returns the item unchanged.

        Raises:
            NotFoundError: no wait has this id.
            InvalidInputError: the decision does not fit this wait.
            ConflictError: it was decided differently already (the message names that decision), or
                its execution ended.
        """
        if not isinstance(decision, InboxDecision):
            decision = validate(InboxDecision, decision)
        item = self.get_approval(approval_id)
        payload = payload_for(item, decision)
        # send_signal owns approval decisions: a repeat is a no-op, a different one a 409 naming the first.
        if item.status is InboxStatus.DECIDED and not item.signal.startswith(APPROVAL_PREFIX):
            if _same(item.decision, payload):
                return item
            raise ConflictError(
                f"{item.id} was already decided: {describe_decision(item.decision)}; a decision is recorded once",
                execution_id=item.execution_id,
            )
        self.send_signal(item.execution_id, item.signal, payload)
        return self.get_approval(approval_id)


def _same(recorded: Any, payload: Any) -> bool:
    return json.dumps(recorded, sort_keys=True) == json.dumps(payload, sort_keys=True)

"""Tools marked ``needs_approval`` in the SDK: the run waits for a decision on the server.

When the SDK's runner stops at tool calls that need approval (``RunResult.interruptions``), each call
becomes a durable wait on the signal ``approval:<tool call id>``: the execution is suspended (no
process, no lease) until a decision is delivered through the runtime's API, then a worker replays the
run (completed calls return their recorded results), applies the decision with the SDK's own
``RunState.approve`` / ``RunState.reject`` and lets the runner continue. A rejection's reason reaches
the model as the tool's result.

The decision's form is :mod:`agentspan.runtime._approval`'s (checked when it is delivered).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ...durable._context import Suspended
from ...durable._definitions import _require
from ...errors import InvalidInputError
from ...runtime._approval import Decision, approval_signal, decision_of

__all__ = ["resolve_approvals"]

DEFAULT_REJECTION = "The user rejected this tool call."


def _wait(item: Any) -> Decision:
    call_id = str(getattr(item, "call_id", None) or "")
    if not call_id:
        raise InvalidInputError(f"tool {item.name!r} needs approval but its call has no id to approve it by")
    ctx = _require("approval")
    details = {
        "tool": item.name, "arguments": getattr(item, "arguments", None), "call_id": call_id,
        "framework": "openai_agents",  # for the approvals inbox
    }  # fmt: skip
    return decision_of(ctx.wait_for_signal(approval_signal(call_id), kind="approval", details=details))


async def resolve_approvals(
    result: Any, run_again: Callable[[Any], Awaitable[Any]], waiting: Callable[[Any], None] | None = None
) -> Any:
    """Wait (durably) for a decision on every tool call ``result`` stopped at, apply them and run on,
    until the run ends without interruptions; returns the final result. ``waiting`` is told of a result
    whose decisions are not all in yet, just before the execution is suspended for them."""
    while getattr(result, "interruptions", None):
        state = result.to_state()
        decisions: list[tuple[Any, Decision]] = []
        suspended: Suspended | None = None
        for item in result.interruptions:
            try:
                decisions.append((item, _wait(item)))
            except Suspended as exc:  # wait for every undecided call at once, so all are visible
                suspended = suspended or exc
        if suspended is not None:
            if waiting is not None:
                waiting(result)
            raise suspended
        for item, decision in decisions:
            if decision.approved:
                state.approve(item)
            else:
                state.reject(item, rejection_message=decision.reason or DEFAULT_REJECTION)
        result = await run_again(state)
    return result

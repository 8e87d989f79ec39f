"""Two approvals of one run decided at the same moment (two people clicking): both apply, once each.

The race: the first decision re-queues the run; a worker claims it and replays, finding the other call
still suspended in the journal it fetched; the second decision then resolves that step on the server;
the worker suspends it again on its way out. That late suspension once raised ``ConflictError`` in the
worker thread, which died and left the run "running" for good.
"""

from __future__ import annotations

import collections
import functools
from pathlib import Path
from typing import Any

import pytest
from agents import Agent, function_tool
from decisions import DecidesAfterClaim, at_once
from oa_flows import TurnModel

import agentspan.adapters.openai_agents as oa
from agentspan.agents import AgentHandle, AgentRuntime
from agentspan.runtime import ExecutionStatus, Service, StepStatus
from agentspan.runtime._approval import approval_signal
from agentspan.worker import Worker

TRIALS = 50
APPROVED, REJECTED = "call_t_0_0", "call_t_0_1"
refunds: collections.Counter[int] = collections.Counter()


@function_tool(needs_approval=True)
def refund(amount: int) -> str:
    """Refund an amount to the customer."""
    refunds[amount] += 1
    return f"refunded {amount}"


def _support() -> Agent[Any]:
    model = TurnModel("t", [[("refund", {"amount": 5}), ("refund", {"amount": 7})], "done"])
    return Agent(name="support", instructions="Help.", model=model, tools=[refund])


def _wait_until_waiting(handle: AgentHandle) -> None:
    for event in handle.events():
        if event.type == "execution.waiting":
            return


def _race(runtime: AgentRuntime) -> None:
    refunds.clear()
    agent = _support()
    for trial in range(TRIALS):
        handle = runtime.start(agent, f"two refunds please (trial {trial})")
        _wait_until_waiting(handle)
        assert {p.call_id for p in handle.pending_approvals()} == {APPROVED, REJECTED}
        outcomes = at_once(
            functools.partial(handle.approve, APPROVED), functools.partial(handle.reject, REJECTED, "one per order")
        )
        assert outcomes == [None, None], outcomes
        result = handle.wait(timeout=30)
        assert result.status is ExecutionStatus.COMPLETED, (trial, result.error)
        assert [c["result"] for c in result.tool_calls] == ["refunded 5", "one per order"], trial
        assert refunds == {5: trial + 1}, trial


# Each journal-writer thread's keep-alive connection is closed when the thread is collected, not before.
@pytest.mark.slow
def test_decisions_sent_in_the_same_millisecond_over_http_both_apply_in_every_trial(server: str) -> None:
    with AgentRuntime(server) as runtime:
        _race(runtime)


def test_decisions_sent_in_the_same_millisecond_embedded_both_apply_in_every_trial(tmp_path: Path) -> None:
    with AgentRuntime(db=tmp_path / "race.db", serve_http=False, synchronous="normal") as runtime:
        _race(runtime)


def test_a_decision_delivered_while_a_worker_replays_the_other_is_applied_and_the_worker_lives_on(
    service: Service,
) -> None:
    refunds.clear()
    eid = service.create_execution("support", oa.execution_input("two refunds please")).id
    fn = oa.agent_function(_support())
    assert Worker(service, [fn]).run_once()
    assert service.get_execution(eid).status is ExecutionStatus.WAITING

    service.send_signal(eid, approval_signal(APPROVED), {"approved": True})
    late = DecidesAfterClaim(
        service, lambda: service.send_signal(eid, approval_signal(REJECTED), {"approved": False, "reason": "no"})
    )
    worker = Worker(late, [fn])  # type: ignore[arg-type]  # a Client in all but name
    assert worker.run_once()  # the worker suspends the decided call again: the server re-queues the run
    assert worker.run_once()  # and the same worker runs it to its end
    execution = service.get_execution(eid)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert refunds == {5: 1}
    assert [s.status for s in service.get_journal(eid) if s.kind == "approval"] == [StepStatus.COMPLETED] * 2

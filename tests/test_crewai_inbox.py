"""CrewAI's requests for human input in the approvals inbox, listed with an OpenAI Agents SDK approval
and decided through it (the approve / reject / respond forms become feedback text)."""

from __future__ import annotations

from pathlib import Path

import pytest
from agents import Agent as SdkAgent
from agents import function_tool
from oa_flows import TurnModel
from processes import wait_until
from test_crewai_runtime import _writers

from agentspan.agents import AgentRuntime
from agentspan.errors import ConflictError, InvalidInputError
from agentspan.runtime import InboxItem, InboxStatus, InboxType
from agentspan.testing import FakeOpenAIServer

refunded: list[int] = []


@function_tool(needs_approval=True)
def refund(amount: int) -> str:
    """Refund an amount to the customer."""
    refunded.append(amount)
    return f"refunded {amount}"


def _pending(runtime: AgentRuntime, execution_id: str) -> list[InboxItem]:
    return runtime.client.list_approvals(execution_id=execution_id).items


def test_human_input_and_an_sdk_approval_share_one_inbox_and_are_decided_through_it(tmp_path: Path) -> None:
    refunded.clear()
    script = [[("search", {"query": "AI"})], "draft one", "draft two"]
    with FakeOpenAIServer(script) as fake:
        crew = _writers(fake.base_url)
        sdk = SdkAgent(
            name="support", instructions="Help.", tools=[refund],
            model=TurnModel("a", [[("refund", {"amount": 5})], "refund done"]),
        )  # fmt: skip
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            writing = runtime.start(crew, inputs={"topic": "AI"})
            support = runtime.start(sdk, "I was double charged")
            wait_until(lambda: _pending(runtime, writing.execution_id), "the request for human input")
            wait_until(lambda: _pending(runtime, support.execution_id), "the approval")
            items = runtime.client.list_approvals().items
            assert {(i.agent, i.framework, i.type) for i in items} == {
                ("writers", "crewai", InboxType.HUMAN_INPUT),
                ("support", "openai_agents", InboxType.TOOL_APPROVAL),
            }
            [human] = runtime.client.list_approvals(framework="crewai").items
            assert human.question == "Write about AI" and human.details["draft"] == "draft one"
            assert human.signal.startswith("human:")
            with pytest.raises(InvalidInputError, match="needs a reason"):
                runtime.client.decide_approval(human.id, {"action": "reject"})
            with pytest.raises(InvalidInputError, match="feedback text"):
                runtime.client.decide_approval(human.id, {"action": "respond", "value": {"no": 1}})
            runtime.client.decide_approval(human.id, {"action": "reject", "reason": "make it longer"})
            with pytest.raises(ConflictError, match='already decided: answered "make it longer"'):
                runtime.client.decide_approval(human.id, {"action": "approve"})
            wait_until(
                lambda: [i.id for i in _pending(runtime, writing.execution_id)] not in ([], [human.id]),
                "the second round",
            )
            [second] = _pending(runtime, writing.execution_id)
            assert second.details["draft"] == "draft two"
            accepted = runtime.client.decide_approval(second.id, {"action": "approve"})
            assert accepted.decision == ""
            [approval] = _pending(runtime, support.execution_id)
            runtime.client.decide_approval(approval.id, {"action": "approve"})
            written, helped = writing.wait(60), support.wait(60)
            assert runtime.client.get_approval(human.id).status is InboxStatus.DECIDED
    assert written.is_success, written.error
    assert written.output == "draft two"
    assert helped.is_success and helped.output == "refund done"
    assert refunded == [5]

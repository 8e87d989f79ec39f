"""Google ADK tool confirmations in the approvals inbox: listed with their tool and arguments, decided
through it like every framework's approvals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.adk")

import adk_approval_program
from processes import wait_until
from test_google_adk_approval import SCRIPT, _gemini, _ran, _responses

from agentspan.agents import AgentRuntime
from agentspan.errors import ConflictError, InvalidInputError
from agentspan.runtime import InboxStatus, InboxType
from agentspan.worker._aio import run_async

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning"
)


def test_a_confirmation_is_in_the_inbox_and_a_rejection_through_it_reaches_the_model(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with _gemini(monkeypatch, tmp_path, SCRIPT) as gemini:
        agent = adk_approval_program.make_payer()
        try:
            _decide_through_the_inbox(agent, tmp_path)
        finally:
            run_async(agent.canonical_model.api_client.aio.aclose())
    assert _ran(tmp_path / "tools.log") == [], "a rejected tool never runs"
    [response] = _responses(gemini.requests)
    assert response["response"] == {"error": "This tool call is rejected.", "reason": "not today"}


def _decide_through_the_inbox(agent: Any, tmp_path: Path) -> None:
    with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        handle = runtime.start(agent, adk_approval_program.PROMPT)
        wait_until(lambda: runtime.client.list_approvals(framework="google_adk").items, "the confirmation")
        [item] = runtime.client.list_approvals().items
        assert (item.agent, item.framework, item.type) == ("adk_payer", "google_adk", InboxType.TOOL_APPROVAL)
        assert (item.tool, item.arguments, item.execution_id) == ("pay", {"amount": 5}, handle.execution_id)
        assert item.signal == f"approval:{item.call_id}"
        with pytest.raises(InvalidInputError, match="Google ADK cannot run tool call"):
            runtime.client.decide_approval(item.id, {"action": "approve", "arguments": {"amount": 1}})
        decided = runtime.client.decide_approval(item.id, {"action": "reject", "reason": "not today"})
        assert decided.status is InboxStatus.DECIDED
        with pytest.raises(ConflictError, match=r"already rejected \(\"not today\"\)"):
            runtime.client.decide_approval(item.id, {"action": "approve"})
        result = handle.wait(timeout=60)
        assert runtime.client.list_approvals().items == []
    assert result.is_success, result.error

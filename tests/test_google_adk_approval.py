"""ADK's tool confirmation inside Agentspan runs: a durable wait on the server, decided like every
framework's approvals (handle, HTTP API), holding no process while it waits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.adk")

import adk_approval_program
from processes import TESTS, stop, wait_until

from agentspan.adapters.google_adk import execution_input
from agentspan.agents import AgentRuntime, PendingApproval
from agentspan.client import HttpClient
from agentspan.runtime import ExecutionStatus, StepStatus
from agentspan.testing import FakeOpenAIServer
from agentspan.worker._aio import run_async

pytestmark = pytest.mark.filterwarnings(
    "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning"
)

SCRIPT: list[Any] = [[("pay", {"amount": 5})], "Done."]
REJECTED = "This tool call is rejected."


def _without_ids(script: list[Any]) -> list[Any]:
    from agentspan.agents import Message, ModelResponse, ToolCall

    found: list[Any] = []
    for turn in script:
        if isinstance(turn, list):
            calls = [ToolCall(id="", name=name, arguments=json.dumps(args)) for name, args in turn]
            turn = ModelResponse(message=Message(role="assistant", tool_calls=calls))
        found.append(turn)
    return found


@contextmanager
def _gemini(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, script: list[Any]) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(_without_ids(script)) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.gemini_base_url)
        monkeypatch.setenv("GOOGLE_API_KEY", "test")
        monkeypatch.setenv("GOOGLE_GENAI_USE_ENTERPRISE", "false")
        monkeypatch.setenv("AGENT_LOG", str(tmp_path / "tools.log"))
        monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
        yield fake


@pytest.fixture
def gemini(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeOpenAIServer]:
    with _gemini(monkeypatch, tmp_path, SCRIPT) as fake:
        yield fake


@pytest.fixture
def agents() -> Iterator[list[Any]]:
    made: list[Any] = []
    yield made
    for agent in made:
        run_async(agent.canonical_model.api_client.aio.aclose())


def _ran(log: Path) -> list[list[str]]:
    return [line.split("\t") for line in log.read_text().splitlines()] if log.exists() else []


def _responses(requests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The function responses the model was sent, in its last request."""
    return [
        part["functionResponse"]
        for content in requests[-1]["contents"]
        for part in content.get("parts", [])
        if "functionResponse" in part
    ]


def _calls(requests: list[dict[str, Any]]) -> list[str]:
    return [
        part["functionCall"]["name"]
        for content in requests[-1]["contents"]
        for part in content.get("parts", [])
        if "functionCall" in part
    ]


@pytest.mark.parametrize("approved", [True, False], ids=["approve", "reject"])
def test_a_tool_that_requires_confirmation_waits_and_runs_once_when_approved_never_when_rejected(
    gemini: FakeOpenAIServer, tmp_path: Path, agents: list[Any], approved: bool
) -> None:
    agent = adk_approval_program.make_payer()
    agents.append(agent)
    with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        handle = runtime.start(agent, adk_approval_program.PROMPT)
        wait_until(
            lambda: handle.status is ExecutionStatus.WAITING or handle.status.is_terminal,
            "the run waits for the decision",
        )
        assert handle.status is ExecutionStatus.WAITING, "the run waits"
        pending = handle.pending_approvals()
        assert _ran(tmp_path / "tools.log") == [], "the tool does not run before the decision"
        assert len(pending) == 1 and pending[0].tool == "pay", pending
        assert isinstance(pending[0], PendingApproval) and pending[0].arguments == {"amount": 5}
        if approved:
            handle.approve(pending[0].call_id)
        else:
            handle.reject(pending[0].call_id, "not today")
        result = handle.wait(timeout=60)
        assert handle.pending_approvals() == []
    assert result.is_success, result.error
    assert result.output == "Done."
    assert len(gemini.requests) == 2, "one model turn before the wait, one after"
    assert _calls(gemini.requests) == ["pay"], "the model saw its call, not ADK's adk_request_confirmation"
    [response] = _responses(gemini.requests)
    assert response["name"] == "pay"
    if approved:
        assert [amount for amount, _ in _ran(tmp_path / "tools.log")] == ["5"], "the tool ran once"
        assert response["response"] == {"paid": "5"}
    else:
        assert _ran(tmp_path / "tools.log") == [], "a rejected tool never runs"
        assert response["response"] == {"error": REJECTED, "reason": "not today"}


@pytest.mark.parametrize("approved", [True, False], ids=["approve", "reject"])
def test_a_tool_that_asks_for_confirmation_itself_is_run_again_with_the_decision(
    gemini: FakeOpenAIServer, tmp_path: Path, agents: list[Any], approved: bool
) -> None:
    from google.adk.agents import LlmAgent
    from google.adk.tools.tool_context import ToolContext

    seen: list[Any] = []

    def pay(amount: int, tool_context: ToolContext) -> dict[str, Any]:
        """Pay an amount."""
        confirmation = tool_context.tool_confirmation
        seen.append(None if confirmation is None else (confirmation.confirmed, confirmation.hint, confirmation.payload))
        if confirmation is None:
            tool_context.request_confirmation(hint=f"pay {amount}?", payload={"max": 10})
            return {"status": "waiting for approval"}
        return {"paid": str(confirmation.payload["max"])} if confirmation.confirmed else {"paid": "nothing"}

    agent = LlmAgent(name="asker", model="gemini-2.5-flash", instruction="Pay.", tools=[pay])
    agents.append(agent)
    with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        handle = runtime.start(agent, adk_approval_program.PROMPT)
        wait_until(
            lambda: handle.status is ExecutionStatus.WAITING or handle.status.is_terminal,
            "the run waits for the decision",
        )
        assert handle.status is ExecutionStatus.WAITING, "the run waits"
        [pending] = handle.pending_approvals()
        if approved:
            handle.approve(pending.call_id)
        else:
            handle.reject(pending.call_id)
        result = handle.wait(timeout=60)
        journal = runtime.client.get_journal(result.execution_id)
    assert result.is_success, result.error
    assert seen == [None, (approved, "pay 5?", {"max": 10})], "asked once (not again on the replay), run again once"
    assert [(s.kind, s.name) for s in journal if s.kind != "llm"] == [
        ("tool", "pay"), ("approval", f"approval:{pending.call_id}"), ("tool", "pay"),
    ]  # fmt: skip
    [response] = _responses(gemini.requests)
    assert response["response"] == {"paid": "10" if approved else "nothing"}, "the model sees the second run's result"


@pytest.mark.parametrize("returns", ["nothing", "a pending status"])
def test_a_long_running_tool_waits_for_its_result_signal_which_the_model_then_receives(
    gemini: FakeOpenAIServer, tmp_path: Path, agents: list[Any], returns: str
) -> None:
    from google.adk.agents import LlmAgent
    from google.adk.tools.long_running_tool import LongRunningFunctionTool

    ran: list[int] = []

    def pay(amount: int) -> dict[str, str] | None:
        """Ask the bank to pay an amount (it answers later)."""
        ran.append(amount)
        return None if returns == "nothing" else {"status": "pending"}

    agent = LlmAgent(name="bank", model="gemini-2.5-flash", instruction="Pay.", tools=[LongRunningFunctionTool(pay)])
    agents.append(agent)
    with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
        handle = runtime.start(agent, adk_approval_program.PROMPT)
        wait_until(
            lambda: handle.status is ExecutionStatus.WAITING or handle.status.is_terminal,
            "the run waits for the tool's result",
        )
        assert handle.status is ExecutionStatus.WAITING, "the run waits"
        [waiting] = [s for s in runtime.client.get_journal(handle.execution_id) if s.status is StepStatus.SUSPENDED]
        runtime.client.send_signal(handle.execution_id, f"result:{waiting.input['call_id']}", {"paid": "5 by the bank"})
        result = handle.wait(timeout=60)
    assert result.is_success, result.error
    assert (waiting.kind, waiting.input["tool"], waiting.input["arguments"]) == ("signal", "pay", {"amount": 5})
    assert ran == [5], "the tool ran once (not again on the replay after the result)"
    responses = _responses(gemini.requests)
    assert responses[-1]["response"] == {"paid": "5 by the bank"}, "the model received the delivered result"
    assert result.output == "Done."


def test_two_confirmations_of_one_model_response_are_listed_at_once_and_decided_apart(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, agents: list[Any]
) -> None:
    two = [[("pay", {"amount": 5}), ("pay", {"amount": 7})], "Done."]
    with _gemini(monkeypatch, tmp_path, two) as fake:
        agent = adk_approval_program.make_payer("two_payer")
        agents.append(agent)
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            handle = runtime.start(agent, "Pay 5 and 7.")
            wait_until(lambda: handle.status is ExecutionStatus.WAITING or handle.status.is_terminal, "the waits")
            pending = handle.pending_approvals()
            assert [(p.tool, p.arguments) for p in pending] == [("pay", {"amount": 5}), ("pay", {"amount": 7})]
            handle.approve(pending[1].call_id)
            handle.reject(pending[0].call_id)
            result = handle.wait(timeout=60)
        requests = fake.requests
    assert result.is_success, result.error
    assert [amount for amount, _ in _ran(tmp_path / "tools.log")] == ["7"], "only the approved call ran"
    assert [r["response"] for r in _responses(requests)] == [{"error": REJECTED}, {"paid": "7"}]


# --- across processes ----------------------------------------------------------------------------------------
def _worker(url: str, fake: FakeOpenAIServer, log: Path, agent: str = "payer") -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
    env.update(AGENT_LOG=str(log), GOOGLE_GEMINI_BASE_URL=fake.gemini_base_url, GOOGLE_API_KEY="test")
    env.update(GOOGLE_GENAI_USE_ENTERPRISE="false", OTEL_SDK_DISABLED="true")
    env.pop("GOOGLE_GENAI_USE_VERTEXAI", None)
    env.pop("AGENTSPAN_SERVER_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "agentspan", "worker", f"adk_approval_program:{agent}", "--server", url,
         "--lease-seconds", "2", "--poll-seconds", "1", "--max-executions", "1"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


def _post_signal(url: str, execution_id: str, name: str, payload: Any) -> int:
    request = urllib.request.Request(
        f"{url}/executions/{execution_id}/signals/{name}",
        data=json.dumps({"payload": payload}).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


@pytest.mark.slow
@pytest.mark.parametrize("approved", [True, False], ids=["approve", "reject"])
def test_a_confirmation_waits_with_no_worker_and_a_decision_over_http_is_finished_by_a_fresh_one(
    server: str, tmp_path: Path, approved: bool
) -> None:
    log = tmp_path / "tools.log"
    with FakeOpenAIServer(_without_ids(SCRIPT)) as fake, HttpClient(server) as client:
        execution = client.create_execution("adk_payer", execution_input(adk_approval_program.PROMPT))
        first = _worker(server, fake, log)
        assert first.wait(timeout=120) == 0, "the worker ran its one execution to the wait, then exited"
        waiting = client.get_execution(execution.id)
        [approval] = [s for s in client.get_journal(execution.id) if s.kind == "approval"]
        signal = f"approval:{approval.input['call_id']}"
        malformed = _post_signal(server, execution.id, signal, {"approved": "yes"})
        after_malformed = client.get_execution(execution.id)
        [still] = [s for s in client.get_journal(execution.id) if s.kind == "approval"]
        if approved:
            assert _post_signal(server, execution.id, signal, {"approved": True}) == 200
        else:  # through the CLI
            payload = json.dumps({"approved": False, "reason": "too much"})
            subprocess.run(
                [sys.executable, "-m", "agentspan", "signal", execution.id, signal, "--payload", payload,
                 "--server", server], check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(TESTS.parent)},
            )  # fmt: skip
        second = _worker(server, fake, log)
        wait_until(lambda: client.get_execution(execution.id).status.is_terminal, "the decided run")
        stop(second)
        final = client.get_execution(execution.id)
        requests = fake.requests
    assert waiting.status is ExecutionStatus.WAITING
    assert (approval.status, approval.input["tool"], approval.input["arguments"]) == (
        StepStatus.SUSPENDED, "pay", {"amount": 5},
    )  # fmt: skip
    assert malformed == 400, "a malformed decision is refused"
    assert after_malformed.status is ExecutionStatus.WAITING and still.status is StepStatus.SUSPENDED, "still waiting"
    assert final.status is ExecutionStatus.COMPLETED, final.error
    assert final.output["output"] == "Done."
    assert len(requests) == 2, "the first turn was replayed by the fresh worker, not asked for again"
    [response] = _responses(requests)
    if approved:
        assert _ran(log) == [["5", str(second.pid)]], "the tool ran once, in the fresh worker, after the approval"
        assert response["response"] == {"paid": "5"}
    else:
        assert _ran(log) == [], "a rejected tool never runs"
        assert response["response"] == {"error": REJECTED, "reason": "too much"}


@pytest.mark.slow
def test_a_long_running_call_waits_with_no_worker_and_its_result_from_the_cli_is_finished_by_a_fresh_one(
    server: str, tmp_path: Path
) -> None:
    log = tmp_path / "tools.log"
    script = [[("order_payment", {"amount": 5})], "The bank paid."]
    with FakeOpenAIServer(_without_ids(script)) as fake, HttpClient(server) as client:
        execution = client.create_execution("adk_bank", execution_input(adk_approval_program.PROMPT))
        first = _worker(server, fake, log, "bank")
        assert first.wait(timeout=120) == 0, "the worker ran its one execution to the wait, then exited"
        waiting = client.get_execution(execution.id)
        [step] = [s for s in client.get_journal(execution.id) if s.status is StepStatus.SUSPENDED]
        subprocess.run(
            [sys.executable, "-m", "agentspan", "signal", execution.id, f"result:{step.input['call_id']}",
             "--payload", '{"paid": "5 by the bank"}', "--server", server],
            check=True, capture_output=True, env={**os.environ, "PYTHONPATH": str(TESTS.parent)},
        )  # fmt: skip
        second = _worker(server, fake, log, "bank")
        wait_until(lambda: client.get_execution(execution.id).status.is_terminal, "the answered run")
        stop(second)
        final = client.get_execution(execution.id)
        requests = fake.requests
    assert waiting.status is ExecutionStatus.WAITING
    assert (step.kind, step.input["tool"], step.input["arguments"]) == ("signal", "order_payment", {"amount": 5})
    assert final.status is ExecutionStatus.COMPLETED, final.error
    assert final.output["output"] == "The bank paid."
    assert _ran(log) == [["5", str(first.pid)]], "the tool ran once, in the first worker"
    assert len(requests) == 2, "the first turn was replayed by the fresh worker, not asked for again"
    assert [r["response"] for r in _responses(requests)] == [{"paid": "5 by the bank"}]

"""The approvals inbox: every wait for a person, across executions and frameworks, listed and decided
in one place (service, HTTP, CLI). Real SQLite, real servers, the frameworks' real classes; only the
models are scripted. CrewAI and Google ADK waits are in test_crewai_inbox.py and test_google_adk_inbox.py
(their own environment)."""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from agents import Agent, function_tool
from langgraph.checkpoint.memory import InMemorySaver
from oa_flows import TurnModel
from processes import TESTS, wait_until
from test_langgraph import _reset, start  # noqa: F401 - the LangGraph fakes' reset fixture
from test_langgraph_waits import approval_graph

import agentspan.adapters.langgraph as lg
import agentspan.adapters.openai_agents as oa
from agentspan import durable
from agentspan.agents import Agent as NativeAgent
from agentspan.agents import tool
from agentspan.agents._loop import agent_function
from agentspan.client import HttpClient
from agentspan.durable._context import current_context
from agentspan.errors import ConflictError, InvalidInputError, NotFoundError
from agentspan.runtime import ExecutionStatus, InboxItem, InboxStatus, InboxType, Service
from agentspan.testing import ScriptedModel, ServerHandle
from agentspan.worker import Worker

refunds: collections.Counter[int] = collections.Counter()


@pytest.fixture(autouse=True)
def _reset_refunds() -> None:
    refunds.clear()


@function_tool(needs_approval=True)
def refund(amount: int) -> str:
    """Refund an amount to the customer."""
    refunds[amount] += 1
    return f"refunded {amount}"


@tool(approval_required=True)
def pay_out(amount: int) -> str:
    """Pay an amount out to the customer."""
    refunds[-amount] += 1  # negative keys: the native agent's calls
    return f"paid {amount}"


def support_agent(model: TurnModel) -> Agent[Any]:
    return Agent(name="support", instructions="Help.", model=model, tools=[refund])


@durable.function
def payout(amount: int) -> Any:
    """A durable function that waits for an approval the way native tools do."""
    found = current_context()
    assert found is not None
    details = {
        "tool": "payout", "arguments": {"amount": amount}, "call_id": "payout-1", "framework": "native",
        "schema": {"type": "object", "properties": {"amount": {"type": "integer"}}, "required": ["amount"]},
    }  # fmt: skip
    return found[0].wait_for_signal("approval:payout-1", kind="approval", details=details)


class Runs:
    """One waiting execution per kind: an OpenAI Agents SDK approval, a LangGraph interrupt and a
    durable function's approval-style wait, all in one service."""

    def __init__(self, service: Service) -> None:
        self.service = service
        self.model = TurnModel("a", [[("refund", {"amount": 5})], "refund done"])
        self.agent = support_agent(self.model)
        self.graph = approval_graph(InMemorySaver())
        self.oa = service.create_execution("support", oa.execution_input("I was double charged")).id
        self.graph_id = start(service, self.graph)
        self.native = service.create_execution("payout", {"amount": 7}).id
        self.cashier_model = ScriptedModel([[("pay_out", {"amount": 9})], "Paid."])
        self.cashier = NativeAgent(name="cashier", model=self.cashier_model, instructions="Pay.", tools=[pay_out])
        self.agent_run = service.create_execution("cashier", {"prompt": "pay 9"}).id
        self.work()
        for eid in (self.oa, self.graph_id, self.native, self.agent_run):
            assert service.get_execution(eid).status is ExecutionStatus.WAITING

    def work(self) -> None:
        """Let a worker run whatever is queued (each run until it waits or finishes)."""
        functions = [oa.agent_function(self.agent), lg.graph_function(self.graph), payout, agent_function(self.cashier)]
        while Worker(self.service, functions).run_once():
            pass

    def item(self, execution_id: str) -> InboxItem:
        (found,) = self.service.list_approvals(execution_id=execution_id).items
        return found


@pytest.fixture
def runs(service: Service) -> Runs:
    return Runs(service)


# --- one inbox ------------------------------------------------------------------------------------------
def test_one_inbox_lists_the_waits_of_openai_agents_langgraph_and_native_runs_together(runs: Runs) -> None:
    items = runs.service.list_approvals().items
    assert {(i.execution_id, i.agent, i.framework, i.type) for i in items} == {
        (runs.oa, "support", "openai_agents", InboxType.TOOL_APPROVAL),
        (runs.graph_id, "approval", "langgraph", InboxType.INTERRUPT),
        (runs.native, "payout", "native", InboxType.TOOL_APPROVAL),
        (runs.agent_run, "cashier", "native", InboxType.TOOL_APPROVAL),
    }
    by_execution = {i.execution_id: i for i in items}
    sdk = by_execution[runs.oa]
    assert (sdk.tool, sdk.arguments, sdk.status) == ("refund", {"amount": 5}, InboxStatus.PENDING)
    assert sdk.signal == f"approval:{sdk.call_id}" and sdk.call_id
    interrupt = by_execution[runs.graph_id]
    assert (interrupt.question, interrupt.signal, interrupt.tool) == ("approve?", "interrupt:1", None)
    native = by_execution[runs.native]
    assert (native.tool, native.arguments, native.call_id) == ("payout", {"amount": 7}, "payout-1")
    agent = by_execution[runs.agent_run]
    assert (agent.tool, agent.arguments, agent.call_id) == ("pay_out", {"amount": 9}, "call_1")
    assert agent.details["schema"]["required"] == ["amount"]
    assert len({i.id for i in items}) == 4 and all(len(i.id) == 12 and i.id.isalnum() for i in items)
    assert [runs.service.get_approval(i.id) for i in items] == items, "an id finds its item again"


def test_the_inbox_filters_by_framework_agent_and_execution(runs: Runs) -> None:
    def executions(**filters: Any) -> list[str]:
        return [i.execution_id for i in runs.service.list_approvals(**filters).items]

    assert executions(framework="langgraph") == [runs.graph_id]
    assert executions(framework="openai_agents") == [runs.oa]
    assert sorted(executions(framework="native")) == sorted([runs.native, runs.agent_run])
    assert executions(agent="cashier") == [runs.agent_run]
    assert executions(framework="crewai") == []
    assert executions(agent="support") == [runs.oa]
    assert executions(execution_id=runs.native) == [runs.native]
    assert executions(agent="support", framework="langgraph") == []
    with pytest.raises(InvalidInputError, match="unknown framework 'autogen'"):
        runs.service.list_approvals(framework="autogen")


def test_the_inbox_pages_oldest_first(runs: Runs) -> None:
    everything = runs.service.list_approvals().items
    first = runs.service.list_approvals(limit=2)
    assert first.items == everything[:2] and first.next_cursor is not None
    rest = runs.service.list_approvals(limit=2, cursor=first.next_cursor)
    assert rest.items == everything[2:] and rest.next_cursor is None
    assert [i.created_at for i in everything] == sorted(i.created_at for i in everything)
    with pytest.raises(InvalidInputError, match="cursor"):
        runs.service.list_approvals(cursor="nonsense")


def test_the_listing_reads_the_waiting_steps_index_not_the_history(service: Service) -> None:
    """The listing's query is answered from the partial index of suspended steps (migration 2)."""
    from agentspan.runtime.store._sqlite import _INBOX_KIND, _WAITS

    conn = service.store._conn  # type: ignore[attr-defined]
    sql = (
        f"EXPLAIN QUERY PLAN {_WAITS} WHERE s.status = 'suspended' AND s.signal IS NOT NULL AND s.generation = 0"
        f" AND {_INBOX_KIND} AND g.name IS NULL ORDER BY s.seq LIMIT 10"
    )
    plan = " ".join(str(row[3]) for row in conn.execute(sql))
    assert "steps_waiting" in plan and "SCAN s " not in plan.replace("SCAN s USING INDEX steps_waiting", "")


# --- deciding -------------------------------------------------------------------------------------------
def test_deciding_through_the_inbox_completes_each_run(runs: Runs) -> None:
    service = runs.service
    approved = service.decide_approval(runs.item(runs.oa).id, {"action": "approve"})
    assert (approved.status, approved.decision) == (InboxStatus.DECIDED, {"approved": True})
    service.decide_approval(runs.item(runs.graph_id).id, {"action": "respond", "value": {"ok": True}})
    edited = service.decide_approval(runs.item(runs.native).id, {"action": "approve", "arguments": {"amount": 3}})
    assert edited.decision == {"approved": True, "arguments": {"amount": 3}}
    with pytest.raises(InvalidInputError, match="amount"):
        service.decide_approval(runs.item(runs.agent_run).id, {"action": "approve", "arguments": {"amount": "x"}})
    service.decide_approval(runs.item(runs.agent_run).id, {"action": "approve", "arguments": {"amount": 4}})
    assert service.list_approvals().items == []
    runs.work()
    sdk = service.get_execution(runs.oa)
    assert sdk.status is ExecutionStatus.COMPLETED and sdk.output["output"] == "refund done"
    assert refunds[5] == 1, "the approved call ran once"
    graph = service.get_execution(runs.graph_id)
    assert graph.status is ExecutionStatus.COMPLETED and graph.output["approval"] == {"ok": True}
    native = service.get_execution(runs.native)
    assert native.status is ExecutionStatus.COMPLETED
    assert native.output == {"approved": True, "arguments": {"amount": 3}}
    cashier = service.get_execution(runs.agent_run)
    assert cashier.status is ExecutionStatus.COMPLETED and cashier.output["output"] == "Paid."
    assert refunds == {5: 1, -4: 1}, "the native tool ran once, with the edited arguments"


def test_a_rejection_reaches_the_model_and_an_interrupt_as_a_decision(runs: Runs) -> None:
    service = runs.service
    service.decide_approval(runs.item(runs.oa).id, {"action": "reject", "reason": "over the limit"})
    service.decide_approval(runs.item(runs.graph_id).id, {"action": "reject", "reason": "not now"})
    runs.work()
    assert refunds == {}, "a rejected call does not run"
    outputs = [i for i in runs.model.inputs[-1] if isinstance(i, dict) and i.get("type") == "function_call_output"]
    assert [o["output"] for o in outputs] == ["over the limit"]
    graph = service.get_execution(runs.graph_id)
    assert graph.output["approval"] == {"approved": False, "reason": "not now"}


def test_deciding_twice_differently_is_a_conflict_naming_the_recorded_decision(runs: Runs) -> None:
    service = runs.service
    item_id = runs.item(runs.oa).id
    service.decide_approval(item_id, {"action": "reject", "reason": "over the limit"})
    with pytest.raises(ConflictError, match=r"already rejected \(\"over the limit\"\)"):
        service.decide_approval(item_id, {"action": "approve"})
    again = service.decide_approval(item_id, {"action": "reject", "reason": "over the limit"})
    assert again.status is InboxStatus.DECIDED, "the same decision again is a harmless repeat"
    runs.work()
    decided = service.get_approval(item_id)
    assert decided.status is InboxStatus.DECIDED and decided.decision == {"approved": False, "reason": "over the limit"}
    with pytest.raises(ConflictError, match="already rejected"):
        service.decide_approval(item_id, {"action": "approve"})


def test_decisions_that_do_not_fit_the_wait_are_refused_and_it_keeps_waiting(runs: Runs) -> None:
    service = runs.service
    sdk = runs.item(runs.oa)
    with pytest.raises(InvalidInputError, match="OpenAI Agents SDK cannot run tool call .* with edited arguments"):
        service.decide_approval(sdk.id, {"action": "approve", "arguments": {"amount": 1}})
    with pytest.raises(InvalidInputError, match="is a tool approval"):
        service.decide_approval(sdk.id, {"action": "respond", "value": "yes"})
    with pytest.raises(InvalidInputError, match="a reason goes with reject only"):
        service.decide_approval(sdk.id, {"action": "approve", "reason": "why not"})
    with pytest.raises(InvalidInputError, match="action"):
        service.decide_approval(sdk.id, {"action": "maybe"})
    assert service.get_approval(sdk.id).status is InboxStatus.PENDING
    assert service.get_execution(runs.oa).status is ExecutionStatus.WAITING


def test_an_unknown_id_is_not_found(service: Service) -> None:
    for unknown in ("abcdef123456", "nope", "", "x" * 300):
        with pytest.raises(NotFoundError, match="no approval with id"):
            service.get_approval(unknown)
        with pytest.raises(NotFoundError):
            service.decide_approval(unknown, {"action": "approve"})


def test_a_wait_of_a_cancelled_execution_leaves_the_inbox_and_is_closed(runs: Runs) -> None:
    item = runs.item(runs.native)
    runs.service.cancel_execution(runs.native)
    assert runs.native not in {i.execution_id for i in runs.service.list_approvals().items}
    assert runs.service.get_approval(item.id).status is InboxStatus.CLOSED
    with pytest.raises(ConflictError, match="cancelled"):
        runs.service.decide_approval(item.id, {"action": "approve"})


# --- over HTTP ------------------------------------------------------------------------------------------
def test_the_inbox_over_http_lists_decides_and_answers_409_and_404(
    runs: Runs, http_server: ServerHandle, http_client: HttpClient
) -> None:
    listed = http_client.list_approvals(framework="langgraph")
    assert [i.execution_id for i in listed.items] == [runs.graph_id]
    raw = httpx.get(f"{http_server.url}/approvals", params={"agent": "support"})
    assert raw.status_code == 200 and raw.headers["content-type"] == "application/json"
    (sdk,) = raw.json()["items"]
    assert (sdk["framework"], sdk["tool"], sdk["arguments"]) == ("openai_agents", "refund", {"amount": 5})

    rejected = httpx.post(f"{http_server.url}/approvals/{sdk['id']}/reject", json={"reason": "over the limit"})
    assert rejected.status_code == 200 and rejected.json()["status"] == "decided"
    conflict = httpx.post(f"{http_server.url}/approvals/{sdk['id']}/approve")
    assert conflict.status_code == 409
    assert 'already rejected ("over the limit")' in conflict.json()["error"]["message"]
    with pytest.raises(ConflictError, match="already rejected"):
        http_client.decide_approval(sdk["id"], {"action": "approve"})

    interrupt = http_client.list_approvals(execution_id=runs.graph_id).items[0]
    answered = http_client.decide_approval(interrupt.id, {"action": "respond", "value": [1, "two"]})
    assert answered.decision == [1, "two"] and http_client.get_approval(interrupt.id) == answered
    native = runs.item(runs.native)
    edit = httpx.post(f"{http_server.url}/approvals/{native.id}/approve", json={"arguments": {"amount": 2}})
    assert edit.status_code == 200 and edit.json()["decision"] == {"approved": True, "arguments": {"amount": 2}}

    missing = httpx.post(f"{http_server.url}/approvals/abcdef123456/approve")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFoundError"
    assert httpx.get(f"{http_server.url}/approvals/abcdef123456").status_code == 404
    with pytest.raises(NotFoundError):
        http_client.get_approval("abcdef123456")
    bad = httpx.post(
        f"{http_server.url}/approvals/{native.id}/respond",
        content=b"{oops",
        headers={"content-type": "application/json"},
    )
    assert bad.status_code == 400
    assert httpx.get(f"{http_server.url}/approvals", params={"framework": "autogen"}).status_code == 422

    runs.work()
    assert runs.service.get_execution(runs.oa).status is ExecutionStatus.COMPLETED and refunds == {}
    assert runs.service.get_execution(runs.graph_id).output["approval"] == [1, "two"]
    assert runs.service.get_execution(runs.native).output == {"approved": True, "arguments": {"amount": 2}}


# --- from the command line ------------------------------------------------------------------------------
def cli(server: ServerHandle) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.getcwd(), str(TESTS)])}
        env.pop("AGENTSPAN_SERVER_URL", None)
        return subprocess.run(
            [sys.executable, "-m", "agentspan", *args, "--server", server.url],
            env=env, capture_output=True, text=True, timeout=60,
        )  # fmt: skip

    return run


def test_the_cli_lists_and_decides_each_kind_of_wait(runs: Runs, http_server: ServerHandle) -> None:
    agentspan = cli(http_server)
    listed = agentspan("approvals", "list")
    assert listed.returncode == 0, listed.stderr
    items = {i.execution_id: i for i in runs.service.list_approvals().items}
    header = listed.stdout.splitlines()[0].split()
    assert header[:5] == ["id", "agent", "framework", "type", "tool"] and header[-1] == "age"
    lines = {line.split()[0]: line for line in listed.stdout.splitlines()[1:]}
    assert set(lines) == {i.id for i in items.values()}
    sdk, interrupt, native = items[runs.oa], items[runs.graph_id], items[runs.native]
    assert lines[sdk.id].split()[1:5] == ["support", "openai_agents", "tool_approval", "refund"]
    assert '{"amount": 5}' in lines[sdk.id]
    assert "approve?" in lines[interrupt.id] and "langgraph" in lines[interrupt.id]
    as_json = agentspan("approvals", "list", "--framework", "native", "--json")
    assert {i["execution_id"] for i in json.loads(as_json.stdout)["items"]} == {runs.native, runs.agent_run}

    approved = agentspan("approvals", "approve", sdk.id)
    assert approved.returncode == 0 and approved.stdout.strip() == f"{sdk.id} approved", approved.stderr
    twice = agentspan("approvals", "reject", sdk.id, "--reason", "too late")
    assert twice.returncode == 1
    assert twice.stderr.strip() == f"agentspan: call {sdk.call_id} was already approved; a decision is recorded once"
    assert agentspan("approvals", "respond", interrupt.id, "yes").returncode == 0
    bad = agentspan("approvals", "edit", native.id, "--arguments", "{oops")
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
    assert bad.stderr.startswith("agentspan: --arguments is not JSON")
    edited = agentspan("approvals", "edit", native.id, "--arguments", '{"amount": 1}')
    assert edited.returncode == 0, edited.stderr
    rejected = agentspan("approvals", "reject", items[runs.agent_run].id, "--reason", "not today")
    assert rejected.returncode == 0, rejected.stderr
    missing = agentspan("approvals", "approve", "abcdef123456")
    assert missing.returncode == 1
    assert missing.stderr.strip().startswith("agentspan: no approval with id 'abcdef123456'")
    assert "Traceback" not in missing.stderr + bad.stderr + twice.stderr
    assert agentspan("approvals", "list").stdout.strip() == "nothing waits for a decision"

    runs.work()
    assert refunds == {5: 1}
    assert runs.service.get_execution(runs.graph_id).output["approval"] == "yes"
    assert runs.service.get_execution(runs.native).output == {"approved": True, "arguments": {"amount": 1}}
    assert runs.service.get_execution(runs.agent_run).status is ExecutionStatus.COMPLETED
    assert -9 not in refunds, "the rejected native call did not run"


# --- waits recorded before they named their framework ---------------------------------------------------
def _as_recorded_before(service: Service, execution_id: str, kind: str, drop: tuple[str, ...]) -> None:
    """Rewrite the execution's wait as an earlier version recorded it: without ``drop`` in its input, of
    ``kind``, with the key and fingerprint that input had."""
    from agentspan.durable._codec import fingerprint

    [step] = [s for s in service.get_journal(execution_id) if s.status.value == "suspended"]
    old = {k: v for k, v in step.input.items() if k not in drop}
    fp = fingerprint(old, ())
    service.store._conn.execute(  # type: ignore[attr-defined]
        "UPDATE steps SET kind = ?, input = ?, fingerprint = ?, key = ? WHERE execution_id = ? AND key = ?",
        (kind, json.dumps(old), fp, step.key.replace(step.fingerprint, fp), execution_id, step.key),
    )


def test_waits_recorded_before_they_named_their_framework_are_listed_and_their_runs_finish(runs: Runs) -> None:
    service = runs.service
    _as_recorded_before(service, runs.oa, "approval", ("framework",))
    _as_recorded_before(service, runs.graph_id, "signal", ("framework", "question"))
    by_execution = {i.execution_id: i for i in service.list_approvals().items}
    assert by_execution[runs.oa].framework == "openai_agents" and by_execution[runs.oa].tool == "refund"
    legacy = by_execution[runs.graph_id]
    assert (legacy.framework, legacy.type, legacy.signal) == ("langgraph", InboxType.INTERRUPT, "interrupt:1")
    assert [i.execution_id for i in service.list_approvals(framework="langgraph").items] == [runs.graph_id]
    service.decide_approval(by_execution[runs.oa].id, {"action": "approve"})
    service.decide_approval(legacy.id, {"action": "respond", "value": "fine"})
    runs.work()
    assert service.get_execution(runs.oa).status is ExecutionStatus.COMPLETED and refunds == {5: 1}
    graph = service.get_execution(runs.graph_id)
    assert graph.status is ExecutionStatus.COMPLETED and graph.output["approval"] == "fine"


def _decide_at_once(service: Service, item_id: str, decisions: list[dict[str, Any]]) -> dict[str, str]:
    """Each decision from its own thread, released together; which won and which got a conflict."""
    barrier = threading.Barrier(len(decisions))
    outcomes: dict[str, str] = {}

    def decide(decision: dict[str, Any]) -> None:
        barrier.wait()
        try:
            service.decide_approval(item_id, decision)
            outcomes[decision["action"]] = "won"
        except ConflictError:
            outcomes[decision["action"]] = "conflict"

    threads = [threading.Thread(target=decide, args=(d,)) for d in decisions]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_two_people_deciding_at_once_get_one_winner_and_a_conflict(service: Service) -> None:
    decisions = {"approve": {"approved": True}, "reject": {"approved": False, "reason": "no"}}
    for trial in range(20):
        eid = service.create_execution("payout", {"amount": trial}).id
        assert Worker(service, [payout]).run_once()
        [item] = service.list_approvals(execution_id=eid).items
        outcomes = _decide_at_once(service, item.id, [{"action": "approve"}, {"action": "reject", "reason": "no"}])
        assert sorted(outcomes.values()) == ["conflict", "won"], outcomes
        recorded = service.get_approval(item.id).decision
        assert recorded == next(decisions[action] for action, outcome in outcomes.items() if outcome == "won")
        assert Worker(service, [payout]).run_once()
        assert service.get_execution(eid).output == recorded


def test_a_guardrail_asking_a_person_is_in_the_inbox_and_an_edit_replaces_the_answer(db_path: Any) -> None:
    from agentspan.agents import AgentRuntime, RegexGuardrail

    leak = "Your card is 4111 1111 1111 1111."
    guard = RegexGuardrail(r"\b(?:\d[ -]?){13,16}\b", name="no_cards", on_fail="human")
    agent = NativeAgent(name="careful", model=ScriptedModel([leak]), guardrails=[guard])
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        handle = runtime.start(agent, "card?")
        wait_until(lambda: runtime.client.list_approvals(agent="careful").items, "the guardrail to ask a person")
        [item] = runtime.client.list_approvals(agent="careful").items
        assert (item.framework, item.type, item.tool) == ("native", InboxType.TOOL_APPROVAL, "guardrail:no_cards")
        assert item.arguments == {"output": leak} and "no_cards" in str(item.question)
        with pytest.raises(InvalidInputError):
            runtime.client.decide_approval(item.id, {"action": "approve", "arguments": {"text": "x"}})
        runtime.client.decide_approval(item.id, {"action": "approve", "arguments": {"output": "Your card ends 1111."}})
        result = handle.wait(timeout=30)
    assert result.is_success and result.output == "Your card ends 1111."

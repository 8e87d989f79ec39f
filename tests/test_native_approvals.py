"""Native tools that need approval: each call waits on its own for a decision recorded by the server."""

from __future__ import annotations

import collections
import functools
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from decisions import DecidesAfterClaim, at_once

from agentspan.agents import Agent, AgentHandle, AgentRuntime, tool
from agentspan.agents._loop import agent_function
from agentspan.client import HttpClient
from agentspan.errors import ConfigurationError, ConflictError, InvalidInputError, NotFoundError
from agentspan.runtime import ExecutionStatus, Service, SQLiteStore
from agentspan.runtime._approval import approval_signal
from agentspan.testing import FakeOpenAIServer, ScriptedModel, ServerHandle
from agentspan.worker import Worker

refunds: list[int] = []
lookups: list[str] = []


@pytest.fixture(autouse=True)
def _reset() -> None:
    refunds.clear()
    lookups.clear()


@tool(approval_required=True)
def refund(amount: int, note: str = "") -> str:
    """Refund an amount to the customer.

    Args:
        amount: In euros.
        note: Shown on the statement.
    """
    refunds.append(amount)
    return f"refunded {amount}"


@tool
def lookup(order: str) -> str:
    """Look an order up."""
    lookups.append(order)
    return f"order {order}: 2 items"


@tool(approval_required=True, approval_timeout=0.5)
def wipe(disk: str) -> str:
    """Wipe a disk."""
    refunds.append(-1)
    return f"wiped {disk}"


@tool(approval_required=True, approval_timeout=0.5, approval_default="approve")
def ping(host: str) -> str:
    """Ping a host."""
    lookups.append(host)
    return f"{host} is up"


def _agent(model: ScriptedModel, *tools: Any, name: str = "support") -> Agent:
    return Agent(name=name, model=model, instructions="Help.", tools=list(tools) or [refund, lookup])


def _until_waiting(handle: AgentHandle) -> None:
    for event in handle.events():
        if event.type == "execution.waiting":
            return
    raise AssertionError(f"the run ended without waiting: {handle.status}")


def _tool_message(model: ScriptedModel, call_id: str) -> str | None:
    for message in model.requests[-1].messages:
        if message.role == "tool" and message.tool_call_id == call_id:
            return message.content
    return None


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[AgentRuntime]:
    with AgentRuntime(db=tmp_path / "approvals.db", serve_http=False, synchronous="normal") as rt:
        yield rt


# --- the decorator -------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"approval_required": True, "approval_default": "maybe"}, "approval_default must be 'approve' or 'reject'"),
        ({"approval_required": True, "approval_timeout": 0}, "approval_timeout must be a positive number"),
        ({"approval_required": True, "approval_timeout": -5}, "approval_timeout must be a positive number"),
        ({"approval_timeout": 10}, "approval_required is not"),
    ],
)
def test_bad_approval_settings_are_refused_when_the_tool_is_decorated(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):

        @tool(**options)
        def act() -> str:
            """Act."""
            return "done"


def test_the_approval_settings_are_on_the_tool_definition() -> None:
    assert refund.__agentspan_tool__.approval_required is True  # type: ignore[attr-defined]
    assert lookup.__agentspan_tool__.approval_required is False  # type: ignore[attr-defined]
    definition = ping.__agentspan_tool__  # type: ignore[attr-defined]
    assert (definition.approval_timeout, definition.approval_default) == (0.5, "approve")


# --- waiting, per call -----------------------------------------------------------------------------------
def test_only_the_call_that_needs_approval_waits_and_the_turns_other_call_runs(runtime: AgentRuntime) -> None:
    model = ScriptedModel([[("lookup", {"order": "A1"}), ("refund", {"amount": 5})], "Refunded."])
    handle = runtime.start(_agent(model), "refund order A1")
    _until_waiting(handle)
    assert lookups == ["A1"] and refunds == []
    [pending] = handle.pending_approvals()
    assert (pending.call_id, pending.tool, pending.arguments) == ("call_2", "refund", {"amount": 5})
    assert (pending.agent, pending.framework) == ("support", "native")
    assert pending.schema is not None and pending.schema["required"] == ["amount"]
    handle.approve("call_2")
    result = handle.wait(timeout=30)
    assert result.status is ExecutionStatus.COMPLETED, result.error
    assert refunds == [5] and lookups == ["A1"]
    assert [c["result"] for c in result.tool_calls] == ["order A1: 2 items", "refunded 5"]


def test_every_waiting_call_of_a_turn_is_pending_at_once(runtime: AgentRuntime) -> None:
    model = ScriptedModel([[("refund", {"amount": 5}), ("refund", {"amount": 7})], "Done."])
    handle = runtime.start(_agent(model), "two refunds")
    _until_waiting(handle)
    assert [(p.call_id, p.arguments) for p in handle.pending_approvals()] == [
        ("call_1", {"amount": 5}),
        ("call_2", {"amount": 7}),
    ]
    handle.approve("call_1")
    handle.reject("call_2", "one per order")
    result = handle.wait(timeout=30)
    assert refunds == [5]
    assert {c["id"]: c["result"] for c in result.tool_calls} == {"call_1": "refunded 5", "call_2": "one per order"}


def test_the_one_waiting_call_is_decided_without_naming_it_and_several_must_be_named(runtime: AgentRuntime) -> None:
    model = ScriptedModel(
        [[("refund", {"amount": 5}), ("refund", {"amount": 7})], [("refund", {"amount": 9})], "Done."]
    )
    handle = runtime.start(_agent(model), "refunds, unnamed")
    _until_waiting(handle)
    with pytest.raises(ConflictError, match=r"waits for 2 approvals \(call_1, call_2\): name the call"):
        handle.approve()
    handle.approve("call_1")
    handle.reject("call_2", "one is enough")
    waits = (e for e in handle.events() if e.type == "execution.waiting")
    next(waits), next(waits)  # the second wait: the next turn's call
    [pending] = handle.pending_approvals()
    handle.approve()
    result = handle.wait(timeout=30)
    assert result.status is ExecutionStatus.COMPLETED, result.error
    assert refunds == [5, 9] and pending.arguments == {"amount": 9}
    with pytest.raises(ConflictError, match="is not waiting for an approval"):
        handle.reject()


def test_bad_arguments_go_to_the_model_without_waiting(runtime: AgentRuntime) -> None:
    model = ScriptedModel([[("refund", {"amount": "lots"})], "Sorry."])
    result = runtime.run(_agent(model), "refund lots")
    assert result.status is ExecutionStatus.COMPLETED and refunds == []
    assert (_tool_message(model, "call_1") or "").startswith("Error: invalid arguments for refund: amount")


# --- decisions ----------------------------------------------------------------------------------------------
def test_a_rejection_reason_reaches_the_model_as_the_tools_result(runtime: AgentRuntime) -> None:
    model = ScriptedModel([[("refund", {"amount": 500})], "I could not refund it."])
    handle = runtime.start(_agent(model), "refund 500")
    _until_waiting(handle)
    handle.reject("call_1", "too expensive")
    result = handle.wait(timeout=30)
    assert result.status is ExecutionStatus.COMPLETED and refunds == []
    assert _tool_message(model, "call_1") == "too expensive"
    assert not [s for s in runtime.client.get_journal(handle.execution_id) if s.kind == "tool"]


def test_a_rejection_without_a_reason_tells_the_model_it_was_rejected(runtime: AgentRuntime) -> None:
    model = ScriptedModel([[("refund", {"amount": 500})], "OK."])
    handle = runtime.start(_agent(model), "refund 500 again")
    _until_waiting(handle)
    handle.reject("call_1")
    handle.wait(timeout=30)
    assert _tool_message(model, "call_1") == "The user rejected this tool call."


def test_edited_arguments_run_the_tool_once_with_them_and_are_recorded(runtime: AgentRuntime) -> None:
    model = ScriptedModel([[("refund", {"amount": 500})], "Refunded 50."])
    handle = runtime.start(_agent(model), "refund 500, edited")
    _until_waiting(handle)
    handle.approve("call_1", arguments={"amount": 50, "note": "capped"})
    result = handle.wait(timeout=30)
    assert result.status is ExecutionStatus.COMPLETED, result.error
    assert refunds == [50]
    assert _tool_message(model, "call_1") == "refunded 50"
    assert json.loads(result.tool_calls[0]["arguments"]) == {"amount": 50, "note": "capped"}
    [step] = [s for s in runtime.client.get_journal(handle.execution_id) if s.kind == "tool"]
    assert step.input == {"arguments": {"amount": 50, "note": "capped"}}


def test_edited_arguments_the_schema_refuses_are_not_recorded_and_the_run_keeps_waiting(
    runtime: AgentRuntime,
) -> None:
    model = ScriptedModel([[("refund", {"amount": 500})], "Refunded."])
    handle = runtime.start(_agent(model), "refund 500, badly edited")
    _until_waiting(handle)
    with pytest.raises(InvalidInputError, match="field 'amount'"):
        handle.approve("call_1", arguments={"amount": "fifty"})
    with pytest.raises(InvalidInputError, match="'amount' is a required property"):
        handle.approve("call_1", arguments={"note": "no amount"})
    with pytest.raises(InvalidInputError, match="'surprise' was unexpected"):
        handle.approve("call_1", arguments={"amount": 5, "surprise": True})
    assert handle.status is ExecutionStatus.WAITING and len(handle.pending_approvals()) == 1
    handle.approve("call_1", arguments={"amount": 40})  # not a conflict: nothing was recorded before
    assert handle.wait(timeout=30).status is ExecutionStatus.COMPLETED
    assert refunds == [40]


def test_the_same_decision_again_is_idempotent_and_a_different_one_names_the_first(runtime: AgentRuntime) -> None:
    model = ScriptedModel([[("refund", {"amount": 500})], "No."])
    handle = runtime.start(_agent(model), "refund 500, decided twice")
    _until_waiting(handle)
    with pytest.raises(NotFoundError, match="no tool call 'call_9' waiting for approval"):
        handle.approve("call_9")
    handle.reject("call_1", "too expensive")
    handle.reject("call_1", "too expensive")
    with pytest.raises(ConflictError, match=r'call call_1 was already rejected \("too expensive"\)'):
        handle.approve("call_1")
    handle.wait(timeout=30)
    with pytest.raises(ConflictError, match="already rejected"):
        handle.approve("call_1", arguments={"amount": 1})
    assert refunds == []


# --- across processes -------------------------------------------------------------------------------------
@pytest.mark.slow
def test_a_run_waits_with_no_worker_and_a_new_worker_process_finishes_it(
    server: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from processes import start_worker, stop, wait_until

    log = tmp_path / "refunds.log"
    monkeypatch.setenv("AGENT_LOG", str(log))
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    script: list[Any] = [[("refund", {"amount": 20})], "Refunded 20."]
    with FakeOpenAIServer(script) as fake, HttpClient(server) as client:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        execution = client.create_execution("refunder", {"prompt": "refund 20"})
        first = start_worker(server=server, target="cli_agents:refunder", max_executions=1)
        assert first.wait(timeout=120) == 0  # the run suspended and the worker exited: nothing holds it
        stop(first)
        assert client.get_execution(execution.id).status is ExecutionStatus.WAITING
        [wait] = [s for s in client.get_journal(execution.id) if s.kind == "approval"]
        assert wait.input["tool"] == "refund" and wait.input["arguments"] == {"amount": 20}
        client.send_signal(execution.id, approval_signal(str(wait.input["call_id"])), {"approved": True})
        second = start_worker(server=server, target="cli_agents:refunder", max_executions=1)
        try:
            wait_until(lambda: client.get_execution(execution.id).status.is_terminal, "the approved run")
        finally:
            stop(second)
        final = client.get_execution(execution.id)
    assert final.status is ExecutionStatus.COMPLETED, final.error
    assert log.read_text().splitlines() == ["refund 20"]  # the tool ran once, in the second worker


# --- over HTTP: the codes ---------------------------------------------------------------------------------------
@pytest.fixture
def waiting(service: Service) -> str:
    """An execution of ``support`` waiting for a decision on ``call_1`` (a refund of 500)."""
    model = ScriptedModel([[("refund", {"amount": 500})], "Done."])
    eid = service.create_execution("support", {"prompt": "refund 500"}).id
    assert Worker(service, [agent_function(_agent(model))]).run_once()
    assert service.get_execution(eid).status is ExecutionStatus.WAITING
    return eid


def _post(server: ServerHandle, eid: str, call_id: str, payload: Any) -> httpx.Response:
    return httpx.post(f"{server.url}/executions/{eid}/signals/approval:{call_id}", json={"payload": payload})


def _delivered(service: Service, eid: str) -> list[str]:
    return [e.data["name"] for e in service.get_events(eid) if e.type == "signal.delivered"]


def test_a_decision_for_an_unknown_call_is_404_and_nothing_is_recorded(
    service: Service, http_server: ServerHandle, waiting: str
) -> None:
    response = _post(http_server, waiting, "call_404", {"approved": True})
    assert response.status_code == 404
    assert "no tool call 'call_404' waiting for approval" in response.json()["error"]["message"]
    assert _delivered(service, waiting) == []


@pytest.mark.parametrize(
    "payload",
    [
        {"approved": "yes"},
        {"approve": True},
        {"approved": True, "reason": 5},
        {"approved": False, "arguments": {"amount": 1}},
        {"approved": True, "arguments": [1]},
        {"approved": True, "colour": "red"},
        42,
    ],
)
def test_a_malformed_decision_is_400_and_nothing_is_recorded(
    service: Service, http_server: ServerHandle, waiting: str, payload: Any
) -> None:
    response = _post(http_server, waiting, "call_1", payload)
    assert response.status_code == 400, response.text
    assert _delivered(service, waiting) == []
    assert service.get_execution(waiting).status is ExecutionStatus.WAITING


def test_edited_arguments_that_fail_the_schema_are_400_naming_the_field(
    service: Service, http_server: ServerHandle, waiting: str
) -> None:
    response = _post(http_server, waiting, "call_1", {"approved": True, "arguments": {"amount": "x"}})
    assert response.status_code == 400
    assert "field 'amount'" in response.json()["error"]["message"]
    assert _delivered(service, waiting) == [] and service.get_execution(waiting).status is ExecutionStatus.WAITING
    assert _post(http_server, waiting, "call_1", {"approved": True, "arguments": {"amount": 9}}).status_code == 200


def test_a_second_different_decision_is_409_naming_the_recorded_one(
    service: Service, http_server: ServerHandle, waiting: str
) -> None:
    assert _post(http_server, waiting, "call_1", {"approved": True}).status_code == 200
    assert _post(http_server, waiting, "call_1", "approve").status_code == 200  # the same decision: a no-op
    conflict = _post(http_server, waiting, "call_1", {"approved": False, "reason": "no"})
    assert conflict.status_code == 409
    assert conflict.json()["error"]["message"].startswith("call call_1 was already approved;")
    assert _delivered(service, waiting) == ["approval:call_1"]


def test_edits_of_an_sdk_tools_approval_are_refused_saying_so(service: Service) -> None:
    pytest.importorskip("agents")
    from agents import Agent as SdkAgent
    from agents import function_tool
    from oa_flows import TurnModel

    import agentspan.adapters.openai_agents as oa

    @function_tool(needs_approval=True)
    def transfer(amount: int) -> str:
        """Transfer an amount."""
        refunds.append(amount)
        return f"transferred {amount}"

    model = TurnModel("t", [[("transfer", {"amount": 5})], "done"])
    agent = SdkAgent(name="bank", instructions="Help.", model=model, tools=[transfer])
    eid = service.create_execution("bank", oa.execution_input("transfer 5")).id
    fn = oa.agent_function(agent)
    assert Worker(service, [fn]).run_once()
    [wait] = [s for s in service.get_journal(eid) if s.kind == "approval"]
    signal = approval_signal(str(wait.input["call_id"]))
    with pytest.raises(InvalidInputError, match="edits are not supported for this wait"):
        service.send_signal(eid, signal, {"approved": True, "arguments": {"amount": 1}})
    assert _delivered(service, eid) == [] and service.get_execution(eid).status is ExecutionStatus.WAITING
    service.send_signal(eid, signal, {"approved": True})
    assert Worker(service, [fn]).run_once()
    assert service.get_execution(eid).status is ExecutionStatus.COMPLETED and refunds == [5]


# --- two decisions at once ----------------------------------------------------------------------------------------
TRIALS = 50


def _race(runtime: AgentRuntime) -> collections.Counter[str]:
    winners: collections.Counter[str] = collections.Counter()
    for trial in range(TRIALS):
        refunds.clear()
        model = ScriptedModel([[("refund", {"amount": 5})], "Done."])
        # A model's script is used once: each trial's agent is a new one (with its own name).
        handle = runtime.start(_agent(model, name=f"support-{trial}"), "refund 5")
        _until_waiting(handle)
        approve, reject = at_once(
            functools.partial(handle.approve, "call_1"), functools.partial(handle.reject, "call_1", "too expensive")
        )
        assert (approve is None) != (reject is None), (trial, approve, reject)
        loser = approve or reject
        assert isinstance(loser, ConflictError), (trial, loser)
        if approve is None:
            winners["approve"] += 1
            assert str(loser).startswith("call call_1 was already approved;"), str(loser)
            expected_refunds, expected_result = [5], "refunded 5"
        else:
            winners["reject"] += 1
            assert str(loser).startswith('call call_1 was already rejected ("too expensive");'), str(loser)
            expected_refunds, expected_result = [], "too expensive"
        result = handle.wait(timeout=30)
        assert result.status is ExecutionStatus.COMPLETED, (trial, result.error)
        assert refunds == expected_refunds, trial
        assert [c["result"] for c in result.tool_calls] == [expected_result], trial
        signals = [e for e in runtime.client.get_events(handle.execution_id) if e.type == "signal.delivered"]
        assert len(signals) == 1, trial
    # No worker thread died of the losing decision: each trial's worker still serves its agent.
    alive = {t.name for t in threading.enumerate()}
    assert {f"agentspan-worker-support-{trial}" for trial in range(TRIALS)} <= alive
    return winners


def test_approve_and_reject_of_one_call_in_the_same_millisecond_embedded_one_wins_every_trial(
    runtime: AgentRuntime,
) -> None:
    winners = _race(runtime)
    assert sum(winners.values()) == TRIALS


@pytest.mark.slow
def test_approve_and_reject_of_one_call_in_the_same_millisecond_over_http_one_wins_every_trial(server: str) -> None:
    with AgentRuntime(server) as runtime:
        assert sum(_race(runtime).values()) == TRIALS


# --- timeouts ------------------------------------------------------------------------------------------------
def test_an_unanswered_call_is_rejected_by_default_at_its_timeout_once(runtime: AgentRuntime) -> None:
    model = ScriptedModel([[("wipe", {"disk": "sda"})], "Not wiped."])
    handle = runtime.start(_agent(model, wipe), "wipe sda")
    result = handle.wait(timeout=30)
    assert result.status is ExecutionStatus.COMPLETED, result.error
    assert refunds == []
    assert _tool_message(model, "call_1") == "no decision within 0.5 s: rejected by default"
    signals = [e for e in runtime.client.get_events(handle.execution_id) if e.type == "signal.delivered"]
    assert len(signals) == 1
    [wait] = [s for s in runtime.client.get_journal(handle.execution_id) if s.kind == "approval"]
    assert wait.output == {"approved": False, "reason": "no decision within 0.5 s: rejected by default"}
    with pytest.raises(ConflictError, match="already rejected"):
        handle.approve("call_1")


def test_an_unanswered_call_with_an_approving_default_runs_at_its_timeout(runtime: AgentRuntime) -> None:
    model = ScriptedModel([[("ping", {"host": "db1"})], "Up."])
    result = runtime.run(_agent(model, ping), "ping db1")
    assert result.status is ExecutionStatus.COMPLETED, result.error
    assert lookups == ["db1"] and _tool_message(model, "call_1") == "db1 is up"


class _Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_a_decision_that_beats_the_default_at_the_timeout_is_the_one_applied(db_path: Path) -> None:
    clock = _Clock()
    service = Service(SQLiteStore(db_path), clock=clock)
    try:
        model = ScriptedModel([[("wipe", {"disk": "sdb"})], "Wiped."])
        fn = agent_function(_agent(model, wipe))
        eid = service.create_execution("support", {"prompt": "wipe sdb"}).id
        assert Worker(service, [fn]).run_once()
        assert service.get_execution(eid).status is ExecutionStatus.WAITING
        assert not Worker(service, [fn]).run_once()  # not due yet: nobody claims it
        clock.now += 1.0
        late = DecidesAfterClaim(service, lambda: service.send_signal(eid, approval_signal("call_1"), True))
        assert Worker(late, [fn]).run_once()  # type: ignore[arg-type]  # a Client in all but name
        execution = service.get_execution(eid)
        assert execution.status is ExecutionStatus.COMPLETED, execution.error
        assert refunds == [-1]  # the person's approval, not the default rejection
        assert len(_delivered(service, eid)) == 1
    finally:
        service.close()


def test_a_native_agent_outside_an_execution_cannot_wait_for_approval() -> None:
    import asyncio

    from agentspan.agents._loop import run_agent

    model = ScriptedModel([[("refund", {"amount": 5})], "Done."])
    with pytest.raises(ConfigurationError, match="needs approval"):
        asyncio.run(run_agent(_agent(model), "refund"))


def test_the_recorded_decision_is_one_json_object_whatever_form_was_sent(service: Service, waiting: str) -> None:
    service.send_signal(waiting, approval_signal("call_1"), "approve")
    _, recorded = service.store.signal_state(waiting, approval_signal("call_1"))
    assert recorded is not None and json.loads(recorded) == {"approved": True}


def test_a_decisions_payload_for_a_frameworks_confirmation_is_kept(service: Service, waiting: str) -> None:
    service.send_signal(waiting, approval_signal("call_1"), {"approved": True, "payload": {"ticket": 7}})
    _, recorded = service.store.signal_state(waiting, approval_signal("call_1"))
    assert recorded is not None and json.loads(recorded) == {"approved": True, "payload": {"ticket": 7}}


def test_a_sub_agents_call_waits_and_is_decided_from_the_parents_handle(runtime: AgentRuntime) -> None:
    clerk = _agent(ScriptedModel([[("refund", {"amount": 8})], "Refunded 8."]), name="clerk")
    boss_model = ScriptedModel([[("clerk", {"request": "refund 8"})], "The clerk refunded 8."])
    boss = Agent(name="boss", model=boss_model, instructions="Delegate.", agents=[clerk])
    handle = runtime.start(boss, "refund 8 through the clerk")
    _until_waiting(handle)
    [pending] = handle.pending_approvals()
    assert (pending.tool, pending.agent, pending.arguments) == ("refund", "clerk", {"amount": 8})
    handle.approve(pending.call_id)
    result = handle.wait(timeout=30)
    assert result.status is ExecutionStatus.COMPLETED, result.error
    assert refunds == [8] and result.output == "The clerk refunded 8."


@pytest.mark.slow
def test_the_default_decision_at_the_timeout_is_delivered_over_http(server: str) -> None:
    model = ScriptedModel([[("wipe", {"disk": "sdc"})], "Not wiped."])
    with AgentRuntime(server) as runtime:
        handle = runtime.start(_agent(model, wipe, name="remote-support"), "wipe sdc")
        result = handle.wait(timeout=60)
        signals = [e for e in runtime.client.get_events(handle.execution_id) if e.type == "signal.delivered"]
    assert result.status is ExecutionStatus.COMPLETED, result.error
    assert refunds == [] and len(signals) == 1
    assert _tool_message(model, "call_1") == "no decision within 0.5 s: rejected by default"


def test_executions_show_says_which_call_a_waiting_run_needs_a_decision_on(tmp_path: Path) -> None:
    from test_cli import agentspan

    db = tmp_path / "shown.db"
    with AgentRuntime(db=db, serve_http=False) as rt:
        handle = rt.start(_agent(ScriptedModel([[("refund", {"amount": 5})], "Done."])), "refund 5")
        _until_waiting(handle)
    shown = agentspan("executions", "show", handle.execution_id, "--db", str(db))
    assert shown.returncode == 0, shown.stderr
    assert 'waiting for a decision on refund({"amount": 5}) (agentspan approvals list)' in " ".join(
        shown.stdout.split()
    )

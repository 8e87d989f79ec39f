"""The web UI's test scenarios produce, on a real server over HTTP, the executions they promise; and the
browser helper keeps pages offline."""

from __future__ import annotations

import collections
import threading
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser import OfflinePage
from processes import wait_until
from ui_scenarios import (
    BULK_NAMES,
    BULK_STATUSES,
    FORK_CALLS,
    REFUNDS,
    crashed_and_resumed,
    forkable,
    langgraph_run,
    long_execution,
    many_executions,
    native_with_fanout_and_subagent,
    openai_agents_run,
    running_execution,
    waiting_for_approval,
)

from agentspan.agents import AgentRuntime
from agentspan.client import HttpClient
from agentspan.runtime import Event, ExecutionStatus, Service, Step, StepStatus
from agentspan.testing import ServerHandle


@pytest.fixture(autouse=True)
def _reset() -> None:
    FORK_CALLS.clear()
    REFUNDS.clear()


def _children(journal: list[Step], parent: Step | None) -> list[Step]:
    return [s for s in journal if s.parent == (parent.key if parent else None)]


def _shape(steps: list[Step]) -> list[tuple[str, str]]:
    return [(s.kind, s.name) for s in steps]


def _completed(client: Any, execution_id: str) -> Any:
    execution = client.get_execution(execution_id)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    return execution


# --- 1 ---------------------------------------------------------------------------------------------------
def test_the_planner_fans_out_three_tool_calls_then_delegates_to_a_sub_agent(ui_runtime: AgentRuntime) -> None:
    eid = native_with_fanout_and_subagent(ui_runtime)
    execution = _completed(ui_runtime.client, eid)
    journal = ui_runtime.client.get_journal(eid)
    assert execution.name == "planner" and execution.output["output"] == "Final answer."
    top = _children(journal, None)
    llm = ("llm", "scripted/scripted")
    fanout = [("tool", "search_web"), ("tool", "search_web"), ("tool", "fetch_page")]
    assert _shape(top) == [llm, *fanout, llm, ("agent", "researcher"), llm]
    assert [s.concurrent for s in top[1:4]] == [True, True, True], "the three calls of one turn ran at once"
    assert not any(s.concurrent for s in top[:1] + top[4:])
    [researcher] = [s for s in top if s.kind == "agent"]
    nested = _children(journal, researcher)
    assert _shape(nested) == [llm, ("tool", "search_web"), llm]
    assert nested[1].input["arguments"] == {"query": "durable execution"}
    assert all(s.status is StepStatus.COMPLETED for s in journal)


# --- 2 ---------------------------------------------------------------------------------------------------
def test_the_running_execution_holds_inside_a_tool_until_released(ui_runtime: AgentRuntime) -> None:
    eid, release = running_execution(ui_runtime)
    client = ui_runtime.client
    assert client.get_execution(eid).status is ExecutionStatus.RUNNING
    journal = client.get_journal(eid)
    assert [(s.name, s.status) for s in journal if s.kind == "tool"] == [
        ("take_notes", StepStatus.COMPLETED),
        ("hold", StepStatus.STARTED),
    ]
    assert client.get_execution(eid).status is ExecutionStatus.RUNNING, "nothing lets it go but release()"
    release()
    wait_until(lambda: client.get_execution(eid).status.is_terminal, "the released run", 60)
    assert _completed(client, eid).output["output"] == "Let go."


# --- 3 ---------------------------------------------------------------------------------------------------
def _claims(events: list[Event]) -> list[Event]:
    return [e for e in events if e.type == "execution.running"]


def test_a_killed_worker_process_leaves_a_run_that_another_worker_finishes_by_replay(
    ui_server: ServerHandle, tmp_path: Path
) -> None:
    eid = crashed_and_resumed(ui_server.url, tmp_path)
    with HttpClient(ui_server.url) as client:
        execution = _completed(client, eid)
        events = client.get_events(eid)
        journal = client.get_journal(eid)
    assert execution.output["output"] == "All topics looked up."

    first, second = _claims(events)
    assert (first.data["epoch"], second.data["epoch"]) == (1, 2)
    assert first.data["worker_id"] != second.data["worker_id"]
    # The server's lease sweep requeues the run (lease.expired, execution.queued), or the second claim
    # finds the lease run out (lease.expired, then its execution.running): either way the first ends so.
    between = [e.type for e in events if first.id < e.id < second.id and e.type != "execution.queued"]
    assert between[-1] == "lease.expired", "the first claim ended with its lease running out"
    expired = next(e for e in events if e.type == "lease.expired")
    assert expired.data["worker_id"] == first.data["worker_id"]

    epoch1 = [s for s in journal if s.epoch == 1]
    assert sum(s.kind == "tool" for s in epoch1) >= 3 and all(s.status is StepStatus.COMPLETED for s in epoch1)
    assert any(s.epoch == 2 for s in journal), "the second worker recorded the rest"
    rewritten = {e.data["key"] for e in events if e.id > second.id and e.type.startswith("step.")}
    assert not rewritten & {s.key for s in epoch1}, "steps recorded under epoch 1 are replayed, not recorded again"
    tools = [s for s in journal if s.kind == "tool"]
    assert [s.input["arguments"]["query"] for s in tools] == [f"topic {i}" for i in range(1, 7)]

    lines = [line.split("\t") for line in (tmp_path / "steady.log").read_text().splitlines()]
    runs = collections.Counter(query for query, _pid in lines)
    pids = dict(lines)
    for step in (s for s in epoch1 if s.kind == "tool"):
        query = step.input["arguments"]["query"]
        assert runs[query] == 1, f"{query} completed before the kill but ran again"
    assert len(set(pids.values())) == 2, "two worker processes ran tools"


# --- 4 ---------------------------------------------------------------------------------------------------
def test_the_approval_waits_in_the_inbox_and_approving_it_completes_the_run(
    ui_runtime: AgentRuntime, ui_server: ServerHandle
) -> None:
    eid = waiting_for_approval(ui_runtime)
    client = ui_runtime.client
    assert client.get_execution(eid).status is ExecutionStatus.WAITING
    items = httpx.get(f"{ui_server.url}/approvals").json()["items"]
    [item] = [i for i in items if i["execution_id"] == eid]
    assert (item["tool"], item["arguments"], item["agent"]) == ("refund", {"amount": 20}, "cashier")
    assert REFUNDS == {}
    assert httpx.post(f"{ui_server.url}/approvals/{item['id']}/approve", json={}).status_code == 200
    wait_until(lambda: client.get_execution(eid).status.is_terminal, "the approved run", 60)
    assert _completed(client, eid).output["output"] == "Refunded 20 EUR."
    assert REFUNDS == {20: 1}, "the worker still serving cashier ran the refund once"


# --- 5 ---------------------------------------------------------------------------------------------------
def test_the_langgraph_run_records_model_and_tool_steps_of_its_nodes(ui_runtime: AgentRuntime) -> None:
    eid = langgraph_run(ui_runtime)
    execution = _completed(ui_runtime.client, eid)
    journal = ui_runtime.client.get_journal(eid)
    assert execution.name == "support-graph"
    last = execution.output["messages"][-1]["data"]  # the output is the graph's final state
    assert last["content"] == "Summary: Yes: 12 blue mugs are in stock.", "summarize ran last"
    assert [(s.kind, s.name, s.input["node"]) for s in journal] == [
        ("llm", "GraphTurnModel", "agent"),
        ("tool", "lookup_stock", "tools"),
        ("llm", "GraphTurnModel", "agent"),
    ]
    assert journal[1].input["input"] == {"item": "blue mug"}
    assert all(s.parent is None and s.usage for s in journal if s.kind == "llm")


# --- 6 ---------------------------------------------------------------------------------------------------
def test_the_openai_agents_run_calls_tools_an_agent_as_tool_and_hands_off(ui_runtime: AgentRuntime) -> None:
    eid = openai_agents_run(ui_runtime)
    execution = _completed(ui_runtime.client, eid)
    journal = ui_runtime.client.get_journal(eid)
    assert execution.name == "triage"
    assert execution.output["output"] == "You were charged twice; I credited 20 EUR to order 7."
    assert execution.output["last_agent"] == "billing"
    top = _children(journal, None)
    llm = ("llm", "gpt-4o-mini")
    assert _shape(top) == [
        llm,
        ("tool", "check_order"),
        ("tool", "ask_policy"),
        llm,
        llm,
        ("tool", "issue_credit"),
        llm,
    ]
    assert [s.concurrent for s in top[1:3]] == [True, True]
    assert _shape(_children(journal, top[2])) == [llm], "the policy agent's model call nests under ask_policy"
    agents = [s.input["system"].split(":")[0] for s in journal if s.kind == "llm"]
    assert agents == ["You are triage", "You are policy", "You are triage", "You are billing", "You are billing"]
    assert "transfer_to_billing" in top[3].input["handoffs"]


# --- 7 ---------------------------------------------------------------------------------------------------
def test_the_long_execution_has_a_thousand_steps(ui_runtime: AgentRuntime) -> None:
    eid = long_execution(ui_runtime, n_steps=1000)
    _completed(ui_runtime.client, eid)
    journal = ui_runtime.client.get_journal(eid)
    assert len(journal) == 1001
    ticks = [s for s in journal if s.kind == "tool"]
    assert [s.input["arguments"]["i"] for s in ticks] == list(range(1, 501))
    assert all(s.status is StepStatus.COMPLETED for s in journal)


# --- 8 ---------------------------------------------------------------------------------------------------
def test_many_executions_are_listed_by_the_server_with_their_mixed_statuses(
    ui_service: Service, ui_server: ServerHandle
) -> None:
    n = 2000
    ids = many_executions(ui_service, n)
    assert len(set(ids)) == n
    with HttpClient(ui_server.url) as client:
        listed: list[Any] = []
        cursor = None
        while True:
            page_ = client.list_executions(limit=500, cursor=cursor)
            listed += page_.items
            cursor = page_.next_cursor
            if cursor is None:
                break
        statuses = collections.Counter(e.status for e in listed)
        names = collections.Counter(e.name for e in listed)
        with_steps = [eid for eid in ids[::100] if len(client.get_journal(eid)) == 3]
        waiting = client.get_execution(ids[8])
        approvals = client.list_approvals().items
    assert [e.id for e in listed] == ids[::-1], "newest first, as created"
    expected = collections.Counter(BULK_STATUSES[i % 10] for i in range(n))
    assert statuses == expected
    assert set(names) == set(BULK_NAMES) and len(set(names.values())) == 1
    assert len(with_steps) == n // 100
    assert waiting.status is ExecutionStatus.WAITING and waiting.wait is not None and waiting.wait.signal == "go"
    assert approvals == [], "the waiting executions wait for a signal, not a person"


def test_many_executions_fill_a_sqlite_file_before_it_is_served(tmp_path: Path) -> None:
    from agentspan.runtime import SQLiteStore

    ids = many_executions(tmp_path / "bulk.db", 30)
    service = Service(SQLiteStore(tmp_path / "bulk.db"))
    try:
        assert [e.id for e in service.list_executions(limit=100).items] == ids[::-1]
    finally:
        service.close()


# --- 9 ---------------------------------------------------------------------------------------------------
def test_the_forkable_run_called_four_tools_in_sequence_once_each(ui_runtime: AgentRuntime) -> None:
    eid = forkable(ui_runtime)
    execution = _completed(ui_runtime.client, eid)
    tools = [s for s in ui_runtime.client.get_journal(eid) if s.kind == "tool"]
    assert execution.output["output"] == "Pipeline done."
    assert [(s.name, s.input["arguments"]["n"]) for s in tools] == [("stage", n) for n in range(1, 5)]
    assert not any(s.concurrent for s in tools)
    assert FORK_CALLS == {1: 1, 2: 1, 3: 1, 4: 1}


# --- the browser helper ------------------------------------------------------------------------------------
@pytest.fixture
def local_site(tmp_path: Path) -> Iterator[str]:
    """A page on a loopback http.server that tries to load a script from a CDN."""
    (tmp_path / "index.html").write_text(
        "<!doctype html><title>offline</title><h1 id=greeting>Hello from loopback</h1>"
        '<script src="https://cdn.example.com/x.js"></script>',
        encoding="utf-8",
    )

    class Quiet(SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/index.html"
    server.shutdown()
    server.server_close()
    thread.join()


def test_the_browser_loads_a_local_page_and_refuses_the_cdn(page: OfflinePage, local_site: str) -> None:
    response = page.goto(local_site, wait_until="load")
    assert response is not None and response.status == 200
    assert page.locator("#greeting").inner_text() == "Hello from loopback"
    assert page.refused == ["https://cdn.example.com/x.js"]
    shot = page.screenshot("offline-smoke")
    assert shot.read_bytes().startswith(b"\x89PNG")


# --- together ------------------------------------------------------------------------------------------------
def test_the_scenarios_share_one_server(ui_runtime: AgentRuntime, ui_service: Service) -> None:
    """Browser tests fill one server with many scenarios: each keeps its own names and executions."""
    ids = [
        native_with_fanout_and_subagent(ui_runtime),
        waiting_for_approval(ui_runtime),
        langgraph_run(ui_runtime),
        openai_agents_run(ui_runtime),
        long_execution(ui_runtime, n_steps=20),
        forkable(ui_runtime),
        forkable(ui_runtime),
    ]
    held, release = running_execution(ui_runtime)
    bulk = many_executions(ui_service, 50)
    client = ui_runtime.client
    names = [client.get_execution(eid).name for eid in ids]
    assert names == ["planner", "cashier", "support-graph", "triage", "marathon", "pipeline", "pipeline"]
    assert len(set(ids)) == len(ids), "a second forkable run is a new execution"
    assert client.get_execution(held).status is ExecutionStatus.RUNNING
    assert client.get_execution(ids[1]).status is ExecutionStatus.WAITING
    assert FORK_CALLS == {1: 2, 2: 2, 3: 2, 4: 2}
    release()
    wait_until(lambda: client.get_execution(held).status.is_terminal, "the released run", 60)
    listed = [e.id for e in client.list_executions(limit=200).items]
    assert listed[0] == held, "the bulk executions are dated in the past, the scenarios' runs now"
    assert sorted(listed) == sorted([*ids, held, *bulk])

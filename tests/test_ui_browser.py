"""The web UI in a real headless Chromium, over a real server with real executions, offline.

Every page may reach only the loopback interface (``browser.OfflinePage``): a reference to a CDN would
be refused and fail the test. Each test writes screenshots of what it saw under ``tests/screenshots``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from browser import OfflinePage, screenshots_dir
from ui_scenarios import (
    FORK_CALLS,
    crashed_and_resumed,
    forkable,
    langgraph_run,
    long_execution,
    native_with_fanout_and_subagent,
    openai_agents_run,
    running_execution,
    waiting_for_approval,
)

from agentspan.agents import Agent, AgentRuntime, tool
from agentspan.client import HttpClient
from agentspan.runtime import ExecutionStatus, Service, SQLiteStore, StepStatus
from agentspan.testing import ScriptedModel, ServerHandle, serve_in_thread

pytest.importorskip("playwright")
from playwright.sync_api import expect

LIVE = 20_000
"""How long a live update may take to reach the page, in ms (a worker finishing, a stream event)."""


def site(server: ServerHandle) -> str:
    return server.url.removesuffix("/api")


def graph_nodes(page: OfflinePage) -> list[dict[str, Any]]:
    nodes: list[dict[str, Any]] = page.evaluate(
        """() => window.agentspanGraph.nodes().map((n) => ({
            id: n.id(), key: n.data('key') || null, parent: n.data('parent') || null,
            part: n.data('part') || null, partKind: n.data('partKind') || null, classes: n.classes(),
        }))"""
    )
    return nodes


def graph_edges(page: OfflinePage) -> list[dict[str, Any]]:
    edges: list[dict[str, Any]] = page.evaluate(
        "() => window.agentspanGraph.edges().map((e) => ({source: e.data('source'), target: e.data('target'),"
        " classes: e.classes()}))"
    )
    return edges


def click_node(page: OfflinePage, key: str) -> None:
    """Click the graph node of step ``key`` where it is drawn on the canvas."""
    point = page.evaluate(
        """(key) => { const cy = window.agentspanGraph; const n = cy.nodes().filter((x) => x.data('key') === key);
        const p = n.renderedPosition(); const box = cy.container().getBoundingClientRect();
        return {x: box.left + p.x, y: box.top + p.y}; }""",
        key,
    )
    page.mouse.click(point["x"], point["y"])


def open_execution(page: OfflinePage, server: ServerHandle, execution_id: str, tab: str = "") -> None:
    page.goto(f"{site(server)}/ui/executions/{execution_id}{'?tab=' + tab if tab else ''}")
    if not tab:
        page.wait_for_selector("[data-testid=graph][data-nodes]")


def head(page: OfflinePage) -> Any:
    return page.locator("[data-testid=execution-head]")


def test_the_list_shows_a_finished_and_a_running_execution_and_updates_live(
    page: OfflinePage, ui_runtime: AgentRuntime, ui_server: ServerHandle
) -> None:
    done = native_with_fanout_and_subagent(ui_runtime)
    running, release = running_execution(ui_runtime)
    page.goto(f"{site(ui_server)}/")
    row = {eid: page.locator(f"[data-testid=execution-row][data-id='{eid}']") for eid in (done, running)}
    expect(row[done]).to_have_attribute("data-status", "completed")
    expect(row[running]).to_have_attribute("data-status", "running")
    steps = len(ui_runtime.client.get_journal(done))
    expect(row[done]).to_contain_text("Agentspan")  # the framework column: a native agent
    expect(row[done].locator("td").nth(6)).to_have_text(str(steps))
    expect(page.locator("[data-testid=list-summary]")).to_have_text("1–2 of 2")
    page.screenshot("list")
    release()
    # Nobody reloads the page: the list refreshes itself and sees the run finish.
    expect(row[running]).to_have_attribute("data-status", "completed", timeout=LIVE)
    page.locator("[data-testid=filter-status]").select_option("running")
    expect(page.locator("[data-testid=execution-row]")).to_have_count(0)
    page.locator("[data-testid=filter-status]").select_option("")
    page.locator("[data-testid=filter-q]").fill(running[:6])
    page.locator("[data-testid=filter-q]").press("Enter")
    expect(page.locator("[data-testid=execution-row]")).to_have_count(1)
    page.locator("[data-testid=filter-q]").fill("")
    page.locator("[data-testid=filter-q]").press("Enter")
    page.locator("[data-testid=filter-range]").select_option("custom")
    page.locator("[data-testid=filter-from]").fill("2099-01-01T00:00")
    expect(page.locator("[data-testid=execution-row]")).to_have_count(0)
    page.locator("[data-testid=filter-from]").fill("2000-01-01T00:00")
    expect(page.locator("[data-testid=execution-row]")).to_have_count(2)
    assert page.refused == []


def test_a_running_execution_is_cancelled_from_its_page(
    page: OfflinePage, ui_runtime: AgentRuntime, ui_server: ServerHandle
) -> None:
    running, release = running_execution(ui_runtime)
    open_execution(page, ui_server, running)
    expect(head(page)).to_have_attribute("data-status", "running")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("[data-testid=cancel]").click()
    expect(head(page)).to_have_attribute("data-status", "cancelled", timeout=LIVE)
    release()
    assert ui_runtime.client.get_execution(running).status is ExecutionStatus.CANCELLED
    expect(page.locator("[data-testid=cancel]")).to_have_count(0)


def test_the_graph_of_a_native_run_has_a_node_per_step_the_fan_out_and_the_sub_agent(
    page: OfflinePage, ui_runtime: AgentRuntime, ui_server: ServerHandle
) -> None:
    eid = native_with_fanout_and_subagent(ui_runtime)
    journal = ui_runtime.client.get_journal(eid)
    open_execution(page, ui_server, eid)
    nodes = graph_nodes(page)
    assert sorted(n["key"] for n in nodes if n["key"]) == sorted(s.key for s in journal), "one node per step"
    parallel = [s for s in journal if s.concurrent and s.parent is None]
    assert len(parallel) == 3
    first_llm = next(s for s in journal if s.kind == "llm")
    fan = sorted(e["target"] for e in graph_edges(page) if e["source"] == f"s{first_llm.seq}")
    assert fan == sorted(f"s{s.seq}" for s in parallel), "the model call fans out to its three tool calls"
    agent = next(s for s in journal if s.kind == "agent")
    inside = {n["key"] for n in nodes if n["parent"] == f"s{agent.seq}"}
    assert inside and inside == {s.key for s in journal if s.parent == agent.key}, "the sub-agent is a group"
    page.screenshot("graph-native")

    tool = parallel[1]
    click_node(page, tool.key)
    inspector = page.locator(f"[data-testid=inspector][data-key='{tool.key}']")
    expect(inspector.locator("[data-testid=inspector-input]")).to_contain_text(tool.input["arguments"]["query"])
    expect(inspector.locator("[data-testid=inspector-output]")).to_contain_text(str(tool.output))
    expect(inspector.locator("[data-testid=inspector-idempotency]")).to_have_text(tool.idempotency_key)
    page.screenshot("inspector-tool")

    page.locator("[data-testid=tab-conversation]").click()
    turns = page.locator("[data-testid=turn]")
    expect(turns).to_have_count(sum(s.kind == "llm" for s in journal))
    expect(turns.last).to_contain_text(str(ui_runtime.client.get_execution(eid).output["output"]))
    page.screenshot("conversation")
    assert page.refused == []


@tool
def explode(reason: str) -> str:
    """Fail, for the inspector to show where."""
    raise ValueError(f"cannot go on: {reason}")


def test_a_failed_tool_step_is_marked_and_its_traceback_inspected(
    page: OfflinePage, ui_runtime: AgentRuntime, ui_server: ServerHandle
) -> None:
    agent = Agent(
        name="fragile", model=ScriptedModel([[("explode", {"reason": "no disk"})], "It failed."]), tools=[explode]
    )
    result = ui_runtime.run(agent, "try it", timeout=60)
    failed = next(s for s in ui_runtime.client.get_journal(result.execution_id) if s.kind == "tool")
    assert failed.status is StepStatus.FAILED
    open_execution(page, ui_server, result.execution_id)
    node = next(n for n in graph_nodes(page) if n["key"] == failed.key)
    assert "s-failed" in node["classes"]
    click_node(page, failed.key)
    error = page.locator(f"[data-testid=inspector][data-key='{failed.key}'] [data-testid=inspector-error]")
    expect(error).to_contain_text("ValueError: cannot go on: no disk")
    expect(error.locator("pre.trace")).to_contain_text('raise ValueError(f"cannot go on: {reason}")')
    page.screenshot("inspector-failed")
    assert page.refused == []


def test_a_crashed_and_resumed_execution_shows_both_workers_and_the_replayed_steps(
    page: OfflinePage, ui_server: ServerHandle, tmp_path: Path
) -> None:
    eid = crashed_and_resumed(ui_server.url, tmp_path)
    with HttpClient(ui_server.url) as client:
        claims = [e.data for e in client.get_events(eid) if e.type == "execution.running"]
        journal = client.get_journal(eid)
    first, last = claims[0], claims[-1]
    assert first["worker_id"] != last["worker_id"]
    ran_first = [s for s in journal if s.epoch == first["epoch"] and s.status is StepStatus.COMPLETED]
    ran_last = [s for s in journal if s.epoch == last["epoch"]]
    assert ran_first and ran_last
    open_execution(page, ui_server, eid, "timeline")
    lanes = page.locator("[data-testid=timeline-claim]")
    expect(lanes).to_have_count(len(claims))
    assert [lanes.nth(i).get_attribute("data-worker") for i in range(len(claims))] == [c["worker_id"] for c in claims]
    expect(lanes.first).to_contain_text("lease expired")
    expect(lanes.last).to_contain_text(f"replayed {len(ran_first)} step")
    for step in ran_first:  # recorded by the killed worker, returned from the journal to the next one
        row = page.locator(f"[data-testid=timeline-step][data-key='{step.key}']")
        expect(row).to_have_attribute("data-worker", first["worker_id"])
        expect(row.locator("[data-testid=replayed]")).to_have_count(1)
    for step in ran_last:  # run by the worker that finished it
        row = page.locator(f"[data-testid=timeline-step][data-key='{step.key}']")
        expect(row).to_have_attribute("data-worker", last["worker_id"])
        expect(row.locator("[data-testid=replayed]")).to_have_count(0)
    expect(page.locator("[data-testid=stat-workers]")).to_contain_text("2")
    page.screenshot("timeline-crash")
    assert page.refused == []


def test_an_approval_decided_in_the_inbox_completes_the_run_live(
    page: OfflinePage, ui_runtime: AgentRuntime, ui_server: ServerHandle
) -> None:
    eid = waiting_for_approval(ui_runtime)
    open_execution(page, ui_server, eid)
    expect(head(page)).to_have_attribute("data-status", "waiting")
    expect(page.locator("[data-testid=pending-decisions]")).to_be_visible()
    inbox = page.context.new_page()  # a second tab; the first stays open on the execution
    inbox.goto(f"{site(ui_server)}/ui/approvals")
    card = inbox.locator(f"[data-testid=approval][data-execution='{eid}']")
    expect(card).to_be_visible()
    expect(card.locator("[data-testid=approval-tool]")).to_have_text("refund")
    inbox.screenshot(path=str(screenshots_dir() / "approvals-inbox.png"))
    card.locator("[data-testid=approve]").click()
    expect(card.locator("[data-testid=decided]")).to_be_visible()
    # The execution's tab was never reloaded: the event stream brings the run to its end on screen.
    expect(head(page)).to_have_attribute("data-status", "completed", timeout=LIVE)
    expect(page.locator("[data-testid=pending-decisions]")).to_have_count(0)
    assert ui_runtime.client.get_execution(eid).status is ExecutionStatus.COMPLETED
    page.screenshot("approved-live")
    inbox.close()
    assert page.refused == []


def test_an_approval_is_approved_with_edited_arguments_on_the_execution_page(
    page: OfflinePage, ui_runtime: AgentRuntime, ui_server: ServerHandle
) -> None:
    eid = waiting_for_approval(ui_runtime)
    open_execution(page, ui_server, eid)
    pending = page.locator("[data-testid=pending-decisions]")
    pending.locator("[data-testid=edit]").click()
    editor = pending.locator("[data-testid=edit-arguments]")
    arguments = json.loads(editor.input_value())
    editor.fill("not json")
    pending.locator("[data-testid=approve-edited]").click()
    expect(pending.locator("[data-testid=decision-error]")).to_contain_text("not JSON")
    editor.fill(json.dumps({**arguments, "amount": 5}))
    pending.locator("[data-testid=approve-edited]").click()
    expect(head(page)).to_have_attribute("data-status", "completed", timeout=LIVE)
    refund = next(s for s in ui_runtime.client.get_journal(eid) if s.kind == "tool" and s.name == "refund")
    assert refund.output == "refunded 5", "the edited call ran, not the recorded one"


def test_fork_from_a_step_does_not_repeat_the_steps_before_it(
    page: OfflinePage, ui_runtime: AgentRuntime, ui_server: ServerHandle
) -> None:
    FORK_CALLS.clear()
    eid = forkable(ui_runtime)
    assert FORK_CALLS == {1: 1, 2: 1, 3: 1, 4: 1}
    tools = [s for s in ui_runtime.client.get_journal(eid) if s.kind == "tool"]
    third = tools[2]
    open_execution(page, ui_server, eid, "timeline")
    page.locator(f"[data-testid=timeline-step][data-key='{third.key}']").click()
    page.locator(f"[data-testid=inspector][data-key='{third.key}'] [data-testid=fork]").click()
    page.wait_for_url(re.compile(rf"/ui/executions/(?!{eid})[0-9a-f]+"))
    fork_id = page.url.split("/ui/executions/")[1].split("?")[0]
    page.wait_for_selector("[data-testid=graph][data-nodes]")
    expect(head(page)).to_have_attribute("data-status", "completed", timeout=LIVE)
    expect(page.locator("[data-testid=forked-from]")).to_contain_text(eid[:8])
    assert FORK_CALLS == {1: 1, 2: 1, 3: 2, 4: 2}, "stages 1 and 2 were replayed, 3 and 4 ran again"
    journal = ui_runtime.client.get_journal(fork_id)
    copied = [s for s in journal if s.epoch == 0]
    assert copied and max(s.seq for s in copied) < min(s.seq for s in journal if s.key == third.key)
    assert ui_runtime.client.get_execution(fork_id).output == ui_runtime.client.get_execution(eid).output
    page.screenshot("fork")
    assert page.refused == []


def test_langgraph_and_openai_agents_executions_render_their_groups(
    page: OfflinePage, ui_runtime: AgentRuntime, ui_server: ServerHandle
) -> None:
    graph_id = langgraph_run(ui_runtime)
    journal = ui_runtime.client.get_journal(graph_id)
    open_execution(page, ui_server, graph_id)
    nodes = graph_nodes(page)
    groups = {n["id"]: n for n in nodes if n["partKind"] == "node"}
    recorded = {s.input["node"] for s in journal if s.kind in ("llm", "tool") and isinstance(s.input, dict)}
    assert recorded and {g["part"] for g in groups.values()} == recorded, "one group per LangGraph node visited"
    for step in journal:
        if step.kind in ("llm", "tool"):
            node = next(n for n in nodes if n["key"] == step.key)
            assert groups[node["parent"]]["part"] == step.input["node"]
    expect(page.locator("[data-testid=execution-head]")).to_contain_text("LangGraph")
    page.screenshot("graph-langgraph")

    agents_id = openai_agents_run(ui_runtime)
    journal = ui_runtime.client.get_journal(agents_id)
    open_execution(page, ui_server, agents_id)
    nodes = graph_nodes(page)
    agents = [n["part"] for n in nodes if n["partKind"] == "agent" and n["parent"] is None]
    assert agents == ["triage", "billing"], "each agent's turns are a group, in order"
    ask = next(s for s in journal if s.kind == "tool" and s.name == "ask_policy")
    inner = [n["part"] for n in nodes if n["partKind"] == "agent" and n["parent"] == f"s{ask.seq}"]
    assert inner == ["policy"], "an agent run as a tool is a group inside its tool call"
    handoffs = [e for e in graph_edges(page) if "handoff" in e["classes"]]
    assert len(handoffs) == 1
    tool_parents = {
        s.name: next(n for n in nodes if n["key"] == s.key)["parent"]
        for s in journal
        if s.kind == "tool" and not s.parent
    }
    by_id = {n["id"]: n for n in nodes}
    assert {name: by_id[parent]["part"] for name, parent in tool_parents.items()} == {
        "check_order": "triage",
        "ask_policy": "triage",
        "issue_credit": "billing",
    }
    expect(page.locator("[data-testid=execution-head]")).to_contain_text("OpenAI Agents SDK")
    page.screenshot("graph-openai-agents")
    assert page.refused == []


def test_a_long_execution_opens_with_a_window_of_its_graph_and_draws_all_on_request(
    page: OfflinePage, ui_runtime: AgentRuntime, ui_server: ServerHandle
) -> None:
    eid = long_execution(ui_runtime, 1000)
    steps = len(ui_runtime.client.get_journal(eid))
    open_execution(page, ui_server, eid)
    graph = page.locator("[data-testid=graph]")
    expect(graph).to_have_attribute("data-windowed", "true")
    drawn = int(graph.get_attribute("data-nodes") or 0)
    assert 0 < drawn < steps
    page.locator("[data-testid=graph-all]").click()
    expect(graph).to_have_attribute("data-windowed", "false")
    assert int(graph.get_attribute("data-nodes") or 0) == steps + 2  # every step, the input and the end
    page.locator("[data-testid=tab-timeline]").click()
    expect(page.locator("[data-testid=timeline-step]")).to_have_count(steps)


def test_with_a_token_the_ui_asks_for_it_once_and_keeps_it_in_an_http_only_cookie(
    page: OfflinePage, tmp_path: Path
) -> None:
    service = Service(SQLiteStore(tmp_path / "auth.db"))
    try:
        with serve_in_thread(service, auth_token="s3cret-token") as server:
            service.create_execution("secured", {"n": 1})
            answer = page.goto(f"{site(server)}/ui/executions")
            assert answer is not None and answer.status == 401
            token = page.locator("[data-testid=login-token]")
            token.fill("wrong")
            page.locator("[data-testid=login-submit]").click()
            expect(page.locator("body")).to_contain_text("wrong")
            page.screenshot("login")
            token.fill("s3cret-token")
            page.locator("[data-testid=login-submit]").click()
            expect(page.locator("[data-testid=execution-row]")).to_have_count(1)
            assert page.evaluate("document.cookie") == "", "the session cookie is HttpOnly"
            cookies = page.context.cookies()
            assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
                ("agentspan_session", True, "Strict")
            ]
            assert "s3cret-token" not in cookies[0]["value"]
            page.goto(f"{site(server)}/api/docs")
            expect(page.locator(".swagger-ui")).to_be_visible()
    finally:
        service.close()
    assert page.refused == []

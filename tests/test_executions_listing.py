"""The executions listing the UI reads: the framework each execution was started with, filters by
framework, status and search, per-item summaries (steps, calls, tokens, cost, times, what it waits
for), the total, and cursor paging through a large history, over a real server and SQLite file."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph.graph import END, START, StateGraph

from agentspan.agents import Agent, AgentRuntime, ModelResponse, Usage, tool
from agentspan.runtime import (
    DivergenceRecord,
    ExecutionStatus,
    FinishRecord,
    Service,
    SQLiteStore,
    StepRecord,
    StepStatus,
    WaitInfo,
)
from agentspan.runtime.store._schema import MIGRATIONS
from agentspan.testing import ScriptedModel, ServerHandle, serve_in_thread
from agentspan.testing._scripted import scripted_responses


@tool
def search(query: str) -> str:
    """Search for something."""
    return f"results for {query}"


def priced_research(turns: int, *, provider: str = "openai", name: str = "gpt-4o-mini") -> ScriptedModel:
    """``turns`` searches then an answer; every model call reports 60 + 40 tokens."""
    usage = Usage(prompt_tokens=60, completion_tokens=40, total_tokens=100)
    script = ScriptedModel.research_script(turns, "search", lambda i: {"query": f"q{i + 1}"}, answer="done")
    replies: list[ModelResponse] = [r.model_copy(update={"usage": usage}) for r in scripted_responses(script)]
    return ScriptedModel(replies, provider=provider, name=name)


def one_node_graph(name: str) -> Any:
    def node(state: dict[str, Any]) -> dict[str, Any]:
        return {"text": state["text"].upper()}

    builder: StateGraph[Any] = StateGraph(dict)
    builder.add_node("shout", node)
    builder.add_edge(START, "shout")
    builder.add_edge("shout", END)
    return builder.compile(name=name)


@pytest.fixture
def api(http_server: ServerHandle) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=http_server.url, timeout=30) as client:
        yield client


def listing(api: httpx.Client, **params: Any) -> dict[str, Any]:
    response = api.get("/executions", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


# --- framework and summaries of real runs ------------------------------------------------------------
def test_native_and_langgraph_runs_record_their_framework_and_a_summary_of_their_journal(db_path: Path) -> None:
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        native = runtime.run(
            Agent(name="researcher", model=priced_research(3), instructions="Research.", tools=[search]), "go"
        )
        graph = runtime.run(one_node_graph("shouter"), {"text": "hi"}, timeout=30)
    assert native.is_success and graph.is_success
    service = Service(SQLiteStore(db_path))
    try:
        with serve_in_thread(service) as server, httpx.Client(base_url=server.url) as api:
            page = listing(api, summary="true")
            plain = listing(api)
            langgraph_only = listing(api, framework="langgraph", summary="true")
    finally:
        service.close()
    by_id = {item["id"]: item for item in page["items"]}
    assert page["total"] == 2 and plain.get("total") is None
    assert all(item["summary"] is None for item in plain["items"]), "summaries only on request"
    run = by_id[native.execution_id]
    assert run["framework"] == "native" and run["name"] == "researcher"
    summary = run["summary"]
    assert (summary["llm_calls"], summary["tool_calls"], summary["steps"]) == (4, 3, 7)
    assert summary["tokens"] == 400
    # gpt-4o-mini: $0.15 / $0.60 per million input / output tokens; 4 calls of 60 + 40 tokens.
    assert summary["cost_usd"] == pytest.approx(4 * (60 * 0.15 + 40 * 0.60) / 1e6)
    assert summary["cost_note"] is None and summary["waiting_for"] is None
    assert summary["started_at"] is not None and summary["ended_at"] is not None
    assert summary["started_at"] <= summary["ended_at"]
    assert by_id[graph.execution_id]["framework"] == "langgraph"
    assert [item["id"] for item in langgraph_only["items"]] == [graph.execution_id]
    assert langgraph_only["total"] == 1


def test_sdk_agents_and_langgraph_drop_ins_and_durable_functions_record_what_runs_them(db_path: Path) -> None:
    import openai
    from agents import Agent as SdkAgent
    from agents import OpenAIChatCompletionsModel

    import agentspan.adapters.langgraph as lg
    from agentspan import durable
    from agentspan.testing import FakeOpenAIServer

    @durable.function(name="plain-fn")
    def plain(n: int) -> int:
        return n + 1

    with FakeOpenAIServer(["the answer"]) as fake:
        pool = openai.DefaultAsyncHttpxClient(limits=httpx.Limits(max_keepalive_connections=0))
        client = openai.AsyncOpenAI(base_url=fake.base_url, api_key="test", max_retries=0, http_client=pool)
        sdk = SdkAgent(
            name="sdk-agent",
            instructions="Answer.",
            model=OpenAIChatCompletionsModel(model="gpt-4o", openai_client=client),
        )
        with AgentRuntime(db=db_path, serve_http=False) as runtime:
            assert runtime.run(sdk, "question?", timeout=30).is_success
            assert lg.durable(one_node_graph("dropped-in"), runtime=runtime).invoke({"text": "x"}) == {"text": "X"}
            assert runtime._runtime.run(plain, 1) == 2
            frameworks = {e.name: e.framework for e in runtime.client.list_executions().items}
            sdk_summary = runtime.client.list_executions(framework="openai_agents", summary=True).items[0].summary
    assert frameworks == {"sdk-agent": "openai_agents", "dropped-in": "langgraph", "plain-fn": None}
    assert sdk_summary is not None and sdk_summary.llm_calls == 1 and sdk_summary.tokens > 0


def test_an_unpriced_model_gives_tokens_and_no_cost_with_a_note(db_path: Path) -> None:
    model = priced_research(1, provider="local", name="my-finetune")
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        result = runtime.run(Agent(name="tuned", model=model, instructions="Go.", tools=[search]), "go")
        page = runtime.client.list_executions(summary=True)
    assert result.is_success
    summary = page.items[0].summary
    assert summary is not None and summary.tokens == 200 and summary.llm_calls == 2
    assert summary.cost_usd is None
    assert summary.cost_note is not None and "local/my-finetune" in summary.cost_note


def test_a_plain_durable_function_has_no_framework(service: Service) -> None:
    execution = service.create_execution("fn", {"n": 1})
    assert execution.framework is None
    assert service.list_executions(summary=True).items[0].framework is None


# --- summaries of recorded journals ------------------------------------------------------------------
def _run(service: Service, name: str, records: list[Any], framework: str | None = None) -> str:
    execution = service.create_execution(name, {}, framework=framework)
    claim = service.claim("w1", [name])
    assert claim is not None and claim.execution.id == execution.id
    service.write_records(execution.id, "w1", claim.epoch, records)
    return execution.id


def test_summary_counts_active_steps_only_and_says_what_a_waiting_execution_waits_for(service: Service) -> None:
    usage = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
    waiting = _run(service, "asker", [
        StepRecord(key="m1", kind="llm", name="openai/gpt-4o", status=StepStatus.COMPLETED, usage=usage),
        StepRecord(key="m2", kind="llm", name="openai/gpt-4o", status=StepStatus.COMPLETED, usage=usage),
        StepRecord(key="t1", kind="tool", name="refund", status=StepStatus.COMPLETED, output=1),
        StepRecord(
            key="a1", kind="approval", name="refund", status=StepStatus.SUSPENDED,
            wait=WaitInfo(signal="approval:c1"),
        ),
        FinishRecord(status="waiting"),
    ], framework="native")  # fmt: skip
    diverged = _run(service, "diverger", [
        StepRecord(key="m1", kind="llm", name="gpt-4o", status=StepStatus.COMPLETED, usage=usage),
        DivergenceRecord(key="m2", expected="m1", superseded=["m1"]),
        StepRecord(key="m2", kind="llm", name="gpt-4o", status=StepStatus.COMPLETED, usage={"total_tokens": 10}),
        FinishRecord(status="completed", output="ok"),
    ])  # fmt: skip
    items = {e.id: e for e in service.list_executions(summary=True).items}
    summary = items[waiting].summary
    assert summary is not None
    assert (summary.steps, summary.llm_calls, summary.tool_calls) == (4, 2, 1)
    assert summary.tokens == 3000
    assert summary.cost_usd == pytest.approx(2 * (1000 * 2.50 + 500 * 10.00) / 1e6)
    assert summary.waiting_for == "approval" and summary.ended_at is None
    assert summary.started_at is not None
    other = items[diverged].summary
    assert other is not None
    assert (other.steps, other.llm_calls, other.tokens) == (1, 1, 10), "the superseded step is history"
    assert other.ended_at is not None and other.waiting_for is None


def test_a_durable_sleep_and_an_exhausted_budget_say_what_they_wait_for(db_path: Path) -> None:
    from processes import wait_until

    from agentspan import durable
    from agentspan.agents import Budget

    @durable.function(name="napper")
    def napper() -> str:
        durable.sleep(3600)
        return "rested"

    model = priced_research(5)
    spender = Agent(name="spender", model=model, instructions="Go.", tools=[search])
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        nap = runtime._runtime.start(napper).execution_id
        spent = runtime.start(spender, "go", budget=Budget(max_tokens=150, on_exhausted="wait")).execution_id

        def waiting_for() -> dict[str, str | None]:
            items = runtime.client.list_executions(status="waiting", summary=True).items
            return {e.id: e.summary.waiting_for for e in items if e.summary is not None}

        wait_until(lambda: len(waiting_for()) == 2, "both executions to wait")
        found = waiting_for()
        for execution_id in (nap, spent):
            runtime.client.cancel_execution(execution_id)
    assert found == {nap: "timer", spent: "budget"}


# --- filters, search, total ----------------------------------------------------------------------------
def test_filters_by_framework_status_and_search_with_the_total_of_the_filtered_set(
    service: Service, api: httpx.Client
) -> None:
    made = {
        "a": service.create_execution("Billing_Agent", {}, framework="native").id,
        "b": service.create_execution("billing-graph", {}, framework="langgraph").id,
        "c": service.create_execution("support", {}, framework="langgraph").id,
        "d": service.create_execution("fn", {}).id,
        "e": service.create_execution("100_sure", {}).id,
    }
    service.cancel_execution(made["c"])

    def ids(**params: Any) -> set[str]:
        body = listing(api, summary="true", **params)
        assert body["total"] == len(body["items"])
        return {item["id"] for item in body["items"]}

    assert ids(framework="langgraph") == {made["b"], made["c"]}
    assert ids(framework="langgraph", status="cancelled") == {made["c"]}
    assert ids(q="BILLING") == {made["a"], made["b"]}, "a name substring, whatever its case"
    assert ids(q="g_a") == {made["a"]}, "_ is a character, not a wildcard"
    assert ids(q="%") == set(), "% is a character, not a wildcard"
    assert ids(q="0_s") == {made["e"]}
    assert ids(q=made["d"][:6]) == {made["d"]}, "an id prefix"
    assert ids(q=made["d"][:6].upper()) == {made["d"]}
    assert ids(q=made["d"][3:12]) == set(), "ids match by prefix only"
    assert ids(framework="crewai") == set()
    sdk = service.create_execution("sdk", {}, framework="openai-agents")
    assert sdk.framework == "openai_agents", "a hyphen reads as _, as the approvals inbox spells it"
    assert ids(framework="openai-agents") == ids(framework="openai_agents") == {sdk.id}
    service.delete_execution(sdk.id)
    page = listing(api, summary="true", limit=2)
    assert page["total"] == 5 and len(page["items"]) == 2 and page["next_cursor"]
    second = listing(api, summary="true", limit=2, cursor=page["next_cursor"])
    assert second["total"] == 5, "the total ignores the cursor"


@pytest.mark.parametrize("params", [{"framework": "Not A Slug"}, {"framework": "x" * 41}, {"q": "x" * 201}])
def test_bad_filters_are_refused_with_the_parameter_named(api: httpx.Client, params: dict[str, str]) -> None:
    response = api.get("/executions", params=params)
    assert response.status_code in (400, 422), response.text
    assert next(iter(params)) in response.text


def test_a_framework_that_is_not_a_slug_is_refused_when_creating(service: Service, api: httpx.Client) -> None:
    response = api.post("/executions", json={"name": "fn", "framework": "Lang Graph!"})
    assert response.status_code in (400, 422) and "framework" in response.text
    created = api.post("/executions", json={"name": "fn", "framework": "openai-agents"})
    assert created.status_code == 201 and created.json()["framework"] == "openai_agents", "a hyphen reads as _"


# --- a large history ------------------------------------------------------------------------------------
def test_paging_through_ten_thousand_executions_returns_each_once_newest_first(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "big.db", synchronous="normal")
    service = Service(store)
    try:
        frameworks = ["native", "langgraph", None, "crewai"]
        for i in range(10_000):
            # Ten executions per timestamp: the cursor has to break ties by id.
            store.create_execution(f"{i:05d}", f"agent-{i % 7}", "{}", None, 1_000_000.0 + i // 10,
                                   framework=frameworks[i % 4])  # fmt: skip
        with serve_in_thread(service, ui_dir=None) as server, httpx.Client(base_url=server.url, timeout=30) as api:
            seen: list[dict[str, Any]] = []
            cursor = None
            while True:
                params: dict[str, Any] = {"limit": 500, "summary": "true"}
                if cursor:
                    params["cursor"] = cursor
                page = listing(api, **params)
                assert page["total"] == 10_000
                seen += page["items"]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            natives = []
            cursor = None
            while True:
                params = {"limit": 333, "framework": "native"}
                if cursor:
                    params["cursor"] = cursor
                page = listing(api, **params)
                natives += [item["id"] for item in page["items"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
    finally:
        service.close()
    ids = [item["id"] for item in seen]
    assert len(ids) == len(set(ids)) == 10_000
    keys = [(item["created_at"], item["id"]) for item in seen]
    assert keys == sorted(keys, reverse=True), "newest first, ties by id"
    assert ids == [f"{i:05d}" for i in reversed(range(10_000))]
    assert natives == [f"{i:05d}" for i in reversed(range(0, 10_000, 4))]
    with sqlite3.connect(tmp_path / "big.db") as conn:
        plan = " ".join(
            str(row[-1])
            for row in conn.execute(
                "EXPLAIN QUERY PLAN SELECT id FROM executions WHERE framework = ?"
                " ORDER BY created_at DESC, id DESC LIMIT 50",
                ("native",),
            )
        )
    assert "executions_framework" in plan and "TEMP B-TREE" not in plan, plan


# --- schema ----------------------------------------------------------------------------------------------
def test_executions_recorded_before_the_framework_column_list_with_none(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute("INSERT INTO schema_version (version) VALUES (3)")
        for migration in MIGRATIONS[:3]:
            for statement in migration.split(";"):
                if statement.strip():
                    conn.execute(statement)
        conn.execute(
            "INSERT INTO executions (id, name, status, input, created_at, updated_at)"
            " VALUES ('old1', 'legacy', 'completed', '{}', 1.0, 2.0)"
        )
    service = Service(SQLiteStore(path))
    try:
        page = service.list_executions(summary=True, framework=None)
        assert [e.id for e in page.items] == ["old1"] and page.items[0].framework is None
        assert page.items[0].summary is not None and page.items[0].summary.steps == 0
        assert service.list_executions(framework="native").items == []
        assert service.list_executions(status=ExecutionStatus.COMPLETED, q="LEG").items[0].id == "old1"
    finally:
        service.close()


def test_the_cli_lists_the_framework_and_filters_by_it(db_path: Path) -> None:
    from test_cli import agentspan

    service = Service(SQLiteStore(db_path))
    try:
        graph = service.create_execution("a-graph", {}, framework="langgraph").id
        plain = service.create_execution("a-function", {}).id
    finally:
        service.close()
    listed = agentspan("executions", "list", "--db", str(db_path))
    assert listed.returncode == 0, listed.stderr
    assert "framework" in listed.stdout.splitlines()[0]
    rows = {line.split()[0]: line.split() for line in listed.stdout.splitlines()[1:] if line.strip()}
    assert "langgraph" in rows[graph] and "-" in rows[plain]
    filtered = agentspan("executions", "list", "--db", str(db_path), "--framework", "langgraph")
    assert graph in filtered.stdout and plain not in filtered.stdout
    bad = agentspan("executions", "list", "--db", str(db_path), "--framework", "Lang Graph")
    assert bad.returncode != 0 and "framework" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1

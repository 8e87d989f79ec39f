"""Forking an execution from a step: a new execution replays the journal before the step, runs fresh from it.

Each fork is run by a second runtime with a fresh copy of the agent (same name and tools, a new
scripted model holding only the replies the fresh part needs), as a later process would run it: the
model's request count shows which calls were replayed, the tools' counters which side effects ran.
"""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from processes import TESTS

from agentspan.agents import Agent, AgentRuntime, tool
from agentspan.agents._loop import agent_function
from agentspan.client import HttpClient
from agentspan.errors import ConfigurationError, ConflictError, InvalidInputError, NotFoundError
from agentspan.runtime import (
    DivergenceRecord,
    ExecutionStatus,
    ForkOrigin,
    Service,
    SQLiteStore,
    Step,
    StepRecord,
    StepStatus,
)
from agentspan.testing import ScriptedModel, ServerHandle
from agentspan.worker import Worker

calls: collections.Counter[str] = collections.Counter()


@pytest.fixture(autouse=True)
def _reset() -> None:
    calls.clear()


@tool
def search(query: str) -> str:
    """Search for information.

    Args:
        query: What to look for.
    """
    calls[query] += 1
    return f"results for {query}"


def researcher(model: ScriptedModel) -> Agent:
    return Agent(name="researcher", model=model, tools=[search])


SOURCE_SCRIPT: list[Any] = [[("search", {"query": q})] for q in ("q1", "q2", "q3")] + ["done"]
# After a fork from the q2 call: the model is asked for turns 3 and 4 only.
FORK_SCRIPT: list[Any] = [[("search", {"query": "q3"})], "done again"]


def tool_step(journal: list[Step], query: str) -> Step:
    return next(s for s in journal if s.kind == "tool" and s.input == {"arguments": {"query": query}})


def run_source(db: Path) -> tuple[str, list[Step]]:
    with AgentRuntime(db=db, serve_http=False) as runtime:
        result = runtime.run(researcher(ScriptedModel(SOURCE_SCRIPT)), "research", timeout=30)
        assert result.is_success and result.output == "done"
        return result.execution_id, runtime.client.get_journal(result.execution_id)


def test_fork_replays_the_steps_before_the_chosen_one_and_runs_it_and_the_rest_again(db_path: Path) -> None:
    source_id, source_journal = run_source(db_path)
    assert dict(calls) == {"q1": 1, "q2": 1, "q3": 1}
    chosen = tool_step(source_journal, "q2")

    model = ScriptedModel(FORK_SCRIPT)
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        handle = runtime.fork(source_id, chosen.key, researcher(model))
        result = handle.wait(30)
        fork = runtime.client.get_execution(handle.execution_id)
        journal = runtime.client.get_journal(fork.id)
        events = runtime.client.get_events(fork.id)
        source_events = runtime.client.get_events(source_id)
        source = runtime.client.get_execution(source_id)

    assert result.is_success and result.output == "done again"
    assert fork.status is ExecutionStatus.COMPLETED and fork.id != source_id
    assert (fork.name, fork.input) == (source.name, source.input)
    assert fork.forked_from == ForkOrigin(execution_id=source_id, step=chosen.key, seq=chosen.seq)
    # q1 ran once, in the source; q2 (the fork point) and q3 ran again.
    assert dict(calls) == {"q1": 1, "q2": 2, "q3": 2}
    # The model was asked only after the fork point, with the replayed conversation (q2's new result in it).
    assert len(model.requests) == 2
    assert [m.content for m in model.requests[0].messages if m.role == "tool"] == ["results for q1", "results for q2"]
    # The journal starts with the copies, written by the server at epoch 0; the rest was run at epoch 1.
    before = [s for s in source_journal if s.seq < chosen.seq]
    assert [s.kind for s in before] == ["llm", "tool", "llm"]
    copied = [s for s in journal if s.epoch == 0]
    assert [(s.key, s.output, s.usage, s.idempotency_key) for s in copied] == [
        (s.key, s.output, s.usage, s.idempotency_key) for s in before
    ]
    assert journal[: len(copied)] == copied
    assert {s.epoch for s in journal[len(copied) :]} == {1}
    assert journal[len(copied)].key == chosen.key
    assert [s.kind for s in journal] == ["llm", "tool", "llm", "tool", "llm", "tool", "llm"]
    assert events[0].type == "execution.queued"
    assert events[0].data == {
        "name": "researcher",
        "forked_from": {"execution_id": source_id, "step": chosen.key, "seq": chosen.seq},
    }
    assert not [e for e in events if e.type == "divergence"]
    assert [e.data for e in source_events if e.type == "execution.forked"] == [{"fork": fork.id, "step": chosen.key}]
    assert source.status is ExecutionStatus.COMPLETED and source.forked_from is None


def test_fork_from_a_step_inside_a_sub_agent_runs_the_sub_agent_again_replaying_its_earlier_calls(
    db_path: Path,
) -> None:
    def team(helper_replies: list[Any], boss_replies: list[Any]) -> tuple[Agent, ScriptedModel, ScriptedModel]:
        helper_model, boss_model = ScriptedModel(helper_replies), ScriptedModel(boss_replies)
        helper = Agent(name="helper", model=helper_model, tools=[search])
        return Agent(name="boss", model=boss_model, agents=[helper]), helper_model, boss_model

    boss, _, _ = team(
        [[("search", {"query": "deep1"})], [("search", {"query": "deep2"})], "found both"],
        [[("helper", {"request": "dig"})], "boss done"],
    )
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        source = runtime.run(boss, "delegate", timeout=30)
        source_journal = runtime.client.get_journal(source.execution_id)
    assert source.output == "boss done"
    sub = next(s for s in source_journal if s.kind == "agent")
    chosen = tool_step(source_journal, "deep2")
    assert chosen.parent == sub.key

    boss, helper_model, boss_model = team(["found again"], ["boss done again"])
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        result = runtime.fork(source.execution_id, chosen.key, boss).wait(30)
        journal = runtime.client.get_journal(result.execution_id)

    assert result.output == "boss done again"
    assert dict(calls) == {"deep1": 1, "deep2": 2}
    # The helper's two model calls before the fork and the boss's first were replayed.
    assert (len(helper_model.requests), len(boss_model.requests)) == (1, 1)
    copied = [s for s in journal if s.epoch == 0]
    # The sub-agent step itself was not copied (it ran again); its children before the fork were.
    assert [(s.kind, s.parent) for s in copied] == [
        ("llm", None),
        ("llm", sub.key),
        ("tool", sub.key),
        ("llm", sub.key),
    ]
    again = next(s for s in journal if s.key == sub.key)
    assert again.epoch == 1 and again.status is StepStatus.COMPLETED and again.seq > copied[-1].seq


def test_runtime_fork_refuses_what_nothing_would_run(db_path: Path) -> None:
    source_id, journal = run_source(db_path)
    with AgentRuntime(db=db_path, serve_http=False) as runtime:
        with pytest.raises(NotFoundError, match="no agent named 'researcher' is deployed"):
            runtime.fork(source_id, journal[1].key)  # no agent given, and no worker serves its name
        other = Agent(name="other", model=ScriptedModel(["x"]), tools=[search])
        with pytest.raises(ConfigurationError, match="ran 'researcher', not agent 'other'"):
            runtime.fork(source_id, journal[1].key, other)
        assert [e.type for e in runtime.client.get_events(source_id)].count("execution.forked") == 0


def test_fork_errors_name_the_key_and_where_to_find_keys(service: Service) -> None:
    with pytest.raises(NotFoundError, match="no execution with id 'nope'"):
        service.fork_execution("nope", "a:b:0")
    execution = service.create_execution("fn", {"x": 1})
    claim = service.claim("w", ["fn"])
    assert claim is not None
    records = [
        StepRecord(key="a", kind="step", name="a", status=StepStatus.COMPLETED, output=1),
        StepRecord(key="b", kind="step", name="b", status=StepStatus.COMPLETED, output=2),
        DivergenceRecord(key="c", expected="b", superseded=["b"]),
    ]
    service.write_records(execution.id, "w", claim.epoch, records)
    with pytest.raises(NotFoundError) as missing:
        service.fork_execution(execution.id, "zzz")
    assert f"has no step 'zzz'; list its step keys with `agentspan executions show {execution.id} --full`" in str(
        missing.value
    )
    assert f"/api/executions/{execution.id}/journal" in str(missing.value)
    with pytest.raises(InvalidInputError, match="'b' .* was superseded by a divergence"):
        service.fork_execution(execution.id, "b")
    with pytest.raises(InvalidInputError, match="1 to 1000 characters"):
        service.fork_execution(execution.id, "")
    # A running execution is forked from its journal as committed: here, step a.
    fork = service.fork_execution(execution.id, "a")
    assert fork.status is ExecutionStatus.QUEUED and service.get_journal(fork.id) == []
    assert service.get_execution(execution.id).status is ExecutionStatus.RUNNING


def test_only_finished_steps_are_copied_and_children_of_uncopied_steps_are_not(service: Service) -> None:
    execution = service.create_execution("fn")
    claim = service.claim("w", ["fn"])
    assert claim is not None
    done, started = StepStatus.COMPLETED, StepStatus.STARTED
    records = [
        StepRecord(key="ok", kind="step", name="ok", status=done, output=1),
        StepRecord(key="bad", kind="step", name="bad", status=StepStatus.FAILED, error={"type": "E", "message": "m"}),
        StepRecord(key="open", kind="node", name="open", status=started),  # in doubt: not copied
        StepRecord(key="open/kid", kind="step", name="kid", status=done, parent="open", output=2),
        StepRecord(key="task", kind="task", name="task", status=started),  # the chosen step's ancestor
        StepRecord(key="task/early", kind="step", name="early", status=done, parent="task", output=3),
        StepRecord(key="task/here", kind="step", name="here", status=done, parent="task", output=4),
        StepRecord(key="after", kind="step", name="after", status=done, output=5),
    ]
    service.write_records(execution.id, "w", claim.epoch, records)
    fork = service.fork_execution(execution.id, "task/here")
    copied = service.get_journal(fork.id)
    assert [s.key for s in copied] == ["ok", "bad", "task/early"]
    assert copied[1].status is StepStatus.FAILED and copied[1].error is not None and copied[1].error.message == "m"
    assert {s.epoch for s in copied} == {0} and {s.execution_id for s in copied} == {fork.id}


def test_the_same_idempotency_key_returns_the_same_fork(service: Service) -> None:
    execution = service.create_execution("fn", {"x": 1})
    claim = service.claim("w", ["fn"])
    assert claim is not None
    step = StepRecord(key="a", kind="step", name="a", status=StepStatus.COMPLETED, output=1)
    service.write_records(execution.id, "w", claim.epoch, [step])
    first, created = service.fork_or_get_execution(execution.id, "a", idempotency_key="f1")
    again, created_again = service.fork_or_get_execution(execution.id, "a", idempotency_key="f1")
    assert (created, created_again) == (True, False) and again == first
    assert [e.type for e in service.get_events(execution.id)].count("execution.forked") == 1
    with pytest.raises(ConflictError, match="not a fork of .* from step 'b'"):
        service.fork_execution(execution.id, "b", idempotency_key="f1")
    service.create_execution("fn", idempotency_key="plain")
    with pytest.raises(ConflictError, match="idempotency key 'plain'"):
        service.fork_execution(execution.id, "a", idempotency_key="plain")


def test_a_fork_survives_reopening_the_database(db_path: Path) -> None:
    service = Service(SQLiteStore(db_path))
    source = service.create_execution("fn")
    claim = service.claim("w", ["fn"])
    assert claim is not None
    step = StepRecord(key="s", kind="step", name="s", status=StepStatus.COMPLETED)
    service.write_records(source.id, "w", claim.epoch, [step])
    fork_id = service.fork_execution(source.id, "s").id
    service.close()
    reopened = Service(SQLiteStore(db_path))
    assert reopened.get_execution(fork_id).forked_from == ForkOrigin(execution_id=source.id, step="s", seq=1)
    reopened.close()


# --- over HTTP ------------------------------------------------------------------------------------------
def test_fork_over_http_answers_201_then_200_for_the_same_key_and_runs(
    http_server: ServerHandle, service: Service
) -> None:
    with AgentRuntime(server_url=http_server.url) as runtime:
        source = runtime.run(researcher(ScriptedModel(SOURCE_SCRIPT)), "research", timeout=30)
    chosen = tool_step(service.get_journal(source.execution_id), "q2")
    url = f"{http_server.url}/executions/{source.execution_id}/fork"

    created = httpx.post(url, json={"step": chosen.key, "idempotency_key": "http-fork"})
    again = httpx.post(url, json={"step": chosen.key, "idempotency_key": "http-fork"})
    assert (created.status_code, again.status_code) == (201, 200), created.text
    body = created.json()
    assert again.json()["id"] == body["id"] and body["status"] == "queued" and body["name"] == "researcher"
    assert body["forked_from"] == {"execution_id": source.execution_id, "step": chosen.key, "seq": chosen.seq}
    missing = httpx.post(url, json={"step": "nope"})
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "NotFoundError"
    assert "has no step 'nope'" in missing.json()["error"]["message"]
    assert httpx.post(url, json={}).status_code == 422
    assert httpx.post(f"{http_server.url}/executions/nope/fork", json={"step": "x"}).status_code == 404
    with HttpClient(http_server.url) as client, pytest.raises(NotFoundError, match="has no step 'nope'"):
        client.fork_execution(source.execution_id, "nope")

    model = ScriptedModel(FORK_SCRIPT)
    with AgentRuntime(server_url=http_server.url) as runtime:
        handle = runtime.fork(source.execution_id, chosen.key, researcher(model), idempotency_key="http-fork")
        assert handle.execution_id == body["id"]
        result = handle.wait(30)
    assert result.output == "done again" and len(model.requests) == 2
    assert dict(calls) == {"q1": 1, "q2": 2, "q3": 2}


# --- the command line -----------------------------------------------------------------------------------
def agentspan(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(TESTS)}
    env.pop("AGENTSPAN_SERVER_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "agentspan", *args], env=env, capture_output=True, text=True, timeout=timeout
    )


def test_cli_fork_prints_the_new_id_and_follows_it_to_the_end(http_server: ServerHandle, service: Service) -> None:
    with AgentRuntime(server_url=http_server.url) as runtime:
        source = runtime.run(researcher(ScriptedModel(SOURCE_SCRIPT)), "research", timeout=30)
    chosen = tool_step(service.get_journal(source.execution_id), "q2")

    model = ScriptedModel(FORK_SCRIPT)
    with HttpClient(http_server.url) as client:
        worker = Worker(client, [agent_function(researcher(model))], poll_seconds=0.5)
        thread = threading.Thread(target=worker.run, kwargs={"max_executions": 1})
        thread.start()
        try:
            done = agentspan(
                "executions", "fork", source.execution_id, "--step", chosen.key, "--follow", "--server", http_server.url
            )
        finally:
            worker.stop()
            thread.join(30)
    assert done.returncode == 0, done.stderr
    fork_id = done.stdout.splitlines()[0]
    fork = service.get_execution(fork_id)
    assert fork.status is ExecutionStatus.COMPLETED and fork.forked_from is not None
    assert f"fork of {source.execution_id} from step {chosen.key}" in done.stderr
    assert "replays 3 recorded step(s)" in done.stderr
    assert len(model.requests) == 2 and dict(calls) == {"q1": 1, "q2": 2, "q3": 2}


def test_cli_fork_of_an_unknown_step_is_one_line_and_exit_code_1(db_path: Path) -> None:
    service = Service(SQLiteStore(db_path))
    execution = service.create_execution("fn")
    service.close()
    missing = agentspan("executions", "fork", execution.id, "--step", "nope", "--db", str(db_path))
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1 and missing.stderr.startswith(f"agentspan: execution {execution.id} has no")
    assert missing.stdout == ""
    no_step = agentspan("executions", "fork", execution.id, "--db", str(db_path))
    assert no_step.returncode == 2 and "--step" in no_step.stderr


def test_cli_fork_on_the_embedded_database_queues_the_fork(db_path: Path) -> None:
    service = Service(SQLiteStore(db_path))
    execution = service.create_execution("fn", {"n": 1})
    claim = service.claim("w", ["fn"])
    assert claim is not None
    steps = [StepRecord(key=k, kind="step", name=k, status=StepStatus.COMPLETED, output=1) for k in ("a", "s")]
    service.write_records(execution.id, "w", claim.epoch, steps)
    service.close()
    forked = agentspan(
        "executions", "fork", execution.id, "--step", "s", "--idempotency-key", "k", "--db", str(db_path)
    )
    assert forked.returncode == 0, forked.stderr
    again = agentspan("executions", "fork", execution.id, "--step", "s", "--idempotency-key", "k", "--db", str(db_path))
    assert again.stdout == forked.stdout and "replays 1 recorded step(s)" in forked.stderr
    fork_id = forked.stdout.strip()
    shown = agentspan("executions", "show", fork_id, "--db", str(db_path))
    assert f"forked: from {execution.id} at step s" in shown.stdout
    assert "copied from the fork's source" in shown.stdout
    service = Service(SQLiteStore(db_path))
    fork = service.get_execution(fork_id)
    assert fork.status is ExecutionStatus.QUEUED and fork.input == {"n": 1}
    service.close()


# --- LangGraph ------------------------------------------------------------------------------------------
def test_fork_of_a_langgraph_run_does_not_run_the_nodes_before_the_fork_again(service: Service) -> None:
    pytest.importorskip("langgraph")
    from langchain_core.language_models.fake_chat_models import FakeMessagesListChatModel
    from langchain_core.messages import AIMessage, BaseMessage
    from langchain_core.outputs import ChatGeneration, ChatResult
    from langchain_core.tools import tool as lc_tool
    from langgraph.graph import START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    import agentspan.adapters.langgraph as lg
    from agentspan.adapters.langgraph._graph import execution_input

    class TurnModel(FakeMessagesListChatModel):
        """Answers by turn (the AI messages so far), counting the calls it gets."""

        def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
            turn = sum(isinstance(m, AIMessage) for m in messages)
            calls[f"model:turn{turn}"] += 1
            return ChatResult(generations=[ChatGeneration(message=self.responses[turn])])

        def bind_tools(self, tools: Any, **kwargs: Any) -> Any:
            return self

    @lc_tool
    def lookup(query: str) -> str:
        """Look something up."""
        calls[f"tool:{query}"] += 1
        return f"found {query}"

    replies: list[BaseMessage] = [
        AIMessage("", tool_calls=[{"name": "lookup", "args": {"query": f"q{i}"}, "id": f"call_{i}"}]) for i in (1, 2, 3)
    ]
    model = TurnModel(responses=[*replies, AIMessage("compared")])

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [model.invoke(state["messages"])]}

    builder = StateGraph(MessagesState)
    builder.add_node("agent", agent)
    builder.add_node("tools", ToolNode([lookup]))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition)
    builder.add_edge("tools", "agent")
    graph = builder.compile(name="fork-graph")

    source = service.create_execution("fork-graph", execution_input({"messages": [("user", "compare")]}))
    assert Worker(service, [lg.graph_function(graph)]).run_once()
    assert service.get_execution(source.id).status is ExecutionStatus.COMPLETED
    chosen = next(s for s in service.get_journal(source.id) if s.kind == "tool" and "q2" in str(s.input))
    before = dict(calls)

    fork = service.fork_execution(source.id, chosen.key)
    assert Worker(service, [lg.graph_function(graph)]).run_once()
    done = service.get_execution(fork.id)
    assert done.status is ExecutionStatus.COMPLETED, done.error
    assert done.output["messages"][-1]["data"]["content"] == "compared"
    ran_again = {k: calls[k] - before.get(k, 0) for k in calls}
    # Turns 0 and 1 of the model and the q1 lookup were replayed; the q2 lookup and what followed ran.
    assert ran_again == {"model:turn0": 0, "model:turn1": 0, "tool:q1": 0, "tool:q2": 1, "model:turn2": 1,
                         "tool:q3": 1, "model:turn3": 1}  # fmt: skip
    assert [s.epoch for s in service.get_journal(fork.id)] == [0, 0, 0, 1, 1, 1, 1]
    assert not [e for e in service.get_events(fork.id) if e.type == "divergence"]

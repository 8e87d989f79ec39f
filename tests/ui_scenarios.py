"""Real executions of every kind the web UI shows, made on a real runtime server over HTTP.

Each scenario is a function that takes what it needs (an :class:`AgentRuntime` connected to a server, a
server URL, or the service behind it), produces its executions through the ordinary client API and
returns their ids. Only the models are fakes (``agentspan.testing``); the server, the SQLite file, the
worker threads and the worker subprocesses are real. ``test_ui_scenarios.py`` checks that each scenario
produces what it promises.

Fixtures (``conftest.py`` registers this module as a plugin, so every test can ask for them): ``ui_service`` (a service over a SQLite file),
``ui_server`` (that service served by a real uvicorn on a free loopback port) and ``ui_runtime`` (an
``AgentRuntime`` whose workers reach that server over HTTP).
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from processes import TESTS, stop, wait_until

from agentspan.agents import Agent, AgentRuntime, ModelRequest, ModelResponse, tool
from agentspan.client import HttpClient
from agentspan.runtime import (
    ErrorInfo,
    ExecutionStatus,
    FinishRecord,
    Service,
    SQLiteStore,
    StepRecord,
    StepStatus,
    Store,
    WaitInfo,
)
from agentspan.testing import FakeOpenAIServer, ScriptedModel, ServerHandle, serve_in_thread
from agentspan.testing._scripted import with_usage

__all__ = [
    "FORK_CALLS",
    "TurnModel",
    "crashed_and_resumed",
    "forkable",
    "langgraph_run",
    "long_execution",
    "many_executions",
    "native_with_fanout_and_subagent",
    "openai_agents_run",
    "running_execution",
    "ui_runtime",
    "ui_server",
    "ui_service",
    "waiting_for_approval",
]

LEASE_SECONDS = 2.0
"""The lease of every worker the scenarios start: short, so that a killed worker's run is taken over fast."""


# --- fixtures -------------------------------------------------------------------------------------------
@pytest.fixture
def ui_service(tmp_path: Path) -> Iterator[Service]:
    """The runtime service over a fresh SQLite file (commit mode ``normal``: bulk data is quick to write)."""
    service = Service(SQLiteStore(tmp_path / "ui.db", synchronous="normal"))
    yield service
    service.close()


@pytest.fixture
def ui_server(ui_service: Service) -> Iterator[ServerHandle]:
    """``ui_service`` served over HTTP by a real uvicorn on a free loopback port (API at ``.url``)."""
    with serve_in_thread(ui_service) as server:
        yield server


@pytest.fixture
def ui_runtime(ui_server: ServerHandle, monkeypatch: pytest.MonkeyPatch) -> Iterator[AgentRuntime]:
    """An :class:`AgentRuntime` connected to ``ui_server``: its worker threads claim and record over HTTP."""
    monkeypatch.delenv("AGENTSPAN_AUTH_TOKEN", raising=False)
    runtime = AgentRuntime(ui_server.url, lease_seconds=LEASE_SECONDS)
    yield runtime
    for gate in list(_GATES.values()):
        gate.set()  # a run the test left held would keep its worker, and close(), waiting
    runtime.close()


# --- a model that answers by turn ---------------------------------------------------------------------------
class TurnModel(ScriptedModel):
    """A :class:`ScriptedModel` that answers turn ``n`` (``n`` assistant messages in the request so far)
    with script entry ``n``, however many requests it served before: a resumed or forked run replays
    its recorded turns and gets, for the next one, the reply the first run got."""

    def complete(self, request: ModelRequest) -> ModelResponse:
        """The script entry for the request's turn."""
        with self._lock:
            self.requests.append(request)
        turn = sum(message.role == "assistant" for message in request.messages)
        if turn >= len(self.responses):
            raise AssertionError(f"{self.name}: the script has {len(self.responses)} turns; turn {turn + 1} asked")
        prompt = "".join((message.content or "") for message in request.messages)
        return with_usage(self.responses[turn], prompt, self.name)


def _finished(runtime: AgentRuntime, execution_id: str, timeout: float = 60.0) -> None:
    wait_until(lambda: runtime.client.get_execution(execution_id).status.is_terminal, execution_id, timeout)
    execution = runtime.client.get_execution(execution_id)
    if execution.status is not ExecutionStatus.COMPLETED:
        raise AssertionError(f"{execution.name} {execution_id} ended {execution.status}: {execution.error}")


# --- 1. fan-out and a sub-agent ------------------------------------------------------------------------------
@tool
def search_web(query: str) -> str:
    """Search the web.

    Args:
        query: What to look for.
    """
    return f"3 results for {query}"


@tool
def fetch_page(url: str) -> str:
    """Fetch a web page.

    Args:
        url: The page's address.
    """
    return f"the text of {url}"


def native_with_fanout_and_subagent(runtime: AgentRuntime) -> str:
    """A native ``planner`` agent, run to completion: its first turn asks for three tool calls at once
    (``search_web`` twice and ``fetch_page``, recorded ``concurrent``), its second calls the sub-agent
    ``researcher`` (an ``agent`` step whose own ``llm``, ``tool`` and ``llm`` steps are its children), then
    it answers ``"Final answer."``."""
    researcher = Agent(
        name="researcher",
        model=TurnModel([[("search_web", {"query": "durable execution"})], "Durable means it survives crashes."]),
        instructions="Research one question.",
        tools=[search_web],
    )
    planner = Agent(
        name="planner",
        model=TurnModel(
            [
                [("search_web", {"query": "a"}), ("search_web", {"query": "b"}), ("fetch_page", {"url": "http://x"})],
                [("researcher", {"request": "what is durable"})],
                "Final answer.",
            ]
        ),
        instructions="Plan, search, delegate, answer.",
        tools=[search_web, fetch_page],
        agents=[researcher],
    )
    result = runtime.run(planner, "plan a report on durable execution", timeout=60)
    _finished(runtime, result.execution_id)
    return result.execution_id


# --- 2. a run that stays running -----------------------------------------------------------------------------
_GATES: dict[str, threading.Event] = {}


@tool
def take_notes(topic: str) -> str:
    """Take notes on a topic."""
    return f"notes on {topic}"


@tool
def hold(gate: str) -> str:
    """Wait until the test lets the run go on."""
    if not _GATES[gate].wait(timeout=600):
        raise TimeoutError(f"gate {gate} was never released")
    return "released"


def running_execution(runtime: AgentRuntime) -> tuple[str, Callable[[], None]]:
    """A native ``holder`` agent that stays ``running`` until the returned callable is called.

    Before it blocks it has completed an ``llm`` step and a ``take_notes`` tool step; it then blocks
    inside its second tool call (``hold``, a ``started`` step) in this process's worker thread. Once
    released it finishes with ``"Let go."``.
    """
    gate = uuid.uuid4().hex
    _GATES[gate] = threading.Event()
    agent = Agent(
        name="holder",
        model=TurnModel([[("take_notes", {"topic": "the plan"})], [("hold", {"gate": gate})], "Let go."]),
        instructions="Take notes, then wait.",
        tools=[take_notes, hold],
    )
    handle = runtime.start(agent, f"hold on {gate}")
    wait_until(
        lambda: any(
            s.name == "hold" and s.status is StepStatus.STARTED for s in runtime.client.get_journal(handle.execution_id)
        ),
        "the hold step to start",
        60,
    )
    return handle.execution_id, _GATES[gate].set


# --- 3. a worker process killed, another finishing the run ------------------------------------------------
CRASH_TURNS = 6
"""How many ``lookup`` calls the crashed run makes before it answers."""


def _worker_process(server_url: str, fake: FakeOpenAIServer, log: Path, output: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OPENAI_BASE_URL": fake.base_url, "OPENAI_API_KEY": "test", "AGENT_LOG": str(log)}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(TESTS), env.get("PYTHONPATH", "")]))
    env.pop("AGENTSPAN_SERVER_URL", None)
    with open(output, "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "agentspan", "worker", "ui_agents:steady", "--server", server_url,
             "--lease-seconds", str(int(LEASE_SECONDS)), "--poll-seconds", "0.2", "--max-executions", "1"],
            env=env, stdout=out, stderr=out,
        )  # fmt: skip


def crashed_and_resumed(server_url: str, tmp_path: Path) -> str:
    """A native ``steady`` agent whose worker process is killed with SIGKILL mid-run, finished by another.

    The first ``agentspan worker`` subprocess is killed once three ``lookup`` tool steps are recorded; the
    server expires its lease (``lease.expired``) after :data:`LEASE_SECONDS`; a second subprocess claims
    the run under epoch 2, replays the steps recorded under epoch 1 and makes the rest. The model is a
    :class:`FakeOpenAIServer` answering by turn; each tool call is logged to ``tmp_path/steady.log``
    (``<query>\\t<pid>``) and worker output to ``tmp_path/worker-*.log``.
    """
    script = FakeOpenAIServer.research_script(
        CRASH_TURNS, "lookup", lambda i: {"query": f"topic {i + 1}"}, answer="All topics looked up."
    )
    log = tmp_path / "steady.log"
    with FakeOpenAIServer(script) as fake, HttpClient(server_url) as client:
        execution = client.create_execution("steady", {"prompt": f"look up {CRASH_TURNS} topics"})

        def tools_done() -> int:
            journal = client.get_journal(execution.id)
            return sum(s.kind == "tool" and s.status is StepStatus.COMPLETED for s in journal)

        first = _worker_process(server_url, fake, log, tmp_path / "worker-1.log")
        try:
            wait_until(lambda: tools_done() >= 3, "three recorded tool steps", 120)
            first.send_signal(signal.SIGKILL)
            first.wait()
            second = _worker_process(server_url, fake, log, tmp_path / "worker-2.log")
            try:
                wait_until(lambda: client.get_execution(execution.id).status.is_terminal, "the resumed run", 120)
            finally:
                stop(second)
        finally:
            stop(first)
        final = client.get_execution(execution.id)
    if final.status is not ExecutionStatus.COMPLETED:
        raise AssertionError(f"the resumed run ended {final.status}: {final.error}")
    return execution.id


# --- 4. waiting for an approval ------------------------------------------------------------------------------
REFUNDS: collections.Counter[int] = collections.Counter()
"""How often ``refund`` ran, by amount."""


@tool
def lookup_order(order: str) -> str:
    """Look an order up."""
    return f"order {order}: 2 items, 20 EUR"


@tool(approval_required=True)
def refund(amount: int) -> str:
    """Refund an amount to the customer.

    Args:
        amount: In euros.
    """
    REFUNDS[amount] += 1
    return f"refunded {amount}"


def waiting_for_approval(runtime: AgentRuntime) -> str:
    """A native ``cashier`` agent ``waiting`` for a person to approve ``refund(amount=20)``.

    It has looked order ``A1`` up (``llm`` and ``tool`` steps), then asked for the refund: an
    ``approval`` step waits, and the run is one item of ``GET /api/approvals``. The runtime's worker thread
    still serves ``cashier``: once the call is approved (``POST /api/approvals/{id}/approve``) the refund
    runs once and the run completes with ``"Refunded 20 EUR."``.
    """
    agent = Agent(
        name="cashier",
        model=TurnModel([[("lookup_order", {"order": "A1"})], [("refund", {"amount": 20})], "Refunded 20 EUR."]),
        instructions="Help with refunds.",
        tools=[lookup_order, refund],
    )
    handle = runtime.start(agent, f"refund order A1 ({uuid.uuid4().hex[:8]})")

    def listed() -> bool:
        items = runtime.client.list_approvals(execution_id=handle.execution_id).items
        return runtime.client.get_execution(handle.execution_id).status is ExecutionStatus.WAITING and bool(items)

    wait_until(listed, "the approval to wait", 60)
    return handle.execution_id


# --- 5. a LangGraph graph ----------------------------------------------------------------------------------
def langgraph_run(runtime: AgentRuntime) -> str:
    """A compiled LangGraph ``StateGraph`` (``support-graph``) run to completion.

    Nodes: ``agent`` (calls a fake chat model) ↔ ``tools`` (LangGraph's ``ToolNode`` with ``lookup_stock``),
    then ``summarize`` (plain code). The model asks for one tool call, then answers.
    """
    from ui_frameworks import support_graph

    result = runtime.run(support_graph(), {"messages": [("user", "is the blue mug in stock?")]}, timeout=60)
    _finished(runtime, result.execution_id)
    return result.execution_id


# --- 6. an OpenAI Agents SDK agent with a handoff ---------------------------------------------------------
def openai_agents_run(runtime: AgentRuntime) -> str:
    """An OpenAI Agents SDK ``triage`` agent run to completion against a :class:`FakeOpenAIServer`.

    ``triage`` calls its function tool ``check_order``, then hands off to ``billing``
    (``transfer_to_billing``), which calls ``issue_credit`` and answers.
    """
    from ui_frameworks import TRIAGE_ROUTES, triage

    with FakeOpenAIServer(routes=TRIAGE_ROUTES) as fake:
        result = runtime.run(triage(fake.base_url), "I was charged twice for order 7", timeout=60)
        _finished(runtime, result.execution_id)
    return result.execution_id


# --- 7. a long execution -----------------------------------------------------------------------------------
@tool
def tick(i: int) -> str:
    """Record progress step ``i``."""
    return f"step {i} done"


def long_execution(runtime: AgentRuntime, n_steps: int = 1000) -> str:
    """A native ``marathon`` agent with ``n_steps + 1`` steps: ``n_steps // 2`` turns of one ``llm`` step and
    one ``tick`` tool step each, then a final ``llm`` step answering ``"Finished."``."""
    turns = n_steps // 2
    agent = Agent(
        name="marathon",
        model=TurnModel(ScriptedModel.research_script(turns, "tick", lambda i: {"i": i + 1}, answer="Finished.")),
        instructions="Tick.",
        tools=[tick],
        max_turns=turns + 1,
    )
    result = runtime.run(agent, f"tick {turns} times", timeout=600)
    _finished(runtime, result.execution_id)
    return result.execution_id


# --- 8. many executions --------------------------------------------------------------------------------------
BULK_NAMES = ("billing-bot", "nightly-report", "researcher", "support", "triage")
"""The names the bulk executions run under (no worker serves them)."""

BULK_STATUSES = (
    ExecutionStatus.COMPLETED, ExecutionStatus.COMPLETED, ExecutionStatus.COMPLETED, ExecutionStatus.COMPLETED,
    ExecutionStatus.FAILED, ExecutionStatus.CANCELLED, ExecutionStatus.QUEUED, ExecutionStatus.RUNNING,
    ExecutionStatus.WAITING, ExecutionStatus.COMPLETED,
)  # fmt: skip
"""Execution ``i`` of :func:`many_executions` ends in ``BULK_STATUSES[i % 10]``."""


class _Clock:
    def __init__(self) -> None:
        self.at: float | None = None

    def __call__(self) -> float:
        return time.time() if self.at is None else self.at


def many_executions(service_or_db: Service | str | Path, n: int = 10_000) -> list[str]:
    """``n`` executions written straight through the service, oldest first, dated over the last 50 minutes.

    Execution ``i`` runs under ``BULK_NAMES[i % 5]`` (no worker serves these names) on input
    ``{"prompt": "task <i>"}`` and ends in ``BULK_STATUSES[i % 10]``: completed (with an output), failed
    (with an error), cancelled, queued, running (leased for an hour), waiting (a ``signal`` step ``go``, suspended; not an approval). Every
    100th execution has three steps (``llm``, ``tool``, ``llm``); the others none. Returns the ids, oldest
    first.

    Pass the service a server serves (the executions appear there at once), or a SQLite file to fill
    before serving it.
    """
    owned = not isinstance(service_or_db, Service)
    store: Store = (
        service_or_db.store if isinstance(service_or_db, Service) else SQLiteStore(service_or_db, synchronous="normal")
    )
    clock = _Clock()
    service = Service(store, clock=clock)  # the same store, on a clock that can date executions in the past
    # Dated within the last 50 minutes: a claim made at an execution's own time then holds a lease (at most
    # an hour) that is still valid now, so a server's lease sweep leaves it alone until it finishes.
    spacing = min(60.0, 3000.0 / max(n, 1))
    start = time.time() - spacing * n
    ids: list[str | None] = [None] * n
    later: list[int] = []
    try:
        for i in range(n):
            status = BULK_STATUSES[i % len(BULK_STATUSES)]
            if status is ExecutionStatus.QUEUED:
                later.append(i)  # created once every claim is made, so no claim takes it
                continue
            ids[i] = _bulk_one(service, clock, i, start + spacing * i, spacing, status)
        for i in later:
            clock.at = start + spacing * i
            ids[i] = service.create_execution(BULK_NAMES[i % len(BULK_NAMES)], {"prompt": f"task {i}"}).id
    finally:
        if owned:
            store.close()
    return [execution_id for execution_id in ids if execution_id is not None]


def _bulk_one(service: Service, clock: _Clock, i: int, at: float, spacing: float, status: ExecutionStatus) -> str:
    name = BULK_NAMES[i % len(BULK_NAMES)]
    clock.at = at
    execution_id = service.create_execution(name, {"prompt": f"task {i}"}).id
    if status is ExecutionStatus.CANCELLED:
        clock.at = at + spacing / 2
        service.cancel_execution(execution_id)
        return execution_id
    # A running one is leased from now, so that its lease lasts the hour whatever its age.
    clock.at = None if status is ExecutionStatus.RUNNING else at + spacing / 10
    claim = service.claim("bulk-worker", [name], lease_seconds=3600)
    assert claim is not None and claim.execution.id == execution_id, f"bulk execution {i} was not the one claimed"
    records: list[Any] = _bulk_steps(i) if i % 100 == 0 else []
    if status is ExecutionStatus.COMPLETED:
        records.append(FinishRecord(status="completed", output={"output": f"result {i}"}))
    elif status is ExecutionStatus.FAILED:
        records.append(
            FinishRecord(status="failed", error=ErrorInfo(type="builtins.RuntimeError", message=f"task {i} broke"))
        )
    elif status is ExecutionStatus.WAITING:
        wait = WaitInfo(signal="go")
        records.append(StepRecord(key=f"go:{i}", kind="signal", name="go", status=StepStatus.SUSPENDED,
                                  input={"signal": "go"}, wait=wait))  # fmt: skip
        records.append(FinishRecord(status="waiting", wait=wait))
    if records:
        if status is not ExecutionStatus.RUNNING:
            clock.at = at + spacing * (0.2 + 0.1 * (i % 7))
        service.write_records(execution_id, "bulk-worker", claim.epoch, records)
    return execution_id


def _bulk_steps(i: int) -> list[Any]:
    done = StepStatus.COMPLETED
    messages = [{"role": "user", "content": f"task {i}"}]
    return [
        StepRecord(key=f"llm:{i}:1", kind="llm", name="scripted/scripted", status=done, input={"messages": messages},
                   output={"role": "assistant", "tool_calls": [{"name": "search", "arguments": "{}"}]},
                   usage={"prompt_tokens": 12, "completion_tokens": 4, "total_tokens": 16}),
        StepRecord(key=f"tool:{i}:1", kind="tool", name="search", status=done, input={"arguments": {}},
                   output=f"results {i}"),
        StepRecord(key=f"llm:{i}:2", kind="llm", name="scripted/scripted", status=done, input={"messages": messages},
                   output={"role": "assistant", "content": f"result {i}"},
                   usage={"prompt_tokens": 20, "completion_tokens": 3, "total_tokens": 23}),
    ]  # fmt: skip


# --- 9. a run to fork ---------------------------------------------------------------------------------------
FORK_CALLS: collections.Counter[int] = collections.Counter()
"""How often ``stage(n)`` ran, by ``n``: a fork from the third tool step must not run stages 1 and 2 again."""


@tool
def stage(n: int) -> str:
    """Run stage ``n`` of the pipeline (a side effect counted in ``FORK_CALLS``)."""
    FORK_CALLS[n] += 1
    return f"stage {n} done"


def forkable(runtime: AgentRuntime) -> str:
    """A native ``pipeline`` agent, completed: four turns each calling ``stage(n)`` (n = 1..4) in sequence,
    then ``"Pipeline done."``. Its model answers by turn, so a fork replaying part of it gets the same
    replies; its worker keeps serving ``pipeline`` for the fork."""
    agent = Agent(
        name="pipeline",
        model=TurnModel(ScriptedModel.research_script(4, "stage", lambda i: {"n": i + 1}, answer="Pipeline done.")),
        instructions="Run the four stages.",
        tools=[stage],
    )
    result = runtime.run(agent, f"run the pipeline ({uuid.uuid4().hex[:8]})", timeout=60)
    _finished(runtime, result.execution_id)
    return result.execution_id

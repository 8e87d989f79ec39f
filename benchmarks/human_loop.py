"""What the human-in-the-loop and guardrail machinery costs, side by side with LangGraph's interrupts.

    python benchmarks/human_loop.py [--trials 30] [--turns 20] [--rounds 5]

1. Decision to done: a run waits on a tool that needs approval; the clock starts when the decision is
   sent and stops when the run has finished (the decision is recorded, the execution queued, claimed,
   replayed to the wait, the tool run, the answer recorded). Agentspan: a native agent, embedded
   runtime (SQLite FULL, worker thread in-process). LangGraph: a graph whose node calls ``interrupt()``
   before the tool, with ``SqliteSaver``, resumed by ``invoke(Command(resume=...))`` in the same process
   (LangGraph holds no worker: the caller resumes it, so there is no queue or claim in its number).
2. Guardrails: a ``--turns``-turn native agent (one model and one tool call a turn), without and with
   three output guardrails on the answer and a regex guardrail on every tool result: what one recorded
   check costs.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any, TypedDict

from _stats import runs as run_stats
from _stats import summary
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt

from agentspan.agents import Agent, AgentRuntime, Guardrail, RegexGuardrail, tool
from agentspan.agents._loop import agent_function
from agentspan.runtime import ExecutionStatus, Service, SQLiteStore
from agentspan.testing import ScriptedModel
from agentspan.worker import Worker


@tool(approval_required=True)
def refund(amount: int) -> str:
    """Refund an amount."""
    return f"refunded {amount}"


def agentspan_decisions(trials: int) -> list[float]:
    """Seconds from ``approve()`` to the run's end, per trial."""
    samples = []
    with tempfile.TemporaryDirectory() as tmp, AgentRuntime(db=Path(tmp) / "h.db", serve_http=False) as runtime:
        # One agent (one worker) for every trial: the script answers the trials' calls in turn.
        script: list[Any] = [reply for i in range(trials + 1) for reply in ([("refund", {"amount": i})], "done")]
        agent = Agent(name="refunds", model=ScriptedModel(script), tools=[refund])
        for i in range(trials + 1):
            handle = runtime.start(agent, f"refund {i}")
            for event in handle.events():
                if event.type == "execution.waiting":
                    break
            start = time.perf_counter()
            handle.approve()
            result = handle.wait(timeout=60)
            elapsed = time.perf_counter() - start
            assert result.status is ExecutionStatus.COMPLETED and result.output == "done", result.error
            if i:  # the first trial warms the worker up
                samples.append(elapsed)
    return samples


class _State(TypedDict):
    amount: int
    result: str


def _approve_then_refund(state: _State) -> dict[str, Any]:
    decision = interrupt({"tool": "refund", "arguments": {"amount": state["amount"]}})
    if not decision.get("approved"):
        return {"result": "rejected"}
    return {"result": f"refunded {state['amount']}"}


def langgraph_decisions(trials: int) -> list[float]:
    """Seconds from ``invoke(Command(resume=...))`` to its return, per trial (SqliteSaver)."""
    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(Path(tmp) / "lg.db", check_same_thread=False)
        builder = StateGraph(_State)
        builder.add_node("refund", _approve_then_refund)
        builder.add_edge(START, "refund")
        graph = builder.compile(checkpointer=SqliteSaver(conn))
        for i in range(trials + 1):
            config: Any = {"configurable": {"thread_id": f"t{i}"}}
            graph.invoke({"amount": i, "result": ""}, config)
            start = time.perf_counter()
            final = graph.invoke(Command(resume={"approved": True}), config)
            elapsed = time.perf_counter() - start
            assert final["result"] == f"refunded {i}"
            if i:
                samples.append(elapsed)
        conn.close()
    return samples


@tool
def lookup(i: int) -> str:
    """Look something up."""
    return f"record {i}: fine"


def _guarded_agent(turns: int, guarded: bool) -> Agent:
    script: list[Any] = [[("lookup", {"i": i})] for i in range(turns - 1)] + ["all fine"]
    checks = [
        RegexGuardrail(r"\b(?:\d[ -]?){13,16}\b", name="no_cards"),
        Guardrail(lambda text: len(text) < 10_000, name="short"),
        Guardrail(lambda text: "password" not in text.lower(), name="no_secrets"),
    ]
    tools = [_guarded_lookup] if guarded else [lookup]
    return Agent(
        name=f"guard-{guarded}", model=ScriptedModel(script), tools=tools, max_turns=turns,
        guardrails=checks if guarded else [],
    )  # fmt: skip


@tool(name="lookup", guardrails=[RegexGuardrail(r"secret", name="tool_output")])
def _guarded_lookup(i: int) -> str:
    """Look something up."""
    return f"record {i}: fine"


def guarded_run(turns: int, guarded: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        service = Service(SQLiteStore(Path(tmp) / "g.db"))
        agent = _guarded_agent(turns, guarded)
        execution = service.create_execution(agent.name, {"prompt": "check"})
        worker = Worker(service, [agent_function(agent)])
        start = time.perf_counter()
        assert worker.run_once()
        elapsed = time.perf_counter() - start
        assert service.get_execution(execution.id).output["output"] == "all fine"
        service.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()

    ours = summary(agentspan_decisions(args.trials))
    theirs = summary(langgraph_decisions(args.trials))
    print(f"\nDecision to done: one tool call waiting for approval, {args.trials} trials\n")
    print("| run | median | mean | p99 |")
    print("|---|---|---|---|")
    for label, found in (
        ("Agentspan, native agent, embedded (decision → queue → claim → replay → tool → finish)", ours),
        ("LangGraph interrupt() + SqliteSaver, resumed in-process by the caller", theirs),
    ):
        print(f"| {label} | {found['median_ms']:.2f} ms | {found['mean_ms']:.2f} ms | {found['p99_ms']:.2f} ms |")
    print(f"\nratio of means: {ours['mean_ms'] / theirs['mean_ms']:.2f}×")

    plain, guarded = [], []
    guarded_run(args.turns, False)  # warm up
    for _ in range(args.rounds):
        plain.append(guarded_run(args.turns, False))
        guarded.append(guarded_run(args.turns, True))
    checks = 3 + (args.turns - 1)  # three on the answer, one on every tool result
    base, with_checks = run_stats(plain), run_stats(guarded)
    per_check = (statistics.median(guarded) - statistics.median(plain)) / checks
    print(f"\nGuardrails: {args.turns}-turn agent, {checks} recorded checks, {args.rounds} runs (SQLite FULL)\n")
    print("| run | total (median run) | mean run | slowest run |")
    print("|---|---|---|---|")
    for label, found in (("no guardrails", base), (f"{checks} guardrail checks", with_checks)):
        print(f"| {label} | {found['median_ms']:.1f} ms | {found['mean_ms']:.1f} ms | {found['max_ms']:.1f} ms |")
    print(f"\ncost of one recorded guardrail check (median runs): {per_check * 1e3:.3f} ms")


if __name__ == "__main__":
    main()

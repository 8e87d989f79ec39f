"""Agent-loop overhead of durability: a 50-turn agent on an in-process scripted model with no-op
tools, run durably (embedded runtime, SQLite FULL and NORMAL) and with durability off (the same
loop outside any execution), in one run.

    python benchmarks/agent_loop.py [--turns 50] [--rounds 5]

Each turn is one model call and one tool call: 2 steps per turn, 100 steps per run.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from _stats import runs as run_stats

from agentspan.agents import Agent, tool
from agentspan.agents._loop import agent_function, run_agent
from agentspan.runtime import Service, SQLiteStore
from agentspan.testing import ScriptedModel
from agentspan.worker import Worker


@tool
def noop(i: int) -> str:
    """Does nothing."""
    return "ok"


def _agent(turns: int, name: str) -> Agent:
    script = [[("noop", {"i": i})] for i in range(turns - 1)] + ["done"]
    return Agent(name=name, model=ScriptedModel(script), tools=[noop], max_turns=turns)


def plain(turns: int) -> float:
    agent = _agent(turns, "plain")
    start = time.perf_counter()
    result = asyncio.run(run_agent(agent, "go"))
    elapsed = time.perf_counter() - start
    assert result["output"] == "done"
    return elapsed


def durable(turns: int, synchronous: str) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        service = Service(SQLiteStore(Path(tmp) / "loop.db", synchronous=synchronous))  # type: ignore[arg-type]
        agent = _agent(turns, f"durable-{synchronous}")
        execution = service.create_execution(agent.name, {"prompt": "go"})
        worker = Worker(service, [agent_function(agent)])
        start = time.perf_counter()
        assert worker.run_once()
        elapsed = time.perf_counter() - start
        assert service.get_execution(execution.id).output["output"] == "done"
        service.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    steps = args.turns * 2 - 1
    plain(args.turns)  # warm up imports and caches
    runs = {"off": [], "full": [], "normal": []}
    for _ in range(args.rounds):
        runs["off"].append(plain(args.turns))
        runs["full"].append(durable(args.turns, "full"))
        runs["normal"].append(durable(args.turns, "normal"))
    base = statistics.median(runs["off"])
    print(f"\n{args.turns}-turn agent, {steps} steps (model + tool calls), {args.rounds} runs\n")
    print(
        "| run | total (median run) | mean per step (total / steps, median run) | mean per step (mean run)"
        " | mean per step (slowest run) | overhead per step | ratio vs durability off |"
    )
    print("|---|---|---|---|---|---|---|")
    for key, label in (("off", "durability off (plain loop)"), ("full", "durable, SQLite FULL (default)"),
                       ("normal", "durable, SQLite NORMAL")):  # fmt: skip
        found = run_stats(runs[key])
        total = found["median_ms"] / 1e3
        print(
            f"| {label} | {total * 1e3:.1f} ms | {total / steps * 1e3:.3f} ms | {found['mean_ms'] / steps:.3f} ms |"
            f" {found['max_ms'] / steps:.3f} ms | {(total - base) / steps * 1e3:.3f} ms | {total / base:.2f}× |"
        )


if __name__ == "__main__":
    main()

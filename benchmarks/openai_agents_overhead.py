"""The OpenAI Agents SDK adapter's cost per model and tool call, next to what the SDK persists itself.

    python benchmarks/openai_agents_overhead.py [--turns 50] [--rounds 5]

One SDK ``Agent`` with an in-process scripted ``Model`` (a tool call a turn, then an answer) and a
no-op function tool, ``--turns`` model calls and ``--turns - 1`` tool calls, run in one process:

- plain: the SDK's ``Runner.run``, nothing persisted;
- the SDK's own ``SQLiteSession`` on a file: the conversation saved after every turn (the SDK's
  persistence; it does not make calls replayable, so it is a reference point, not an equivalent);
- the Agentspan adapter: a durable step per model and tool call, embedded runtime, run by a worker
  (``agent_function``; SQLite FULL and NORMAL) and through the drop-in ``Runner.run_sync`` (FULL).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OPENAI_AGENTS_DISABLE_TRACING", "1")

from _stats import runs as run_stats
from agents import Agent, ModelResponse, Runner, SQLiteSession, Usage, function_tool
from agents.models.interface import Model
from openai.types.responses import (
    ResponseFunctionToolCall,
    ResponseOutputMessage,
    ResponseOutputText,
)

import agentspan.adapters.openai_agents as oa
from agentspan.durable import Runtime
from agentspan.runtime import Service, SQLiteStore
from agentspan.worker import Worker


@function_tool
def noop(i: int) -> str:
    """Does nothing."""
    return "ok"


class TurnModel(Model):
    """A tool call on every turn but the last; the turn is the number of tool results so far."""

    def __init__(self, turns: int) -> None:
        self.turns = turns

    async def get_response(self, system_instructions: Any, input: Any, *args: Any, **kwargs: Any) -> ModelResponse:
        turn = 0 if isinstance(input, str) else sum(1 for i in input if i.get("type") == "function_call_output")
        output: list[Any]
        if turn < self.turns - 1:
            output = [
                ResponseFunctionToolCall(
                    id=f"fc_{turn}",
                    call_id=f"call_{turn}",
                    name="noop",
                    arguments=json.dumps({"i": turn}),
                    type="function_call",
                    status="completed",
                )  # fmt: skip
            ]
        else:
            output = [
                ResponseOutputMessage(
                    id="msg",
                    role="assistant",
                    status="completed",
                    type="message",
                    content=[ResponseOutputText(text="done", type="output_text", annotations=[])],
                )  # fmt: skip
            ]
        return ModelResponse(output=output, usage=Usage(requests=1), response_id=f"resp_{turn}")

    def stream_response(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError


def _agent(turns: int, name: str) -> Agent[Any]:
    return Agent(name=name, instructions="Call noop until done.", model=TurnModel(turns), tools=[noop])


def plain(turns: int) -> float:
    agent = _agent(turns, "plain")
    start = time.perf_counter()
    result = asyncio.run(Runner.run(agent, "go", max_turns=turns + 1))
    elapsed = time.perf_counter() - start
    assert result.final_output == "done"
    return elapsed


def with_session(turns: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        session = SQLiteSession("bench", str(Path(tmp) / "session.db"))
        agent = _agent(turns, "session")
        start = time.perf_counter()
        result = asyncio.run(Runner.run(agent, "go", max_turns=turns + 1, session=session))
        elapsed = time.perf_counter() - start
        session.close()
    assert result.final_output == "done"
    return elapsed


def with_worker(turns: int, synchronous: Any = "full") -> float:
    with tempfile.TemporaryDirectory() as tmp:
        service = Service(SQLiteStore(Path(tmp) / "agentspan.db", synchronous=synchronous))
        agent = _agent(turns, "durable")
        execution = service.create_execution("durable", oa.execution_input("go"))
        worker = Worker(service, [oa.agent_function(agent, max_turns=turns + 1)])
        start = time.perf_counter()
        assert worker.run_once()
        elapsed = time.perf_counter() - start
        assert service.get_execution(execution.id).output["output"] == "done"
        service.close()
    return elapsed


def with_drop_in_runner(turns: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, Runtime(db=Path(tmp) / "agentspan.db") as runtime:
        oa.use_runtime(runtime)
        agent = _agent(turns, "drop-in")
        start = time.perf_counter()
        result = oa.Runner.run_sync(agent, "go", max_turns=turns + 1)
        elapsed = time.perf_counter() - start
    assert result.final_output == "done"
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    calls = 2 * args.turns - 1
    plain(5)  # warm up imports
    ways = {
        "plain": ("SDK `Runner.run` (nothing persisted)", plain),
        "session": ("SDK `Runner.run` with `SQLiteSession` (file)", with_session),
        "worker": ("Agentspan adapter, worker (SQLite FULL, the default)", with_worker),
        "normal": ("Agentspan adapter, worker (SQLite NORMAL)", lambda turns: with_worker(turns, "normal")),
        "drop_in": ("Agentspan drop-in `Runner.run_sync` (SQLite FULL)", with_drop_in_runner),
    }
    runs: dict[str, list[float]] = {key: [] for key in ways}
    for _ in range(args.rounds):
        for key, (_, fn) in ways.items():
            runs[key].append(fn(args.turns))
    base = statistics.median(runs["plain"])
    print(f"\nSDK agent, {args.turns} turns ({calls} model and tool calls), {args.rounds} runs\n")
    print("| run | total (median run) | mean run | slowest run | vs plain (median) | cost per call (median run) |")
    print("|---|---|---|---|---|---|")
    for key, (label, _) in ways.items():
        found = run_stats(runs[key])
        total = found["median_ms"] / 1e3
        cost = "–" if key == "plain" else f"{(total - base) / calls * 1e3:.3f} ms"
        print(
            f"| {label} | {total * 1e3:.1f} ms | {found['mean_ms']:.1f} ms | {found['max_ms']:.1f} ms |"
            f" {total / base:.2f}× | {cost} |"
        )


if __name__ == "__main__":
    main()

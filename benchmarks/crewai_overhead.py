"""The CrewAI adapter's cost per model and tool call, next to what CrewAI persists itself.

    python benchmarks/crewai_overhead.py [--calls 50] [--runs 5]

One agent, one task, one no-op tool: the model (agentspan.testing's FakeOpenAIServer on loopback, in
this process, through CrewAI's native OpenAI provider) asks for the tool ``--calls`` times, then
answers, so a run makes ``--calls + 1`` model calls and ``--calls`` tool calls. Every way below runs
the same crew, side by side in one process, ``--runs`` times each (interleaved); the table shows the
median run.

- plain: CrewAI's ``crew.kickoff``, nothing persisted (the adapter's patches not installed);
- plain, adapter installed: the same with the adapter's patches in place, outside any Agentspan run;
- the Agentspan adapter: ``durable(crew, runtime=Runtime(db=..., synchronous=...)).kickoff()``, a
  durable step per model call and tool call (and one per task) written as each call ends, SQLite FULL
  (fsync every commit, the default) and NORMAL. A rerun after a crash returns the recorded calls and
  makes only the ones that had not finished;
- CrewAI's checkpointing (``crewai.state``) after every tool call: an ``after_tool_call`` hook calling
  ``crewai_event_bus.runtime_state.checkpoint(dir)``, CrewAI's own snapshot of the whole runtime state
  (entities, messages, event record: it grows with the run) as a JSON file, synchronously, without
  fsync. CrewAI has no setting for this: its per-call events (``llm_call_completed``,
  ``tool_usage_finished``) never trigger a crew's checkpoint in 1.15 (their source is the LLM or the
  executor, which its checkpoint listener cannot map to a config), and its ``after_llm_call`` hooks
  see only the final answer on the native tool-calling path. It does not make calls replayable either:
  a crew restored (``Crew.from_checkpoint``) from the checkpoint after tool call 5 of 10 reran all 10
  tool calls and 11 model calls;
- CrewAI's checkpointing as configured: ``Crew(checkpoint=CheckpointConfig(location=dir))``, default
  trigger ``task_completed``: the same snapshot once, after the task, written by the event bus's
  thread pool (``SqliteProvider`` needs SQLite 3.45 or newer for ``jsonb``, so the JSON provider is
  used). A crash during the task loses every call of the run;
- CrewAI's flow persistence: a ``Flow`` whose one ``@start`` method, decorated with
  ``@persist(SQLiteFlowPersistence(...))``, kicks off the crew: the flow's state saved in SQLite after
  the method returns, once a run. A crash during the method loses every call of the run.

CrewAI's ways are reference points for what persistence costs there, not equivalents. Their writes are
also timed directly (CrewAI's ``CheckpointCompletedEvent.duration_ms``, a timed ``save_state``): the
run-level difference to plain is within the machine's noise when a run writes once.

Per-iteration figures come from the times the tool is entered: the interval between two tool calls
holds one model call and one tool call (with their writes); its median and p99 are compared with
plain's median and p99.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("CREWAI_TRACING_ENABLED", "false")

from _stats import runs as run_stats
from _stats import summary
from crewai import LLM, Agent, Crew, Task
from crewai.events.base_events import BaseEvent
from crewai.events.event_bus import crewai_event_bus
from crewai.events.types.checkpoint_events import CheckpointCompletedEvent
from crewai.flow.flow import Flow, start
from crewai.flow.persistence import SQLiteFlowPersistence, persist
from crewai.hooks import register_after_tool_call_hook, unregister_after_tool_call_hook
from crewai.state import checkpoint_listener
from crewai.state.checkpoint_config import CheckpointConfig
from crewai.tools import BaseTool

from agentspan.adapters.crewai import _patch, durable
from agentspan.durable import Runtime
from agentspan.testing import FakeOpenAIServer

_entered: list[float] = []
"""When each tool call of the current run started (``time.perf_counter``)."""
_writes: list[float] = []
"""How long each of CrewAI's own persistence writes of the current run took, in seconds."""
_checkpoint_bytes: dict[str, list[int]] = {}
"""The size of all checkpoints a run wrote, by way."""


@crewai_event_bus.on(CheckpointCompletedEvent)
def _checkpoint_written(source: Any, event: CheckpointCompletedEvent) -> None:
    _writes.append(event.duration_ms / 1e3)  # CrewAI's own timing: the state's dump and the file's write


class TimedFlowPersistence(SQLiteFlowPersistence):
    """CrewAI's SQLite flow persistence, timing each save."""

    def save_state(self, *args: Any, **kwargs: Any) -> None:
        start_at = time.perf_counter()
        super().save_state(*args, **kwargs)
        _writes.append(time.perf_counter() - start_at)


class Noop(BaseTool):
    """A tool that does nothing. A ``BaseTool`` subclass: CrewAI cannot checkpoint a ``@tool`` function."""

    name: str = "noop"
    description: str = "Does nothing; call it with the next i."

    def _run(self, i: int) -> str:
        _entered.append(time.perf_counter())
        return "ok"


def _crew(base_url: str, calls: int, **options: Any) -> Crew:
    llm = LLM(model="gpt-4o-mini", base_url=base_url, api_key="fake", max_retries=0)
    agent = Agent(
        role="worker",
        goal="Call noop until told to stop.",
        backstory="A benchmark.",
        llm=llm,
        tools=[Noop()],
        max_iter=calls + 5,
        verbose=False,
    )
    task = Task(description="Call noop until done.", expected_output="done", agent=agent)
    return Crew(agents=[agent], tasks=[task], verbose=False, **options)


Run = Callable[[str, int, Path], float]


def _timed(kickoff: Callable[[], Any]) -> float:
    _entered.clear()
    _writes.clear()
    start_at = time.perf_counter()
    output = kickoff()
    crewai_event_bus.flush()  # handlers still writing (checkpoints) count
    elapsed = time.perf_counter() - start_at
    raw = getattr(output, "raw", output)
    assert raw == "Done.", raw
    return elapsed


def plain(base_url: str, calls: int, tmp: Path) -> float:
    _patch.unpatch()
    crew = _crew(base_url, calls)
    return _timed(crew.kickoff)


def plain_installed(base_url: str, calls: int, tmp: Path) -> float:
    _patch.install()
    crew = _crew(base_url, calls)
    return _timed(crew.kickoff)


def adapter(synchronous: str) -> Run:
    def run(base_url: str, calls: int, tmp: Path) -> float:
        with Runtime(db=tmp / "agentspan.db", synchronous=synchronous) as runtime:
            crew = durable(_crew(base_url, calls), runtime=runtime)
            return _timed(lambda: crew.kickoff(inputs={}))

    return run


def _checkpoint_listener_off() -> None:
    """Take CrewAI's checkpoint listener off the event bus. CrewAI puts it on every event class the first
    time a crew has a checkpoint config and never takes it off, which would slow the other ways down."""
    seen: set[type[BaseEvent]] = set()
    stack: list[type[BaseEvent]] = [BaseEvent]
    while stack:
        for sub in stack.pop().__subclasses__():
            if sub not in seen:
                seen.add(sub)
                stack.append(sub)
                crewai_event_bus.off(sub, checkpoint_listener._on_any_event)
    checkpoint_listener._handlers_registered = False


def _count_checkpoints(key: str, location: Path) -> None:
    files = list(location.rglob("*.json"))
    assert files, "no checkpoint was written"
    _checkpoint_bytes.setdefault(key, []).append(sum(file.stat().st_size for file in files))


def checkpoint_per_task(base_url: str, calls: int, tmp: Path) -> float:
    _patch.unpatch()
    try:
        crew = _crew(base_url, calls, checkpoint=CheckpointConfig(location=str(tmp / "checkpoints")))
        elapsed = _timed(crew.kickoff)
    finally:
        _checkpoint_listener_off()
    _count_checkpoints("checkpoint", tmp / "checkpoints")
    return elapsed


def checkpoint_per_tool_call(base_url: str, calls: int, tmp: Path) -> float:
    _patch.unpatch()
    location = str(tmp / "checkpoints")

    def save(context: Any) -> None:
        state = crewai_event_bus.runtime_state
        assert state is not None, "CrewAI keeps no runtime state"
        state.checkpoint(location)

    register_after_tool_call_hook(save)
    try:
        crew = _crew(base_url, calls)
        elapsed = _timed(crew.kickoff)
    finally:
        unregister_after_tool_call_hook(save)
    _count_checkpoints("every_tool_call", tmp / "checkpoints")
    return elapsed


def persisted_flow(base_url: str, calls: int, tmp: Path) -> float:
    _patch.unpatch()
    persistence = TimedFlowPersistence(str(tmp / "flow.db"))

    class CrewFlow(Flow):  # type: ignore[type-arg]
        @start()
        @persist(persistence)
        def research(self) -> str:
            output = _crew(base_url, calls).kickoff()
            self.state["answer"] = output.raw
            return output.raw

    flow = CrewFlow(suppress_flow_events=True)  # CrewAI's switch for a quiet console
    elapsed = _timed(flow.kickoff)
    assert persistence.load_state(flow.state["id"]) is not None, "the flow's state was not saved"
    return elapsed


WAYS: dict[str, tuple[str, str, Run]] = {
    "plain": ("CrewAI `crew.kickoff`", "nothing", plain),
    "installed": ("CrewAI `crew.kickoff`, adapter installed", "nothing (patches inert outside a run)", plain_installed),
    "full": (
        "Agentspan `durable(crew)`, SQLite FULL (default)",
        "each call's result, as the call ends",
        adapter("full"),
    ),
    "normal": ("Agentspan `durable(crew)`, SQLite NORMAL", "each call's result, as the call ends", adapter("normal")),
    "every_tool_call": (
        "CrewAI checkpoint after every tool call (`after_tool_call` hook)",
        "whole runtime state, after each tool call",
        checkpoint_per_tool_call,
    ),
    "checkpoint": (
        "CrewAI `Crew(checkpoint=...)` (default: on task_completed)",
        "whole runtime state, after the task",
        checkpoint_per_task,
    ),
    "flow": ("CrewAI `@persist` flow (`SQLiteFlowPersistence`)", "flow state, after the method", persisted_flow),
}
CREWAI = ("every_tool_call", "checkpoint", "flow")
"""CrewAI's own persistence: the adapter's cost per call is compared with the first."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50, help="tool calls a run makes (default 50)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each way (default 5)")
    args = parser.parse_args()
    if args.calls < 2 or args.runs < 1:
        parser.error("--calls must be at least 2 and --runs at least 1")
    calls = 2 * args.calls + 1
    keys = list(WAYS)
    totals: dict[str, list[float]] = {key: [] for key in keys}
    intervals: dict[str, list[float]] = {key: [] for key in keys}
    writes: dict[str, list[float]] = {key: [] for key in keys}
    script = FakeOpenAIServer.research_script(args.calls, "noop", lambda i: {"i": i})
    with FakeOpenAIServer(script) as fake:
        for key in ("plain", "full"):  # warm up imports, patches and connections
            with tempfile.TemporaryDirectory() as tmp:
                WAYS[key][2](fake.base_url, args.calls, Path(tmp))
        for round_ in range(args.runs):
            # Each round starts with another way, so none always runs first (the machine's load drifts).
            for key in keys[round_ % len(keys) :] + keys[: round_ % len(keys)]:
                with tempfile.TemporaryDirectory() as tmp:
                    totals[key].append(WAYS[key][2](fake.base_url, args.calls, Path(tmp)))
                assert len(_entered) == args.calls, (key, len(_entered))
                intervals[key].extend(b - a for a, b in zip(_entered, _entered[1:], strict=False))
                writes[key].append(sum(_writes))
    base = statistics.median(totals["plain"])
    plain_iteration = summary(intervals["plain"])
    per_call = {key: (statistics.median(found) - base) / calls for key, found in totals.items()}
    reference = per_call[CREWAI[0]]
    print(
        f"\nOne CrewAI agent, {args.calls} tool calls and {args.calls + 1} model calls ({calls} calls) a run,"
        f" {args.runs} runs of each way\n"
    )
    print(
        "| run | persists | total (median run) | vs plain | per call over plain (mean) |"
        " per iteration over plain (median / p99) | CrewAI's own writes a run (per call) |"
        " per call vs CrewAI checkpoint every tool call |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for key, (label, persists, _) in WAYS.items():
        total = statistics.median(totals[key]) * 1e3
        if key == "plain":
            print(f"| {label} | {persists} | {total:.0f} ms | 1.00× | – | – | – | – |")
            continue
        found = summary(intervals[key])
        iteration = (
            f"{found['median_ms'] - plain_iteration['median_ms']:.2f} /"
            f" {found['p99_ms'] - plain_iteration['p99_ms']:.2f} ms"
        )
        written = statistics.median(writes[key])
        own = f"{written * 1e3:.1f} ms ({written / calls * 1e3:.3f} ms)" if key in CREWAI else "–"
        ratio = f"{per_call[key] / reference:.2f}×" if reference > 0 else "n/a"
        print(
            f"| {label} | {persists} | {total:.0f} ms | {total / (base * 1e3):.2f}× | {per_call[key] * 1e3:.3f} ms |"
            f" {iteration} | {own} | {ratio} |"
        )
    slowest = ", ".join(f"{key} {run_stats(totals[key])['max_ms']:.0f}" for key in keys)
    sizes = ", ".join(f"{key} {statistics.median(found) / 1e6:.2f} MB" for key, found in _checkpoint_bytes.items())
    print(
        f"\nplain: {base / calls * 1e3:.2f} ms a call; an iteration (a model call and a tool call)"
        f" {plain_iteration['median_ms']:.2f} ms median, {plain_iteration['p99_ms']:.2f} ms p99."
        f" CrewAI's checkpoints a run: {sizes}. Slowest run of each way (ms): {slowest}."
    )


if __name__ == "__main__":
    main()

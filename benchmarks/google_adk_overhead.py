"""The Google ADK adapter's cost per model and tool call, next to what ADK persists itself.

    python benchmarks/google_adk_overhead.py [--calls 50] [--runs 5]

One ``LlmAgent`` on ADK's default Gemini model with one no-op tool: the model (agentspan.testing's
FakeOpenAIServer on loopback, in this process, as ``GOOGLE_GEMINI_BASE_URL``) asks for the tool
``--calls`` times, then answers, so a run makes ``--calls + 1`` model calls and ``--calls`` tool calls.
Every way below runs a fresh copy of the same agent, side by side in one process, ``--runs`` times
each (interleaved); the table shows the median run.

- plain: ADK's ``Runner`` on an ``InMemorySessionService``, nothing persisted (the adapter's patches
  not installed);
- plain, adapter installed: the same with the adapter's patches in place, outside any Agentspan run;
- the Agentspan adapter: ``AgentRuntime(db=..., synchronous=...).run(agent, prompt)``, a durable step
  per model call and tool call written as each call ends, SQLite FULL (fsync every commit, the
  default) and NORMAL. A rerun after a crash returns the recorded calls and makes only the ones that
  had not finished;
- ADK's session persistence: the ``Runner`` on ADK's ``SqliteSessionService`` (a SQLite file; one
  connection and one commit per event, SQLite's default rollback journal with ``synchronous=FULL``),
  as an ``App`` with and without ``ResumabilityConfig(is_resumable=True)``. ADK persists the session:
  every non-partial event (the user's message, each model response with its function calls, each
  tool's function response with the state changes it made) and, when resumable, its agents' states
  (``end_of_agent``) as events too. Nothing else: no record of a call that has started, no
  idempotency key. Resuming (``Runner.run_async(invocation_id=...)``) reads the session's events back:
  a model response already on record is not asked again, and its function calls that have no
  response yet are run again ("at-least-once": ADK's docstring asks for idempotent tools). See the
  resume measurement printed under the table.

ADK's ways are reference points for what persistence costs there: resumability is the closest
equivalent (it resumes an invocation from its last event), session persistence alone resumes nothing.

Per-iteration figures come from the times the tool is entered: the interval between two tool calls
holds one model call and one tool call (with their writes); its median and p99 are compared with
plain's median and p99.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _stats import runs as run_stats
from _stats import summary
from google.adk.agents import LlmAgent
from google.adk.apps.app import App, ResumabilityConfig
from google.adk.runners import Runner
from google.adk.sessions.in_memory_session_service import InMemorySessionService
from google.adk.sessions.sqlite_session_service import SqliteSessionService
from google.genai import types

from agentspan.adapters.google_adk import _patch
from agentspan.agents import AgentRuntime
from agentspan.testing import FakeOpenAIServer
from agentspan.worker._aio import run_async

warnings.filterwarnings("ignore", category=DeprecationWarning)  # aiohttp's, about google-genai's client
warnings.filterwarnings("ignore", message=r".*\[EXPERIMENTAL\].*")  # ADK's ResumabilityConfig and App
logging.getLogger("google_adk").setLevel(logging.CRITICAL)  # ADK logs each run's warnings (dropped calls)

PROMPT = "Call noop until done."
USER = "bench"
_entered: list[float] = []
"""When each tool call of the current run started (``time.perf_counter``)."""
_crash_at: list[int] = []
"""The tool call (1-based) that raises, for the resume measurement; empty: none."""


_DIED = 71
"""The exit status of the process that dies in a tool call."""


def noop(i: int) -> str:
    """Does nothing; call it with the next i."""
    _entered.append(time.perf_counter())
    if _crash_at and len(_entered) == _crash_at[0]:
        Path(os.environ["ADK_BENCH_CALLS"]).write_text(str(len(_entered)))
        os._exit(_DIED)  # the process dies in the call
    return "ok"


def _agent() -> LlmAgent:
    return LlmAgent(name="bench", model="gemini-2.5-flash", instruction=PROMPT, tools=[noop])


async def _close(agent: LlmAgent) -> None:
    await agent.canonical_model.api_client.aio.aclose()  # type: ignore[attr-defined]


def _text(events: list[Any]) -> str:
    final = [e for e in events if e.is_final_response() and e.content and e.content.parts]
    return "".join(part.text or "" for part in final[-1].content.parts) if final else ""


async def _adk(agent: LlmAgent, sessions: Any, *, resumable: bool | None) -> tuple[str, str]:
    """Run ``agent`` once with ADK's ``Runner``; the final text and the invocation id."""
    if resumable is None:
        runner = Runner(app_name="bench", agent=agent, session_service=sessions)
    else:
        app = App(name="bench", root_agent=agent, resumability_config=ResumabilityConfig(is_resumable=resumable))
        runner = Runner(app=app, session_service=sessions)
    try:
        session = await sessions.create_session(app_name="bench", user_id=USER)
        message = types.Content(role="user", parts=[types.Part(text=PROMPT)])
        events = [e async for e in runner.run_async(user_id=USER, session_id=session.id, new_message=message)]
    finally:
        await runner.close()
    return _text(events), events[0].invocation_id if events else ""


Run = Callable[[int, Path], float]


def _timed(run: Callable[[], str]) -> float:
    _entered.clear()
    start_at = time.perf_counter()
    output = run()
    elapsed = time.perf_counter() - start_at
    assert output == "Done.", output
    return elapsed


def adk(session_service: str, resumable: bool | None = None, installed: bool = False) -> Run:
    def run(calls: int, tmp: Path) -> float:
        if installed:
            _patch.install()
        else:
            _patch.unpatch()
        agent = _agent()

        async def go() -> str:
            sessions = (
                InMemorySessionService() if session_service == "memory" else SqliteSessionService(str(tmp / "adk.db"))
            )
            try:
                return (await _adk(agent, sessions, resumable=resumable))[0]
            finally:
                await _close(agent)

        return _timed(lambda: asyncio.run(go()))

    return run


def adapter(synchronous: str) -> Run:
    def run(calls: int, tmp: Path) -> float:
        agent = _agent()
        try:
            with AgentRuntime(db=tmp / "agentspan.db", serve_http=False, synchronous=synchronous) as runtime:  # type: ignore[arg-type]

                def go() -> str:
                    result = runtime.run(agent, PROMPT)
                    assert result.is_success, result.error
                    return str(result.output)

                return _timed(go)
        finally:
            run_async(_close(agent))

    return run


WAYS: dict[str, tuple[str, str, Run]] = {
    "plain": ("ADK `Runner`, in-memory session", "nothing", adk("memory")),
    "installed": (
        "ADK `Runner`, adapter installed",
        "nothing (patches inert outside a run)",
        adk("memory", installed=True),
    ),
    "full": (
        "Agentspan `AgentRuntime.run`, SQLite FULL (default)",
        "each call's result, as the call ends",
        adapter("full"),
    ),
    "normal": (
        "Agentspan `AgentRuntime.run`, SQLite NORMAL",
        "each call's result, as the call ends",
        adapter("normal"),
    ),
    "resumable": (
        "ADK `App(resumability_config=ResumabilityConfig(is_resumable=True))`, `SqliteSessionService`",
        "each event (and agent state), as it is appended",
        adk("sqlite", resumable=True),
    ),
    "sqlite": ("ADK `Runner`, `SqliteSessionService`, not resumable", "each event, as it is appended", adk("sqlite")),
}
REFERENCE = "resumable"
"""ADK's resumability: the adapter's cost per call is compared with it."""


async def _crash_leg(db: str, crash_after: int) -> None:
    """In a process of its own: run the resumable app on ``db`` until tool call ``crash_after + 1``,
    where the process dies (``os._exit``: nothing is written after it)."""
    agent = _agent()
    app = App(name="bench", root_agent=agent, resumability_config=ResumabilityConfig(is_resumable=True))
    sessions = SqliteSessionService(db)
    session = await sessions.create_session(app_name="bench", user_id=USER, session_id="resume")
    _crash_at[:] = [crash_after + 1]
    message = types.Content(role="user", parts=[types.Part(text=PROMPT)])
    async for _ in Runner(app=app, session_service=sessions).run_async(
        user_id=USER, session_id=session.id, new_message=message
    ):
        pass
    raise AssertionError("the run did not reach its crash")


def resume_count(fake: FakeOpenAIServer, tmp: Path, crash_after: int = 5) -> dict[str, int]:
    """ADK's resumability after a crash: a process running the resumable app dies in tool call
    ``crash_after + 1`` (of 10); a fresh ``Runner`` in this process on the same SQLite file resumes the
    invocation (its id from the session). The calls each made, and the session's events."""
    _patch.unpatch()
    db = str(tmp / "resume.db")
    crashed = subprocess.run(
        [sys.executable, __file__, "--crash-leg", db, "--crash-after", str(crash_after)], check=False
    )
    assert crashed.returncode == _DIED, f"the crashing run exited with {crashed.returncode}"
    first = {"tool_calls": int(Path(db + ".calls").read_text()), "model_calls": fake.request_count}

    async def go() -> dict[str, int]:
        agent = _agent()
        app = App(name="bench", root_agent=agent, resumability_config=ResumabilityConfig(is_resumable=True))
        sessions = SqliteSessionService(db)
        session = await sessions.get_session(app_name="bench", user_id=USER, session_id="resume")
        assert session is not None and session.events, "the crashed run left no session"
        events_at_crash = len(session.events)
        _entered.clear()
        requests = fake.request_count
        runner = Runner(app=app, session_service=sessions)
        try:
            events = [
                e
                async for e in runner.run_async(
                    user_id=USER, session_id=session.id, invocation_id=session.events[0].invocation_id
                )
            ]
        finally:
            await runner.close()
            await _close(agent)
        assert _text(events) == "Done.", [e.model_dump(exclude_none=True) for e in events]
        return {
            "events_at_crash": events_at_crash,
            "crashed_tool_calls": first["tool_calls"],
            "crashed_model_calls": first["model_calls"],
            "resumed_tool_calls": len(_entered),
            "resumed_model_calls": fake.request_count - requests,
        }

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=50, help="tool calls a run makes (default 50)")
    parser.add_argument("--runs", type=int, default=5, help="runs of each way (default 5)")
    parser.add_argument("--crash-leg", help=argparse.SUPPRESS)  # the process that dies (resume measurement)
    parser.add_argument("--crash-after", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.crash_leg:
        os.environ["ADK_BENCH_CALLS"] = args.crash_leg + ".calls"
        asyncio.run(_crash_leg(args.crash_leg, args.crash_after))
        return
    if args.calls < 2 or args.runs < 1:
        parser.error("--calls must be at least 2 and --runs at least 1")
    calls = 2 * args.calls + 1
    keys = list(WAYS)
    totals: dict[str, list[float]] = {key: [] for key in keys}
    intervals: dict[str, list[float]] = {key: [] for key in keys}
    script = FakeOpenAIServer.research_script(args.calls, "noop", lambda i: {"i": i})
    with FakeOpenAIServer(script) as fake:
        os.environ.update(GOOGLE_GEMINI_BASE_URL=fake.gemini_base_url, GOOGLE_API_KEY="fake")
        os.environ.update(GOOGLE_GENAI_USE_ENTERPRISE="false", OTEL_SDK_DISABLED="true")
        os.environ.pop("GOOGLE_GENAI_USE_VERTEXAI", None)
        for key in ("plain", "full", "resumable"):  # warm up imports, patches and connections
            with tempfile.TemporaryDirectory() as tmp:
                WAYS[key][2](args.calls, Path(tmp))
        for round_ in range(args.runs):
            # Each round starts with another way, so none always runs first (the machine's load drifts).
            for key in keys[round_ % len(keys) :] + keys[: round_ % len(keys)]:
                with tempfile.TemporaryDirectory() as tmp:
                    totals[key].append(WAYS[key][2](args.calls, Path(tmp)))
                assert len(_entered) == args.calls, (key, len(_entered))
                intervals[key].extend(b - a for a, b in zip(_entered, _entered[1:], strict=False))
        with FakeOpenAIServer(FakeOpenAIServer.research_script(10, "noop", lambda i: {"i": i})) as small:
            os.environ["GOOGLE_GEMINI_BASE_URL"] = small.gemini_base_url
            with tempfile.TemporaryDirectory() as tmp:
                resumed = resume_count(small, Path(tmp))
    base = statistics.median(totals["plain"])
    plain_iteration = summary(intervals["plain"])
    per_call = {key: (statistics.median(found) - base) / calls for key, found in totals.items()}
    reference = per_call[REFERENCE]
    print(
        f"\nOne ADK LlmAgent, {args.calls} tool calls and {args.calls + 1} model calls ({calls} calls) a run,"
        f" {args.runs} runs of each way\n"
    )
    print(
        "| run | persists | total (median run) | vs plain | per call over plain (mean) |"
        " per iteration over plain (median / p99) | per call vs ADK resumability |"
    )
    print("|---|---|---|---|---|---|---|")
    for key, (label, persists, _) in WAYS.items():
        total = statistics.median(totals[key]) * 1e3
        if key == "plain":
            print(f"| {label} | {persists} | {total:.0f} ms | 1.00× | – | – | – |")
            continue
        found = summary(intervals[key])
        iteration = (
            f"{found['median_ms'] - plain_iteration['median_ms']:.2f} /"
            f" {found['p99_ms'] - plain_iteration['p99_ms']:.2f} ms"
        )
        ratio = f"{per_call[key] / reference:.2f}×" if reference > 0 else "n/a"
        print(
            f"| {label} | {persists} | {total:.0f} ms | {total / (base * 1e3):.2f}× | {per_call[key] * 1e3:.3f} ms |"
            f" {iteration} | {ratio} |"
        )
    slowest = ", ".join(f"{key} {run_stats(totals[key])['max_ms']:.0f}" for key in keys)
    print(
        f"\nplain: {base / calls * 1e3:.2f} ms a call; an iteration (a model call and a tool call)"
        f" {plain_iteration['median_ms']:.2f} ms median, {plain_iteration['p99_ms']:.2f} ms p99."
        f" Slowest run of each way (ms): {slowest}."
    )
    print(
        "ADK resumability, 10 tool calls, the process killed in tool call 6 (os._exit): it had made"
        f" {resumed['crashed_tool_calls']} tool calls and {resumed['crashed_model_calls']} model calls and left"
        f" {resumed['events_at_crash']} events; resuming its invocation in a fresh Runner made"
        f" {resumed['resumed_tool_calls']} tool calls and {resumed['resumed_model_calls']} model calls"
        " (an uninterrupted run: 10 and 11)."
    )


if __name__ == "__main__":
    main()

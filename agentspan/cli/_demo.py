"""``agentspan demo``: a research agent's worker is killed with SIGKILL after tool call 18 of 20, and a
new worker resumes the run without repeating any completed model or tool call."""

from __future__ import annotations

import collections
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..durable import ExecutionHandle
from ..durable._runtime import expire_dead_local_workers
from ..runtime import Service, SQLiteStore, StepStatus
from ._common import command_name

__all__ = ["run_demo"]

PROMPT = "Compare the top workflow orchestration tools for AI agents"


def _worker(db: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A worker process; what it logs (claims, the step it resumes at) goes to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "agentspan", "worker", "agentspan.cli._demo_agent:agent",
             "--db", str(db), "--max-executions", "1", "--poll-seconds", "1"],
            env=env, stdout=subprocess.DEVNULL, stderr=out,
        )  # fmt: skip


def _resume_line(log: Path) -> str | None:
    """The worker's own words on where it resumed (``... resuming at step N (...)``)."""
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if "resuming at step" in line:
            return "resuming at step" + line.split("resuming at step", 1)[1]
    return None


@dataclasses.dataclass
class _Call:
    """One tool call of the run, as the tool's own side-effect log saw it."""

    number: int
    query: str
    runs: list[tuple[str, str, int]]  # (idempotency key, attempt, pid) per time it ran


def _calls(log: Path) -> list[_Call]:
    calls: dict[str, _Call] = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        query, key, attempt, pid = line.split("\t")
        call = calls.setdefault(query, _Call(len(calls) + 1, query, []))
        call.runs.append((key, attempt, int(pid)))
    return list(calls.values())


def _ranges(numbers: list[int]) -> str:
    """``[1, 2, 3, 5]`` → ``"1-3, 5"``."""
    parts: list[str] = []
    for number in numbers:
        if parts and parts[-1].split("-")[-1] == str(number - 1):
            parts[-1] = f"{parts[-1].split('-')[0]}-{number}"
        else:
            parts.append(str(number))
    return ", ".join(parts)


def _print_calls(calls: list[_Call], workers: dict[int, str]) -> None:
    """The per-call rows, summarised: runs of calls that ran once in one worker, then each repeat explained."""
    print("what each tool call did (from the tool's own side-effect log):")
    group: list[int] = []
    label = ""

    def flush() -> None:
        if group:
            which = f"calls {_ranges(group)}: ran once each" if len(group) > 1 else f"call {group[0]}: ran once"
            print(f"  {which}, in {label}")
            group.clear()

    for call in calls:
        if len(call.runs) == 1:
            worker = workers.get(call.runs[0][2], f"pid {call.runs[0][2]}")
            if worker != label:
                flush()
                label = worker
            group.append(call.number)
            continue
        flush()
        label = ""
        _explain_repeat(call, workers)
    flush()


def _explain_repeat(call: _Call, workers: dict[int, str]) -> None:
    keys = {key for key, _attempt, _pid in call.runs}
    by = " then ".join(f"{workers.get(pid, f'pid {pid}')} (attempt {attempt})" for _k, attempt, pid in call.runs)
    print(f"  call {call.number}: ran {len(call.runs)} times, {by}.")
    same = "the same idempotency key" if len(keys) == 1 else "different idempotency keys"
    print("    It was in flight when worker 1 was killed: started, its result not yet recorded. A call")
    print(f"    that may have happened runs again (the default in-doubt policy), with {same},")
    print("    so a tool with a real side effect can make the repeat a no-op; steps that must never")
    print("    repeat choose CONFIRM or FAIL instead.")
    if len({attempt for _key, attempt, _pid in call.runs}) == 1:
        print(
            "    Both ran as attempt 1: the kill came before its 'started' record reached the journal"
            "\n    (the in-doubt window the README describes)."
        )


def _tool_steps_done(service: Service, execution_id: str) -> int:
    return sum(s.kind == "tool" and s.status is StepStatus.COMPLETED for s in service.get_journal(execution_id))


def _turns_requested(requests: list[dict[str, object]]) -> collections.Counter[int]:
    """How often the fake model was asked for each turn (turn = assistant messages so far + 1)."""
    counts: collections.Counter[int] = collections.Counter()
    for body in requests:
        messages = body.get("messages", [])
        assert isinstance(messages, list)
        counts[1 + sum(1 for m in messages if isinstance(m, dict) and m.get("role") == "assistant")] += 1
    return counts


def run_demo(*, calls: int = 20, crash_after: int = 18, model: str | None = None) -> int:
    """Run the demo; returns the process exit code (0 when nothing completed was repeated)."""
    if not 0 < crash_after < calls:
        print("agentspan demo: --crash-after must be between 1 and --calls - 1", file=sys.stderr)
        return 2
    from ..testing import FakeOpenAIServer

    if model is not None:
        provider = model.partition("/")[0]
        key = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY"}.get(provider)
        if key and not os.environ.get(key) and not os.environ.get(f"{provider.upper()}_BASE_URL"):
            print(f"agentspan demo: --model {model} needs {key} (or {provider.upper()}_BASE_URL)", file=sys.stderr)
            return 2

    folder = Path(tempfile.mkdtemp(prefix="agentspan-demo-"))
    db, log = folder / "demo.db", folder / "tool-calls.log"
    # Each tool call takes a moment, as a real one would, so the kill lands between calls 18 and 19.
    env = {**os.environ, "AGENTSPAN_DEMO_LOG": str(log), "AGENTSPAN_DEMO_DELAY": "0.15"}
    env.pop("AGENTSPAN_SERVER_URL", None)
    fake = None
    if model is None:
        script = FakeOpenAIServer.research_script(
            calls, "search_web", lambda i: {"query": f"workflow engines, angle {i + 1}"},
            answer="Temporal, DBOS and Agentspan compared: durable steps make the difference.",
        )  # fmt: skip
        fake = FakeOpenAIServer(script).start()
        env["OPENAI_BASE_URL"] = fake.base_url
        env.pop("OPENAI_API_KEY", None)
        model_label = "a scripted fake OpenAI-compatible model (offline)"
    else:
        env["AGENTSPAN_DEMO_MODEL"] = model
        model_label = model
    service = Service(SQLiteStore(db))
    try:
        execution = service.create_execution("research-agent", {"prompt": PROMPT})
        print(f"Agentspan demo: a research agent on {model_label} makes {calls} tool calls.")
        print(f"Each tool call appends a line to {log}.\n")

        first = _worker(db, env, folder / "worker-1.log")
        print(f"worker 1 (pid {first.pid}) runs execution {execution.id}")
        while _tool_steps_done(service, execution.id) < crash_after:
            if first.poll() is not None:
                print("worker 1 stopped before the crash point", file=sys.stderr)
                return 1
            time.sleep(0.01)
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        requests_before = fake.request_count if fake else None
        print(f"worker 1 killed with SIGKILL after tool call {crash_after} completed")

        expire_dead_local_workers(service)  # a dead local worker's lease is given up at once
        second_log = folder / "worker-2.log"
        second = _worker(db, env, second_log)
        handle = ExecutionHandle(service, execution.id)
        final = handle.wait(timeout=300)
        second.wait(timeout=30)
        resumed = _resume_line(second_log)
        print(f"worker 2 (pid {second.pid}) took it over: {resumed or 'it started from the beginning'}\n")

        tool_calls = _calls(log)
        repeated_tools = [c.number for c in tool_calls[:crash_after] if len(c.runs) > 1]
        repeated_turns: list[int] = []
        turns: collections.Counter[int] = collections.Counter()
        model_line = ""
        if fake is not None:
            turns = _turns_requested(fake.requests)
            repeated_turns = [t for t in range(1, crash_after + 1) if turns[t] > 1]
            model_line = (
                f"  turns 1-{crash_after} requested again: {len(repeated_turns)}"
                f"   (model requests: {requests_before} by worker 1, {fake.request_count - (requests_before or 0)}"
                " by worker 2)"
            )
        ok = not repeated_tools and not repeated_turns and final.status.value == "completed"
        output = final.output if isinstance(final.output, dict) else {}
        print(
            "RESULT: the run finished and nothing that had completed before the kill ran again."
            if ok
            else "RESULT: something that had completed before the kill ran again (see below)."
        )
        print(f"  final answer ({final.status.value}): {output.get('output', final.error)}")
        print(f"  tool calls 1-{crash_after} run again: {len(repeated_tools)}")
        if model_line:
            print(model_line)
        print()
        _print_calls(tool_calls, {first.pid: "worker 1", second.pid: "worker 2"})
        if not any(len(c.runs) > 1 for c in tool_calls):
            again = [t for t in turns if t > crash_after and turns[t] > 1] if fake is not None else []
            if again:
                print(
                    f"  No tool call was in flight at the kill: worker 1 was waiting for the model's turn {again[0]},"
                    " which worker 2 asked for again\n  (a model call is a step too: it is recorded once it answers)."
                )
            else:
                print("  No call was in flight at the kill: nothing ran twice.")
        print("\nlook at it (the journal shows which worker ran each step and which steps were replayed):")
        cli = command_name()
        print(f"  {cli} executions show {execution.id} --db {db}")
        print(f"  {cli} server --db {db}   then   http://127.0.0.1:6767/api/executions/{execution.id}/journal")
        return 0 if ok else 1
    finally:
        service.close()
        if fake is not None:
            fake.stop()

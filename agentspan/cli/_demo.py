"""``agentspan demo``: a research agent's worker is killed with SIGKILL after tool call 18 of 20, and a
new worker resumes the run without repeating any completed model or tool call."""

from __future__ import annotations

import collections
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

__all__ = ["run_demo"]

PROMPT = "Compare the top workflow orchestration tools for AI agents"


def _worker(db: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentspan", "worker", "agentspan.cli._demo_agent:agent",
         "--db", str(db), "--max-executions", "1", "--poll-seconds", "1"],
        env=env, stdout=subprocess.DEVNULL,
    )  # fmt: skip


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

        first = _worker(db, env)
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
        second = _worker(db, env)
        print(f"worker 2 (pid {second.pid}) resumes it\n")
        handle = ExecutionHandle(service, execution.id)
        final = handle.wait(timeout=300)
        second.wait(timeout=30)

        lines = [line.split("\t") for line in log.read_text(encoding="utf-8").splitlines()]
        runs = collections.Counter(query for query, _key, _attempt in lines)
        keys = collections.defaultdict(set)
        for query, key, _attempt in lines:
            keys[query].add(key)
        queries = list(dict.fromkeys(query for query, _key, _attempt in lines))
        repeated_tools = [q for q in queries[:crash_after] if runs[q] > 1]
        print("tool calls, by how often they ran:")
        for number, query in enumerate(queries, 1):
            note = ""
            if runs[query] > 1:
                same = "the same" if len(keys[query]) == 1 else "a different"
                note = f"  <- in flight at the kill: ran again with {same} idempotency key"
            print(f"  {number:2}. {query}: {runs[query]}{note}")
        repeated_turns: list[int] = []
        if fake is not None:
            turns = _turns_requested(fake.requests)
            repeated_turns = [t for t in range(1, crash_after + 1) if turns[t] > 1]
            print(
                f"\nmodel requests at the fake server: {requests_before} by worker 1,"
                f" {fake.request_count - (requests_before or 0)} by worker 2;"
                f" turns 1-{crash_after} requested again: {len(repeated_turns)}"
            )
        print(f"tool calls 1-{crash_after} run again: {len(repeated_tools)}")
        output = final.output if isinstance(final.output, dict) else {}
        print(f"\nfinal answer ({final.status.value}): {output.get('output', final.error)}")
        print("\nlook at it:")
        print(f"  agentspan executions show {execution.id} --db {db}")
        print(f"  agentspan server --db {db}   then   http://127.0.0.1:6767/api/executions/{execution.id}/journal")
        return 0 if not repeated_tools and not repeated_turns and final.status.value == "completed" else 1
    finally:
        service.close()
        if fake is not None:
            fake.stop()

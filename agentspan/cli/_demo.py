"""``agentspan demo``: a worker is killed with SIGKILL mid-execution and another one resumes it."""

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


def _worker(db: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "agentspan", "worker", "agentspan.cli._demo_flow:functions",
         "--db", str(db), "--max-executions", "1", "--poll-seconds", "1"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip


def _completed(service: Service, execution_id: str) -> int:
    return sum(s.status is StepStatus.COMPLETED for s in service.get_journal(execution_id))


def run_demo(*, steps: int = 20, crash_after: int = 18) -> int:
    """Run the demo; returns the process exit code."""
    if not 0 < crash_after < steps:
        print("agentspan demo: --crash-after must be between 1 and --steps - 1", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="agentspan-demo-"))
    db, log_path = folder / "demo.db", folder / "side-effects.log"
    service = Service(SQLiteStore(db))
    execution = service.create_execution(
        "research", {"topic": "workflow engines", "calls": steps, "log_path": str(log_path)}
    )
    print(f"Agentspan demo: a durable function makes {steps} tool calls; each call appends a line to")
    print(f"{log_path}, so the file shows how often each call really ran.\n")

    first = _worker(db)
    print(f"worker 1 (pid {first.pid}) claimed execution {execution.id}")
    while _completed(service, execution.id) < crash_after:
        if first.poll() is not None:
            print("worker 1 exited before the crash point", file=sys.stderr)
            return 1
        time.sleep(0.01)
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    print(f"worker 1 killed with SIGKILL after call {crash_after} completed")

    # The dead worker's lease would expire by itself; a dead local process is detected at once.
    expire_dead_local_workers(service)
    second = _worker(db)
    print(f"worker 2 (pid {second.pid}) resumes the execution")
    result = ExecutionHandle(service, execution.id).result(timeout=120)
    second.wait(timeout=30)

    runs = collections.Counter(line.split("\t")[0] for line in log_path.read_text().splitlines())
    keys = collections.defaultdict(set)
    for line in log_path.read_text().splitlines():
        query, key = line.split("\t")
        keys[query].add(key)
    print(f"\nresult: {result}\n")
    print("how often each tool call ran (side-effect lines):")
    for i in range(1, steps + 1):
        query = f"workflow engines #{i}"
        count = runs.get(query, 0)
        note = ""
        if i <= crash_after:
            note = "before the crash: not repeated" if count == 1 else "REPEATED"
        elif count > 1:
            same = "same" if len(keys[query]) == 1 else "different"
            note = f"in doubt at the crash: ran again with the {same} idempotency key"
        print(f"  call {i:2}: {count}  {note}")
    repeated = sum(runs.get(f"workflow engines #{i}", 0) > 1 for i in range(1, crash_after + 1))
    print(f"\ncalls 1-{crash_after} repeated after the crash: {repeated}")
    print(f"look at it: agentspan executions show {execution.id} --db {db}")
    service.close()
    return 0 if repeated == 0 else 1

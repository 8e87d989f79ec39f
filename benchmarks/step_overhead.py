"""Per-step overhead of a durable step, side by side with peers on the same machine.

    python benchmarks/step_overhead.py [--steps 2000] [--rounds 3]

Measures, each in a fresh process:

- a durable step around a no-op function: embedded (in-process service, SQLite FULL and NORMAL)
  and over HTTP on loopback (``agentspan server`` in another process, SQLite FULL);
- how soon a long-polling claim returns after work is enqueued (embedded and HTTP);
- resuming an execution with 1,000 completed steps: the runtime overhead until step 1,001 runs;
- DBOS steps (SQLite) and LangGraph supersteps (no checkpointer, and SqliteSaver), when installed.

Prints a Markdown table. Figures vary run to run on a shared VM: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from _stats import summary

HERE = Path(__file__).resolve()


def _percentiles(samples: list[float], total: float | None = None) -> dict[str, float]:
    """Median and p99 of the per-step samples; the mean is ``total / steps`` when the wall time of the
    whole loop is given (work done behind the steps, like a background checkpoint write, counts)."""
    found = summary(samples)
    if total is not None:
        found["mean_ms"] = total / len(samples) * 1e3
    return found


# --- agentspan ------------------------------------------------------------------------------------
def _agentspan_steps(client: Any, steps: int) -> tuple[list[float], float]:
    from agentspan import durable
    from agentspan.worker import Worker

    @durable.step
    def noop(i: int) -> int:
        return i

    samples: list[float] = []
    measured: list[float] = []

    @durable.function(name="bench_loop")
    def loop(n: int) -> int:
        clock = time.perf_counter
        began = 0.0
        for i in range(n):
            if i == n // 10:  # the warm-up tenth is not measured
                began = clock()
            start = clock()
            noop(i)
            samples.append(clock() - start)
        measured.append(clock() - began)
        return n

    client.create_execution("bench_loop", {"n": steps})
    assert Worker(client, [loop]).run_once(wait_seconds=5)
    return samples[steps // 10 :], measured[0]


def _plain_steps(steps: int) -> list[float]:
    def noop(i: int) -> int:
        return i

    samples = []
    for i in range(steps):
        start = time.perf_counter()
        noop(i)
        samples.append(time.perf_counter() - start)
    return samples


def _server(db: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentspan", "server", "--port", str(port), "--db", str(db)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    for _ in range(400):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=0.5).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port}/api"


def measure_embedded(steps: int, synchronous: str) -> dict[str, Any]:
    from agentspan.runtime import Service, SQLiteStore

    with tempfile.TemporaryDirectory() as tmp:
        service = Service(SQLiteStore(Path(tmp) / "bench.db", synchronous=synchronous))  # type: ignore[arg-type]
        samples, total = _agentspan_steps(service, steps)
        service.close()
    return _percentiles(samples, total)


def measure_http(steps: int) -> dict[str, Any]:
    from agentspan.client import HttpClient

    with tempfile.TemporaryDirectory() as tmp:
        proc, url = _server(Path(tmp) / "bench.db")
        try:
            with HttpClient(url) as client:
                samples, total = _agentspan_steps(client, steps)
        finally:
            proc.terminate()
            proc.wait()
    return _percentiles(samples, total)


def measure_sqlite_floor(steps: int) -> dict[str, Any]:
    """The physical floor: one bare SQLite WAL commit with synchronous=FULL (one fsync)."""
    import sqlite3

    samples = []
    with tempfile.TemporaryDirectory() as tmp:
        conn = sqlite3.connect(f"{tmp}/floor.db", isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
        for i in range(steps):
            start = time.perf_counter()
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t (v) VALUES (?)", (str(i),))
            conn.execute("COMMIT")
            samples.append(time.perf_counter() - start)
        conn.close()
    return _percentiles(samples[steps // 10 :])


def measure_plain(steps: int) -> dict[str, Any]:
    return _percentiles(_plain_steps(steps))


def _claim_latency(client: Any, enqueue: Any, rounds: int = 40) -> list[float]:
    samples: list[float] = []
    for i in range(rounds):
        got: dict[str, float] = {}

        def claimer(i: int = i, got: dict[str, float] = got) -> None:
            claim = client.claim("bench-worker", [f"latency{i}"], wait_seconds=10, lease_seconds=30)
            got["at"] = time.perf_counter()
            assert claim is not None

        thread = threading.Thread(target=claimer)
        thread.start()
        time.sleep(0.05)  # the claim is now waiting in its long poll
        start = time.perf_counter()
        enqueue(f"latency{i}")
        thread.join()
        samples.append(got["at"] - start)
    return samples


def measure_claim_latency() -> dict[str, Any]:
    from agentspan.client import HttpClient
    from agentspan.runtime import Service, SQLiteStore

    with tempfile.TemporaryDirectory() as tmp:
        service = Service(SQLiteStore(Path(tmp) / "claims.db"))
        embedded = _claim_latency(service, lambda name: service.create_execution(name, {}))
        service.close()
        proc, url = _server(Path(tmp) / "server.db")
        try:
            with HttpClient(url) as waiting, HttpClient(url) as producer:
                remote = _claim_latency(waiting, lambda name: producer.create_execution(name, {}))
        finally:
            proc.terminate()
            proc.wait()
    return {
        "embedded": _percentiles(embedded),
        "http": _percentiles(remote),
    }


class _Crash(BaseException):
    """Stands for the process dying: unwinds the worker without recording anything."""


def _resume(client: Any, expire: Any, done: int) -> float:
    """Run a function until it dies at step ``done + 1``; a fresh worker resumes it: returns the
    seconds from the claim to the moment the function reaches that step again."""
    from agentspan import durable
    from agentspan.worker import Worker

    state = {"crash": True, "reached": 0.0}

    @durable.step
    def noop(i: int) -> int:
        return i

    @durable.function(name="resume_bench")
    def loop(n: int) -> int:
        for i in range(n):
            if i == done:
                state["reached"] = time.perf_counter()
                if state["crash"]:
                    raise _Crash()
            noop(i)
        return n

    execution = client.create_execution("resume_bench", {"n": done + 1})
    first = Worker(client, [loop], lease_seconds=1.0)
    try:
        first.run_once(wait_seconds=5)
    except _Crash:
        pass
    expire(first.worker_id)
    state["crash"] = False
    start = time.perf_counter()
    assert Worker(client, [loop]).run_once(wait_seconds=5)
    assert client.get_execution(execution.id).status.value == "completed"
    assert not [e for e in client.get_events(execution.id) if e.type == "divergence"]
    return state["reached"] - start


def measure_resume(done: int = 1000) -> dict[str, Any]:
    """Resuming an execution with ``done`` completed steps: claim, journal fetch, replay, to step done+1."""
    from agentspan.client import HttpClient
    from agentspan.runtime import Service, SQLiteStore

    with tempfile.TemporaryDirectory() as tmp:
        service = Service(SQLiteStore(Path(tmp) / "resume.db"))
        embedded = _resume(service, lambda worker_id: service.expire_leases([worker_id]), done)
        service.close()
        proc, url = _server(Path(tmp) / "server.db")
        try:
            with HttpClient(url) as client:
                # Over HTTP the dead worker's 1 s lease simply runs out before the second claim.
                remote = _resume(client, lambda worker_id: time.sleep(1.2), done)
        finally:
            proc.terminate()
            proc.wait()
    return {"embedded_ms": embedded * 1e3, "http_ms": remote * 1e3}


# --- peers ---------------------------------------------------------------------------------------
def measure_dbos(steps: int) -> dict[str, Any] | None:
    try:
        from dbos import DBOS
    except ImportError:
        return None
    samples: list[float] = []
    with tempfile.TemporaryDirectory() as tmp:
        DBOS(config={"name": "bench", "system_database_url": f"sqlite:///{tmp}/dbos.sqlite"})  # type: ignore[typeddict-item]

        @DBOS.step()
        def noop(i: int) -> int:
            return i

        totals: list[float] = []

        @DBOS.workflow()
        def loop(n: int) -> int:
            began = 0.0
            for i in range(n):
                if i == n // 10:  # the warm-up tenth is not measured
                    began = time.perf_counter()
                start = time.perf_counter()
                noop(i)
                samples.append(time.perf_counter() - start)
            totals.append(time.perf_counter() - began)
            return n

        DBOS.launch()
        loop(steps)
        DBOS.destroy()
    return _percentiles(samples[steps // 10 :], totals[0])


def measure_langgraph(steps: int, checkpointer: str) -> dict[str, Any] | None:
    try:
        from langgraph.graph import END, START, StateGraph
    except ImportError:
        return None
    from typing import TypedDict

    class State(TypedDict):
        n: int

    stamps: list[float] = []

    def inc(state: State) -> State:
        stamps.append(time.perf_counter())  # one superstep ends where the next node starts
        return {"n": state["n"] + 1}

    builder = StateGraph(State)
    builder.add_node("inc", inc)
    builder.add_edge(START, "inc")
    builder.add_conditional_edges("inc", lambda s: END if s["n"] >= steps else "inc")
    with tempfile.TemporaryDirectory() as tmp:
        saver: Any = None
        if checkpointer == "sqlite":
            import sqlite3

            from langgraph.checkpoint.sqlite import SqliteSaver

            saver = SqliteSaver(sqlite3.connect(f"{tmp}/lg.sqlite", check_same_thread=False))
        graph = builder.compile(checkpointer=saver)
        per_step: list[float] = []
        total = 0.0
        for run in range(3):
            stamps.clear()
            config = {"configurable": {"thread_id": f"t{run}"}, "recursion_limit": steps * 2 + 10}
            start = time.perf_counter()
            graph.invoke({"n": 0}, config)  # type: ignore[arg-type]
            total += time.perf_counter() - start  # with the checkpoint writes LangGraph does behind
            per_step.extend(b - a for a, b in zip(stamps, stamps[1:], strict=False))
    found = _percentiles(per_step)
    found["mean_ms"] = total / (3 * steps) * 1e3
    return found


MEASURES = {
    "plain": lambda a: measure_plain(a.steps),
    "sqlite_floor": lambda a: measure_sqlite_floor(a.steps),
    "embedded_full": lambda a: measure_embedded(a.steps, "full"),
    "embedded_normal": lambda a: measure_embedded(a.steps, "normal"),
    "http_full": lambda a: measure_http(a.steps),
    "claim_latency": lambda a: measure_claim_latency(),
    "resume_1000": lambda a: measure_resume(),
    "dbos_sqlite": lambda a: measure_dbos(min(a.steps, 1000)),
    "langgraph_plain": lambda a: measure_langgraph(min(a.steps, 1000), "none"),
    "langgraph_sqlite": lambda a: measure_langgraph(min(a.steps, 1000), "sqlite"),
}


def _run_isolated(name: str, args: argparse.Namespace) -> Any:
    out = subprocess.run(
        [sys.executable, str(HERE), "--only", name, "--steps", str(args.steps)],
        capture_output=True, text=True, check=False, env={**os.environ, "DBOS__CLOUD": "false"},
    )  # fmt: skip
    if out.returncode != 0:
        print(f"[{name} failed: {out.stderr.strip().splitlines()[-1:] or out.returncode}]", file=sys.stderr)
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def _median_of(results: list[Any], key: str = "median_ms") -> float | None:
    values = [r[key] for r in results if r]
    return statistics.median(values) if values else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3, help="fresh processes per measurement")
    parser.add_argument("--only", choices=sorted(MEASURES), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.only:
        print(json.dumps(MEASURES[args.only](args)))
        return

    rows: dict[str, list[Any]] = {name: [] for name in MEASURES}
    for _ in range(args.rounds):
        for name in MEASURES:
            rows[name].append(_run_isolated(name, args))

    def cell(name: str, key: str = "median_ms") -> float | None:
        return _median_of(rows[name], key)

    plain = cell("plain") or 0.0
    print(f"\nDurable step overhead around a no-op, {args.steps} steps, median of {args.rounds} fresh runs\n")
    print(
        "| what | median per step | mean per step (total / steps) | p99 per step | mean vs Agentspan embedded (FULL) |"
    )
    print("|---|---|---|---|---|")
    base = cell("embedded_full", "mean_ms")
    labels = [
        ("sqlite_floor", "floor: one bare SQLite WAL commit, synchronous=FULL (one fsync)"),
        ("embedded_full", "Agentspan embedded, SQLite FULL (durable commit, default)"),
        ("embedded_normal", "Agentspan embedded, SQLite NORMAL"),
        ("http_full", "Agentspan over HTTP on loopback, server SQLite FULL"),
        ("dbos_sqlite", "DBOS step, SQLite (its default)"),
        ("langgraph_sqlite", "LangGraph superstep, SqliteSaver (per superstep)"),
        ("langgraph_plain", "LangGraph superstep, no checkpointer (engine cost only)"),
    ]
    for name, label in labels:
        median, mean, p99 = cell(name), cell(name, "mean_ms"), cell(name, "p99_ms")
        if median is None or mean is None or p99 is None:
            print(f"| {label} | not installed | | | |")
            continue
        ratio = f"{mean / base:.1f}×" if base else "-"
        print(f"| {label} | {median - plain:.3f} ms | {mean - plain:.3f} ms | {p99 - plain:.3f} ms | {ratio} |")
    claims = [r for r in rows["claim_latency"] if r]
    resumes = [r for r in rows["resume_1000"] if r]
    print("\n| what | median | mean | p99 |")
    print("|---|---|---|---|")
    for transport in ("embedded", "http"):
        med, mean, p99 = (
            statistics.median(r[transport][key] for r in claims) if claims else float("nan")
            for key in ("median_ms", "mean_ms", "p99_ms")
        )
        print(f"| claim returns after enqueue ({transport}, long poll) | {med:.2f} ms | {mean:.2f} ms | {p99:.2f} ms |")
    for transport in ("embedded", "http"):
        values = [r[f"{transport}_ms"] for r in resumes]
        if values:
            print(
                f"| resume with 1,000 completed steps: claim to step 1,001 ({transport}) |"
                f" {statistics.median(values):.1f} ms | {statistics.fmean(values):.1f} ms | max {max(values):.1f} ms |"
            )


if __name__ == "__main__":
    main()

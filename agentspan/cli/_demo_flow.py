"""The durable function the demo runs: a research loop of tool calls, each with a side effect."""

from __future__ import annotations

import time

from .. import durable


@durable.step(kind="tool")
def search(query: str, log_path: str) -> str:
    """A tool call whose side effect (a line in a file) shows how often it really ran."""
    info = durable.current_step()
    key = info.idempotency_key if info else "-"
    with open(log_path, "a", encoding="utf-8") as log:
        log.write(f"{query}\t{key}\n")
    time.sleep(0.15)  # the work a real tool call does
    return f"results for {query}"


@durable.function
def research(topic: str, calls: int, log_path: str) -> dict[str, object]:
    """Make ``calls`` searches about ``topic`` and summarise them."""
    findings = [search(f"{topic} #{i}", log_path) for i in range(1, calls + 1)]
    return {"topic": topic, "searches": len(findings), "last": findings[-1]}


functions = [research]

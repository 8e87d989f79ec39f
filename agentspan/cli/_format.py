"""Plain-text rendering of executions and journals for the terminal."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from ..runtime import Execution, Step

__all__ = ["print_execution", "print_executions"]

_MARK = {"completed": "✓", "failed": "✗", "started": "…", "suspended": "⏸"}


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def print_executions(items: Sequence[Execution]) -> None:
    """One line per execution."""
    if not items:
        print("no executions")
        return
    print(f"{'id':32}  {'status':9}  {'name':24}  created")
    for e in items:
        print(f"{e.id:32}  {e.status.value:9}  {e.name[:24]:24}  {e.created_at:%Y-%m-%d %H:%M:%S}")


def print_execution(execution: Execution, journal: Sequence[Step]) -> None:
    """The execution's state and its journal as a tree (nested steps under their parent)."""
    print(f"execution {execution.id}  {execution.name}  {execution.status.value}")
    print(f"  input:  {_short(execution.input)}")
    if execution.output is not None:
        print(f"  output: {_short(execution.output)}")
    if execution.error is not None:
        print(f"  error:  {execution.error.type}: {execution.error.message}")
    children: dict[str | None, list[Step]] = defaultdict(list)
    for step in journal:
        children[step.parent].append(step)
    print(f"  journal: {len(journal)} step(s)")

    def walk(parent: str | None, depth: int) -> None:
        for step in children.get(parent, []):
            mark = _MARK.get(step.status.value, "?")
            note = " (in doubt)" if step.status.value == "started" else ""
            note += " [superseded]" if step.superseded else ""
            note += f" attempt {step.attempt}" if step.attempt > 1 else ""
            result = (
                f" → {_short(step.output, 40)}" if step.status.value == "completed"
                else f" ✗ {step.error.type}: {step.error.message}" if step.error else ""
            )  # fmt: skip
            print(f"  {'  ' * depth}{mark} {step.kind} {step.name}{note}{result}")
            walk(step.key, depth + 1)

    walk(None, 0)

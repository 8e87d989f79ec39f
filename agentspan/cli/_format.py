"""Rendering executions and journals for the terminal (rich)."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from ..runtime import Execution, Step, StepStatus

__all__ = ["print_execution", "print_executions"]

_STYLE = {"completed": "green", "failed": "red", "running": "yellow", "waiting": "cyan", "cancelled": "magenta"}
_MARK = {
    StepStatus.COMPLETED: "[green]✓[/]",
    StepStatus.FAILED: "[red]✗[/]",
    StepStatus.STARTED: "[yellow]…[/]",
    StepStatus.SUSPENDED: "[cyan]⏸[/]",
}


def _short(value: Any, width: int = 70) -> str:
    """One line of user data, cut to ``width`` and escaped (it may contain rich markup brackets)."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", " ")
    return escape(text if len(text) <= width else text[: width - 1] + "…")


def _status(value: str) -> str:
    style = _STYLE.get(value)
    return f"[{style}]{value}[/]" if style else value


def _console() -> Console:
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, 160)  # piped output: do not cut ids
    return console


def print_executions(items: Sequence[Execution]) -> None:
    """A table of executions, newest first."""
    console = _console()
    if not items:
        console.print("no executions")
        return
    table = Table(box=None, pad_edge=False)
    table.add_column("id", no_wrap=True, min_width=32)
    for column in ("status", "name", "created", "updated"):
        table.add_column(column, no_wrap=True)
    for e in items:
        table.add_row(
            e.id, _status(e.status.value), escape(e.name),
            f"{e.created_at:%Y-%m-%d %H:%M:%S}", f"{e.updated_at:%H:%M:%S}",
        )  # fmt: skip
    console.print(table)


def _label(step: Step) -> str:
    notes = []
    if step.status is StepStatus.STARTED:
        notes.append("[yellow]in doubt[/]")
    if step.attempt > 1:
        notes.append(f"attempt {step.attempt}")
    if step.superseded:
        notes.append("[dim]superseded[/]")
    if step.usage:
        notes.append(f"{step.usage.get('total_tokens', 0)} tokens")
    if step.status is StepStatus.COMPLETED:
        result = f" → {_short(_summary(step), 60)}"
    elif step.error is not None:
        result = f" [red]{escape(step.error.type.rsplit('.', 1)[-1])}: {_short(step.error.message, 60)}[/]"
    elif step.wait is not None:
        result = f" waiting for {_short(step.wait.signal or str(step.wait.wake_at))}"
    else:
        result = ""
    extra = f" ({', '.join(notes)})" if notes else ""
    return f"{_MARK.get(step.status, '?')} [bold]{escape(step.kind)}[/] {escape(step.name)}{extra}{result}"


def _summary(step: Step) -> Any:
    output = step.output
    if step.kind == "llm" and isinstance(output, dict):
        message = output.get("message") or {}
        calls = [c.get("name") for c in message.get("tool_calls") or []]
        return f"calls {', '.join(calls)}" if calls else message.get("content")
    if step.kind == "agent" and isinstance(output, dict):
        return output.get("output")
    return output


def print_execution(execution: Execution, journal: Sequence[Step]) -> None:
    """The execution's state and its journal as a tree (nested steps under their parent)."""
    console = _console()
    console.print(f"[bold]{escape(execution.name)}[/]  {execution.id}  {_status(execution.status.value)}")
    console.print(f"  input:  {_short(execution.input)}")
    if isinstance(execution.output, dict) and "output" in execution.output:
        console.print(f"  answer: {_short(execution.output['output'])}")
    elif execution.output is not None:
        console.print(f"  output: {_short(execution.output)}")
    if execution.error is not None:
        console.print(f"  [red]error:  {escape(execution.error.type)}: {_short(execution.error.message, 200)}[/]")
    children: dict[str | None, list[Step]] = defaultdict(list)
    for step in journal:
        children[step.parent].append(step)
    tree = Tree(f"journal: {len(journal)} steps")

    def grow(node: Tree, parent: str | None) -> None:
        for step in children.get(parent, []):
            grow(node.add(_label(step)), step.key)

    grow(tree, None)
    console.print(tree)

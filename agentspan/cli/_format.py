"""Rendering executions and journals for the terminal (rich)."""

from __future__ import annotations

import dataclasses
import json
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.tree import Tree

from ..runtime import Event, Execution, ExecutionStatus, Step, StepStatus
from ._common import command_name

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
    for column in ("status", "name", "framework", "created", "updated"):
        table.add_column(column, no_wrap=True)
    for e in items:
        table.add_row(
            e.id, _status(e.status.value), escape(e.name), e.framework or "-",
            f"{e.created_at:%Y-%m-%d %H:%M:%S}", f"{e.updated_at:%H:%M:%S}",
        )  # fmt: skip
    console.print(table)


@dataclasses.dataclass
class _Claim:
    """One claim of the execution by a worker (one epoch), from its ``execution.running`` event."""

    number: int
    epoch: int
    worker_id: str
    at: datetime
    ended: str = ""


def _claims(events: Sequence[Event]) -> list[_Claim]:
    """The execution's claims in order, each with how it ended (from the events that followed it)."""
    claims: list[_Claim] = []
    for event in events:
        if event.type == "execution.running":
            epoch = event.data.get("epoch")
            claims.append(
                _Claim(len(claims) + 1, epoch if isinstance(epoch, int) else 0, str(event.data.get("worker_id")),
                       event.created_at)
            )  # fmt: skip
        elif claims and not claims[-1].ended:
            ended = _ENDINGS.get(event.type)
            if ended:
                claims[-1].ended = ended
    return claims


_ENDINGS = {
    "lease.expired": "[red]its lease ran out[/] (the worker died or hung)",
    "execution.released": "handed back (the worker stopped)",
    "execution.waiting": "[cyan]suspended[/] (waiting)",
    "execution.completed": "[green]completed[/]",
    "execution.failed": "[red]failed[/]",
    "execution.cancelled": "[magenta]cancelled[/]",
}


def _label(step: Step, execution: Execution, claims: Sequence[_Claim]) -> str:
    notes = []
    if step.status is StepStatus.STARTED:
        if execution.status is ExecutionStatus.RUNNING and step.epoch == execution.epoch:
            notes.append("[yellow]running[/]")
        else:
            notes.append("[yellow]in doubt[/]: its process stopped inside it; the next attempt decides by its policy")
    if step.attempt > 1:
        notes.append(f"attempt {step.attempt}")
    if step.superseded:
        notes.append("[dim]superseded[/]")
    if execution.forked_from is not None and step.epoch == 0:
        notes.append("[dim]copied from the fork's source[/]")  # written at the fork, before any worker ran
    if step.usage:
        notes.append(f"{step.usage.get('total_tokens', 0)} tokens")
    if len(claims) > 1:
        notes.extend(_provenance(step, claims))
    if step.status is StepStatus.COMPLETED:
        result = f" → {_short(_summary(step), 60)}"
    elif step.error is not None:
        result = f" [red]{escape(step.error.type.rsplit('.', 1)[-1])}: {_short(step.error.message, 60)}[/]"
    elif step.wait is not None:
        result = f" waiting for {_waits_for(step, execution)}"
    else:
        result = ""
    extra = f" ({', '.join(notes)})" if notes else ""
    return f"{_MARK.get(step.status, '?')} [bold]{escape(step.kind)}[/] {escape(step.name)}{extra}{result}"


def _waits_for(step: Step, execution: Execution) -> str:
    """What a waiting step waits for, and the command that answers it."""
    details = step.input if isinstance(step.input, dict) else {}
    if step.kind == "approval" and details.get("tool"):
        arguments = details.get("arguments")
        shown = arguments if isinstance(arguments, str) else json.dumps(arguments, ensure_ascii=False)
        return f"a decision on {escape(str(details['tool']))}({_short(shown, 60)}) (agentspan approvals list)"
    if step.kind == "budget":
        return (
            f"a budget raise: {details.get('spent_tokens', '?')} tokens spent"
            f" (agentspan budget raise {execution.id} --tokens N)"
        )
    if step.kind in ("human", "interrupt"):
        return f"a person's answer on {_short(step.wait.signal or '')} (agentspan approvals list)" if step.wait else ""
    return _short(step.wait.signal or str(step.wait.wake_at)) if step.wait else ""


def _provenance(step: Step, claims: Sequence[_Claim]) -> list[str]:
    """Which claim ran the step, and which later claims replayed it from the journal."""
    ran = next((c for c in claims if c.epoch == step.epoch), None)
    notes = [f"ran in #{ran.number}"] if ran is not None else []
    if step.status in (StepStatus.COMPLETED, StepStatus.FAILED) and step.completed_at is not None:
        finished = step.completed_at
        replayed = [c.number for c in claims if c.epoch > step.epoch and c.at >= finished]
        if replayed:
            listed = ", ".join(f"#{n}" for n in replayed[:3]) + (f" +{len(replayed) - 3}" if len(replayed) > 3 else "")
            notes.append(f"[dim]replayed by {listed}[/]")
    return notes


def _summary(step: Step) -> Any:
    output = step.output
    if step.kind == "llm" and isinstance(output, dict):
        message = output.get("message") or {}
        calls = [c.get("name") for c in message.get("tool_calls") or []]
        return f"calls {', '.join(calls)}" if calls else message.get("content")
    if step.kind == "agent" and isinstance(output, dict):
        return output.get("output")
    if step.kind == "guardrail" and isinstance(output, dict):
        if output.get("passed"):
            return "passed"
        return f"failed: {output.get('message') or 'no message'}"
    return output


def _full(value: Any) -> str:
    return escape(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2, default=str))


def print_execution(
    execution: Execution, journal: Sequence[Step], *, events: Sequence[Event] = (), full: bool = False
) -> None:
    """The execution's state, its claims (which worker ran which attempt) and its journal as a tree
    (nested steps under their parent). ``full``: whole inputs, outputs and errors, not one line each."""
    console = _console()
    console.print(f"[bold]{escape(execution.name)}[/]  {execution.id}  {_status(execution.status.value)}")
    console.print(f"  input:  {_full(execution.input) if full else _short(execution.input)}")
    if execution.forked_from is not None:
        origin = execution.forked_from
        console.print(f"  forked: from {origin.execution_id} at step {escape(origin.step)}")
    if isinstance(execution.output, dict) and "output" in execution.output and not full:
        console.print(f"  answer: {_short(execution.output['output'])}")
    elif execution.output is not None:
        console.print(f"  output: {_full(execution.output) if full else _short(execution.output)}")
    if execution.error is not None:
        message = escape(execution.error.message) if full else _short(execution.error.message, 200)
        console.print(f"  [red]error:  {escape(execution.error.type)}: {message}[/]")
    if execution.status is ExecutionStatus.RUNNING and execution.lease_expires_at is not None:
        console.print(
            f"  lease:  worker {escape(str(execution.worker_id))} until {execution.lease_expires_at:%H:%M:%S}"
        )
    claims = _claims(events)
    replayed = _replayed_failure(execution, journal, claims)
    if replayed is not None:
        console.print(f"  [yellow]note:[/]   {replayed}")
    if len(claims) > 1 or (claims and full):
        console.print("  attempts (each claim by a worker):")
        for claim in claims:
            ended = claim.ended or ("running" if execution.status is ExecutionStatus.RUNNING else "")
            console.print(
                f"    #{claim.number} worker {escape(claim.worker_id)} at {claim.at:%H:%M:%S}"
                f"{' → ' + ended if ended else ''}"
            )
    children: dict[str | None, list[Step]] = defaultdict(list)
    for step in journal:
        children[step.parent].append(step)
    tree = Tree(f"journal: {len(journal)} steps")

    def grow(node: Tree, parent: str | None) -> None:
        for step in children.get(parent, []):
            branch = node.add(_label(step, execution, claims))
            if full:
                _details(branch, step)
            grow(branch, step.key)

    grow(tree, None)
    console.print(tree)


def _replayed_failure(execution: Execution, journal: Sequence[Step], claims: Sequence[_Claim]) -> str | None:
    """When a failed execution's failure was recorded by an earlier attempt and only replayed by the last."""
    if execution.status is not ExecutionStatus.FAILED or len(claims) < 2:
        return None
    failed = [s for s in journal if s.status is StepStatus.FAILED and not s.superseded]
    last = claims[-1]
    if not failed or any(s.epoch >= last.epoch for s in failed):
        return None
    step = failed[-1]
    ran = next((c.number for c in claims if c.epoch == step.epoch), None)
    return (
        f"this failure is the recorded result of {escape(step.kind)} {escape(step.name)} from attempt"
        f" #{ran if ran is not None else '?'}; attempt #{last.number} replayed it (a recorded failure is raised"
        f" again, not retried). To start fresh: {command_name()} executions retry {execution.id}"
    )


def _details(node: Tree, step: Step) -> None:
    node.add(f"[dim]key[/] {escape(step.key)}  [dim]idempotency key[/] {escape(step.idempotency_key)}")
    if step.input is not None:
        node.add(f"[dim]input[/] {_full(step.input)}")
    if step.output is not None:
        node.add(f"[dim]output[/] {_full(step.output)}")
    if step.error is not None:
        node.add(f"[red]error {escape(step.error.type)}: {escape(step.error.message)}[/]")

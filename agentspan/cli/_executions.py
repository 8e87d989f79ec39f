"""``agentspan executions list | show | follow | respond | cancel | retry | fork | delete``."""

from __future__ import annotations

import argparse
import sys

from ..client import Client
from ..runtime import ExecutionStatus, StepStatus
from ..runtime._human import HUMAN_PREFIX
from ._common import command_name, connect, fail
from ._follow import Follower
from ._format import print_execution, print_executions

__all__ = ["cmd_cancel", "cmd_delete", "cmd_follow", "cmd_fork", "cmd_list", "cmd_respond", "cmd_retry", "cmd_show"]

# Counting stops here: a listing says "20 of more than 10000" rather than reading a huge history.
_COUNT_LIMIT = 10_000


def _count(client: Client, args: argparse.Namespace) -> tuple[int, bool]:
    """How many executions match the filters (up to the limit), and whether there are more."""
    total, cursor = 0, None
    while True:
        page = client.list_executions(
            status=args.status, name=args.name, framework=args.framework, limit=1000, cursor=cursor
        )
        total += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return total, False
        if total >= _COUNT_LIMIT:
            return total, True


def cmd_list(args: argparse.Namespace) -> int:
    client = connect(args, reading=True)
    page = client.list_executions(
        status=args.status, name=args.name, framework=args.framework, limit=args.limit, cursor=args.cursor
    )
    print_executions(page.items)
    if page.next_cursor is None and args.cursor is None:
        if page.items:
            print(f"{len(page.items)} of {len(page.items)} executions")
        return 0
    total, more = _count(client, args)
    of = f"more than {total}" if more else str(total)
    print(f"{len(page.items)} of {of} executions", end="")
    if page.next_cursor is not None:
        filters = "".join(
            f" --{flag} {value}"
            for flag, value in (("status", args.status), ("name", args.name), ("framework", args.framework))
            if value
        )
        print(
            f"; next page: {command_name()} executions list{filters} --limit {args.limit} --cursor {page.next_cursor}"
        )
    else:
        print(" (last page)")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    client = connect(args, reading=True)
    execution = client.get_execution(args.execution_id)
    journal = client.get_journal(args.execution_id, include_superseded=args.history)
    events = client.get_events(args.execution_id, limit=10_000)
    print_execution(execution, journal, events=events, full=args.full)
    return 0


def cmd_follow(args: argparse.Namespace) -> int:
    client = connect(args, reading=True)
    return _follow(client, args.execution_id)


def _follow(client: Client, execution_id: str) -> int:
    execution = client.get_execution(execution_id)
    follower = Follower(client, execution.id, sys.stdout)
    follower.say(f"following execution {execution.id} of {execution.name} ({execution.status.value}); Ctrl-C stops")
    try:
        follower.replay()
        if not execution.status.is_terminal:
            follower.follow()
    except KeyboardInterrupt:
        follower.say(f"stopped following; execution {execution.id} goes on (follow it again with the same command)")
        return 130
    final = client.get_execution(execution.id)
    return 0 if final.status.value == "completed" else 1


def cmd_cancel(args: argparse.Namespace) -> int:
    execution = connect(args, reading=True).cancel_execution(args.execution_id)
    print(f"{execution.id} {execution.status.value}")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    """A fresh execution of the same name on the same input (the old one and its journal stay)."""
    client = connect(args, reading=True)
    old = client.get_execution(args.execution_id)
    if not old.status.is_terminal:
        print(
            f"agentspan: execution {old.id} is still {old.status.value}; it may yet finish. Cancel it first"
            f" (agentspan executions cancel {old.id}) to retry it",
            file=sys.stderr,
        )
        return 1
    new = client.create_execution(old.name, old.input)
    print(new.id)
    print(f"agentspan: retry of {old.id} ({old.status.value}): new execution {new.id} starts fresh", file=sys.stderr)
    return 0


def cmd_fork(args: argparse.Namespace) -> int:
    """A new execution that replays the journal up to ``--step`` and runs fresh from that step."""
    client = connect(args, reading=True)
    fork = client.fork_execution(args.execution_id, args.step, idempotency_key=args.idempotency_key)
    print(fork.id, flush=True)
    copied = len(client.get_journal(fork.id))
    print(
        f"agentspan: fork of {args.execution_id} from step {args.step}: new execution {fork.id} replays"
        f" {copied} recorded step(s) and runs fresh from there when a worker serves {fork.name}",
        file=sys.stderr,
    )
    return _follow(client, fork.id) if args.follow else 0


def cmd_delete(args: argparse.Namespace) -> int:
    client = connect(args, reading=True)
    client.delete_execution(args.execution_id)
    print(f"{args.execution_id} deleted")
    return 0


def cmd_respond(args: argparse.Namespace) -> int:
    """Answer the request for human feedback an execution waits on (a CrewAI task's ``human_input``, a
    flow's ``@human_feedback``): the text goes to the agent; an empty text accepts its draft."""
    client = connect(args, reading=True)
    execution = client.get_execution(args.execution_id)
    waiting = [
        step
        for step in client.get_journal(execution.id)
        if step.kind == "human" and step.status is StepStatus.SUSPENDED and isinstance(step.input, dict)
    ]
    if execution.status is not ExecutionStatus.WAITING or not waiting:
        fail(f"execution {execution.id} is {execution.status.value}, not waiting for human input: nothing to answer")
    signal = str(waiting[0].input.get("signal"))
    if args.signal is not None:
        if args.signal not in {str(step.input.get("signal")) for step in waiting}:
            fail(f"execution {execution.id} does not wait for {args.signal!r} (it waits for {signal!r})")
        signal = args.signal
    assert signal.startswith(HUMAN_PREFIX)
    updated = client.send_signal(execution.id, signal, args.feedback)
    what = "accepted the draft" if not args.feedback.strip() else "sent the feedback"
    print(f"{updated.id} {updated.status.value}")
    print(f"agentspan: {what} ({signal}); the run goes on when a worker serves it", file=sys.stderr)
    return 0

"""``agentspan executions list | show | follow | cancel | retry | delete``."""

from __future__ import annotations

import argparse
import sys

from ..client import Client
from ._common import command_name, connect
from ._follow import Follower
from ._format import print_execution, print_executions

__all__ = ["cmd_cancel", "cmd_delete", "cmd_follow", "cmd_list", "cmd_retry", "cmd_show"]

# Counting stops here: a listing says "20 of more than 10000" rather than reading a huge history.
_COUNT_LIMIT = 10_000


def _count(client: Client, args: argparse.Namespace) -> tuple[int, bool]:
    """How many executions match the filters (up to the limit), and whether there are more."""
    total, cursor = 0, None
    while True:
        page = client.list_executions(status=args.status, name=args.name, limit=1000, cursor=cursor)
        total += len(page.items)
        cursor = page.next_cursor
        if cursor is None:
            return total, False
        if total >= _COUNT_LIMIT:
            return total, True


def cmd_list(args: argparse.Namespace) -> int:
    client = connect(args, reading=True)
    page = client.list_executions(status=args.status, name=args.name, limit=args.limit, cursor=args.cursor)
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
            f" --{flag} {value}" for flag, value in (("status", args.status), ("name", args.name)) if value
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
    execution = client.get_execution(args.execution_id)
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


def cmd_delete(args: argparse.Namespace) -> int:
    client = connect(args, reading=True)
    client.delete_execution(args.execution_id)
    print(f"{args.execution_id} deleted")
    return 0

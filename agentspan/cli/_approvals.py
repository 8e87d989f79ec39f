"""``agentspan approvals list | approve | reject | edit | respond``: the inbox of every wait for a person."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..runtime import InboxDecision, InboxItem, InboxType
from ..runtime._inbox import FRAMEWORKS
from ._common import command_name, connect, fail

__all__ = ["add_approvals_parser"]


def _short(value: Any, width: int = 50) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    text = text.replace("\n", " ")
    return escape(text if len(text) <= width else text[: width - 1] + "…")


def _age(item: InboxItem) -> str:
    seconds = max(int(time.time() - item.created_at.timestamp()), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _print_items(items: Sequence[InboxItem]) -> None:
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console.width = max(console.width, 160)  # piped output: do not cut ids
    if not items:
        console.print("nothing waits for a decision")
        return
    table = Table(box=None, pad_edge=False)
    for column in ("id", "agent", "framework", "type", "tool or question", "arguments", "age"):
        table.add_column(column, no_wrap=column != "tool or question")
    for item in items:
        asked = item.tool if item.type is InboxType.TOOL_APPROVAL else item.question
        table.add_row(
            item.id, escape(item.agent), item.framework, item.type.value, _short(asked),
            _short(item.arguments, 40), _age(item),
        )  # fmt: skip
    console.print(table)


def cmd_list(args: argparse.Namespace) -> int:
    page = connect(args, reading=True).list_approvals(
        execution_id=args.execution, agent=args.agent, framework=args.framework, limit=args.limit, cursor=args.cursor
    )
    if args.json:
        print(page.model_dump_json())
        return 0
    _print_items(page.items)
    if page.next_cursor is not None:
        filters = "".join(
            f" --{flag} {value}"
            for flag, value in (("execution", args.execution), ("agent", args.agent), ("framework", args.framework))
            if value
        )
        print(f"next page: {command_name()} approvals list{filters} --limit {args.limit} --cursor {page.next_cursor}")
    return 0


def _decided(item: InboxItem, done: str) -> int:
    print(f"{item.id} {done}")
    print(f"agentspan: execution {item.execution_id} goes on when a worker serves it ({item.signal})", file=sys.stderr)
    return 0


def _decide(args: argparse.Namespace, decision: InboxDecision, done: str) -> int:
    return _decided(connect(args, reading=True).decide_approval(args.approval_id, decision), done)


def cmd_approve(args: argparse.Namespace) -> int:
    return _decide(args, InboxDecision(action="approve"), "approved")


def cmd_reject(args: argparse.Namespace) -> int:
    if not args.reason.strip():
        fail("--reason must say why: the model (or the agent asking for feedback) reads it")
    return _decide(args, InboxDecision(action="reject", reason=args.reason), "rejected")


def cmd_edit(args: argparse.Namespace) -> int:
    try:
        arguments = json.loads(args.arguments)
    except json.JSONDecodeError as exc:
        fail(f"--arguments is not JSON: {exc}")
    if not isinstance(arguments, dict):
        fail("--arguments must be a JSON object of the tool's arguments, e.g. '{\"amount\": 5}'")
    return _decide(args, InboxDecision(action="approve", arguments=arguments), "approved with edited arguments")


def cmd_respond(args: argparse.Namespace) -> int:
    client = connect(args, reading=True)
    item = client.get_approval(args.approval_id)
    value: Any = args.value
    if item.type is InboxType.INTERRUPT:  # an interrupt's answer is JSON; a bare word is a string
        try:
            value = json.loads(args.value)
        except json.JSONDecodeError:
            value = args.value
    return _decided(client.decide_approval(item.id, InboxDecision(action="respond", value=value)), "answered")


def add_approvals_parser(sub: Any, target: Any) -> None:
    """Add ``approvals`` and its actions to the CLI's subcommands; ``target`` adds --server/--db."""
    ap = sub.add_parser(
        "approvals", help="the inbox of every wait for a person: list, approve, reject, edit, respond"
    ).add_subparsers(dest="action", required=True)
    p = ap.add_parser("list", help="waits for a decision across executions, oldest first")
    p.add_argument("--execution", help="only this execution's")
    p.add_argument("--agent", help="only this agent's")
    p.add_argument("--framework", choices=FRAMEWORKS, help="only this framework's")
    p.add_argument("--limit", type=int, default=100, help="items per page (default 100)")
    p.add_argument("--cursor", help="the next page, as printed under the previous one")
    p.add_argument("--json", action="store_true", help="print the page as JSON")
    target(p)
    p.set_defaults(func=cmd_list)
    p = ap.add_parser("approve", help="approve: the tool call runs, the draft is accepted")
    p.add_argument("approval_id")
    target(p)
    p.set_defaults(func=cmd_approve)
    p = ap.add_parser("reject", help="reject with a reason (the model reads it as the tool's result)")
    p.add_argument("approval_id")
    p.add_argument("--reason", required=True, help="why; the model (or the agent) reads it")
    target(p)
    p.set_defaults(func=cmd_reject)
    p = ap.add_parser("edit", help="approve a tool call with edited arguments")
    p.add_argument("approval_id")
    p.add_argument("--arguments", required=True, help="the arguments to run it with, a JSON object: '{\"amount\": 5}'")
    target(p)
    p.set_defaults(func=cmd_edit)
    p = ap.add_parser("respond", help="answer human input (the feedback text) or an interrupt (JSON, or a word)")
    p.add_argument("approval_id")
    p.add_argument("value", help="the feedback text, or an interrupt's answer as JSON ('yes' without quotes is text)")
    target(p)
    p.set_defaults(func=cmd_respond)

"""``agentspan budget show | raise``: an execution's token and cost budget."""

from __future__ import annotations

import argparse
import sys

from ..runtime._budget import effective_budget, spend_of
from ._common import connect, fail

__all__ = ["add_budget_commands", "cmd_budget_raise", "cmd_budget_show"]


def cmd_budget_show(args: argparse.Namespace) -> int:
    """Print the budget's limits (with the raises), what the model calls spent, and what remains."""
    client = connect(args, reading=True)
    execution = client.get_execution(args.execution_id)
    journal = client.get_journal(execution.id)
    spend = spend_of(journal, execution.budget)
    cost = f"${spend.cost_usd:.6f}" + (f" ({spend.cost_note})" if spend.cost_note else "")
    print(f"execution  {execution.id} ({execution.status.value})")
    if execution.budget is None:
        print("budget     none")
        print(f"spent      {spend.tokens} tokens in {spend.calls} model calls, {cost}")
        return 0
    limit = effective_budget(execution.budget, journal)
    waiting = execution.wait is not None and (execution.wait.signal or "").startswith("budget:")
    print(f"budget     on exhausted: {limit.on_exhausted}" + ("; waiting for a raise" if waiting else ""))
    print(f"spent      {spend.tokens} tokens in {spend.calls} model calls, {cost}")
    if limit.max_tokens is not None:
        print(f"tokens     {spend.tokens} of {limit.max_tokens}, {max(limit.max_tokens - spend.tokens, 0)} left")
    if limit.max_cost_usd is not None:
        left = max(limit.max_cost_usd - spend.cost_usd, 0.0)
        print(f"cost       ${spend.cost_usd:.6f} of ${limit.max_cost_usd:.6f}, ${left:.6f} left")
    return 0


def cmd_budget_raise(args: argparse.Namespace) -> int:
    """Raise the budget of an execution waiting on it; it goes on when a worker serves it."""
    if args.tokens is None and args.cost_usd is None:
        fail("say how much to raise the budget by: --tokens N and/or --cost-usd X")
    client = connect(args, reading=True)
    updated = client.raise_budget(args.execution_id, tokens=args.tokens, cost_usd=args.cost_usd)
    print(f"{updated.id} {updated.status.value}")
    print("agentspan: raised the budget; the run goes on when a worker serves it", file=sys.stderr)
    return 0


def add_budget_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser], target: object) -> None:
    """Add ``budget show`` and ``budget raise`` (``target`` adds --server and --db to a parser)."""
    assert callable(target)
    budget = sub.add_parser("budget", help="an execution's token and cost budget: show, raise").add_subparsers(
        dest="budget_command", required=True
    )
    p = budget.add_parser("show", help="the limits, what the model calls spent, what remains")
    p.add_argument("execution_id")
    target(p)
    p.set_defaults(func=cmd_budget_show)
    p = budget.add_parser("raise", help="raise the budget of an execution waiting on it")
    p.add_argument("execution_id")
    p.add_argument("--tokens", type=int, help="tokens to add to max_tokens")
    p.add_argument("--cost-usd", type=float, help="USD to add to max_cost_usd")
    target(p)
    p.set_defaults(func=cmd_budget_raise)

"""``agentspan``: the command line (server, worker, executions, approvals, signals, budgets, demo)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sqlite3
import sys
from collections.abc import Callable, Sequence
from typing import Any

from .. import __version__
from ..errors import AgentspanError, InvalidInputError
from ._approvals import add_approvals_parser
from ._budget import add_budget_commands
from ._common import UsageError, connect, fail, load_functions
from ._executions import cmd_cancel, cmd_delete, cmd_follow, cmd_fork, cmd_list, cmd_respond, cmd_retry, cmd_show
from ._run import cmd_run

__all__ = ["main"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6767
_LOG_LEVELS = ("debug", "info", "warning", "error")
_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number", bool: "a boolean",
               type(None): "null"}  # fmt: skip


def cmd_server(args: argparse.Namespace) -> int:
    from ..durable import default_db_path
    from ..runtime import Service, SQLiteStore
    from ..runtime.server import run_server

    db = args.db or default_db_path()
    from ..durable._runtime import default_synchronous

    # A write waits at most 5 s for another process's lock on the file, then is answered 503 (and
    # retried by the client), well within a client's 30 s timeout.
    store = SQLiteStore(db, synchronous=args.synchronous or default_synchronous(), busy_timeout=5.0)
    service = Service(store)
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(
        f"agentspan server on http://{host}:{args.port}/api (database {db}); web UI at http://{host}:{args.port}/",
        flush=True,
    )
    run_server(
        service,
        host=args.host,
        port=args.port,
        auth_token=os.environ.get("AGENTSPAN_AUTH_TOKEN") or None,
        log_level=args.log_level or "warning",
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from ..worker import Worker

    functions: list[Callable[..., Any]] = []
    for target in args.targets:
        functions += load_functions(target)
    if args.log_level is None:  # by default the worker says what it claims, resumes and finishes
        logging.getLogger("agentspan.worker").setLevel(logging.INFO)
    client = connect(args, interactive=False)
    worker = Worker(
        client,
        functions,
        worker_id=args.worker_id,
        lease_seconds=args.lease_seconds,
        poll_seconds=args.poll_seconds,
    )
    print(f"agentspan worker {worker.worker_id} serving {', '.join(worker.names)}", flush=True)
    try:
        count = worker.run(max_executions=args.max_executions, handle_signals=True)
    finally:
        client.close()
    print(f"agentspan worker {worker.worker_id} stopped after {count} execution(s)", flush=True)
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    try:
        arguments = json.loads(args.input)
    except json.JSONDecodeError as exc:
        fail(f"--input is not JSON: {exc}")
    if not isinstance(arguments, dict):
        kind = _JSON_KINDS.get(type(arguments), type(arguments).__name__)
        fail(f'--input must be a JSON object of arguments, e.g. \'{{"topic": "x"}}\', not {kind}')
    client = connect(args)
    status = client.agent_status(args.name)
    execution = client.create_execution(args.name, arguments, idempotency_key=args.idempotency_key)
    print(execution.id)
    if not status.known:
        print(
            f"agentspan: note: no agent or function named {args.name!r} is deployed and no worker serves it now;"
            f" it stays queued until one does (agentspan worker module:attribute)",
            file=sys.stderr,
        )
    return 0


def cmd_signal(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        fail(f"--payload is not JSON: {exc}")
    execution = connect(args, reading=True).send_signal(args.execution_id, args.name, payload)
    print(f"{execution.id} {execution.status.value}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(calls=args.calls, crash_after=args.crash_after, model=args.model)


def cmd_fake_openai(args: argparse.Namespace) -> int:
    from ..testing.fake_openai import serve

    return serve(args)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentspan", description="Durable execution for AI agents.")
    parser.add_argument("--version", action="version", version=f"agentspan {__version__}")
    parser.add_argument(
        "--log-level", type=str.lower, choices=_LOG_LEVELS, default=None,
        help="debug, info, warning (the default; the worker command logs its executions at info), error",
    )  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)

    def target(p: argparse.ArgumentParser) -> None:
        p.add_argument("--server", help="server API URL (default: $AGENTSPAN_SERVER_URL, else the embedded database)")
        p.add_argument("--db", help="SQLite file of the embedded runtime (default: $AGENTSPAN_DB or ~/.agentspan)")

    p = sub.add_parser("server", help="run the runtime server (HTTP API)")
    p.add_argument("--host", default=DEFAULT_HOST, help=f"address to listen on (default {DEFAULT_HOST})")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--db", help="SQLite file (default: $AGENTSPAN_DB or ~/.agentspan/agentspan.db)")
    p.add_argument("--synchronous", choices=["full", "normal"], default=None,
                   help="full: fsync every commit (default, or $AGENTSPAN_SYNCHRONOUS);"
                        " normal: faster, survives process crashes only")  # fmt: skip
    p.set_defaults(func=cmd_server)

    p = sub.add_parser("worker", help="run agents or durable functions from module:attribute targets")
    p.add_argument("targets", nargs="+", help="module:attribute naming an Agent, a durable function, or a list")
    target(p)
    p.add_argument("--worker-id", help="worker id (default: host:pid:random)")
    p.add_argument("--lease-seconds", type=float, default=30.0, help="lease length (default 30)")
    p.add_argument("--poll-seconds", type=float, default=10.0, help="long-poll length (default 10)")
    p.add_argument("--max-executions", type=int, help="exit after this many executions")
    p.set_defaults(func=cmd_worker)

    p = sub.add_parser("start", help="queue an execution by name")
    p.add_argument("name")
    p.add_argument("--input", default="{}", help="JSON object of arguments (default {})")
    p.add_argument("--idempotency-key", help="the same key returns the same execution")
    target(p)
    p.set_defaults(func=cmd_start)

    p = sub.add_parser("run", help="run an agent (module:attribute, or a deployed agent's name) and print the result")
    p.add_argument(
        "target",
        help="module:attribute naming an Agent (a graph, an SDK agent, a crew, a flow), or the name of a deployed agent",
    )
    p.add_argument("prompt", nargs="?", help="the prompt (an agent, a graph, an SDK agent)")
    p.add_argument(
        "--inputs", help='a JSON object of placeholder values (a CrewAI crew or flow), e.g. \'{"topic": "AI"}\''
    )
    p.add_argument("--idempotency-key", help="the same key returns (and resumes) the same run")
    p.add_argument("--timeout", type=float, help="seconds to wait for the result (the run goes on after)")
    target(p)
    p.set_defaults(func=cmd_run)

    ex = sub.add_parser(
        "executions", help="list, show, follow, answer, cancel, retry, fork and delete executions"
    ).add_subparsers(dest="action", required=True)
    p = ex.add_parser("list", help="newest executions first")
    p.add_argument("--status", help="queued, running, waiting, completed, failed or cancelled")
    p.add_argument("--name")
    p.add_argument("--framework", help="native, langgraph, openai_agents, crewai or google_adk")
    p.add_argument("--limit", type=int, default=20, help="executions per page (default 20)")
    p.add_argument("--cursor", help="the next page, as printed under the previous one")
    target(p)
    p.set_defaults(func=cmd_list)
    p = ex.add_parser("show", help="an execution, its attempts and its journal")
    p.add_argument("execution_id")
    p.add_argument("--history", action="store_true", help="include steps superseded by a divergence")
    p.add_argument("--full", action="store_true", help="whole inputs, outputs, errors and keys of every step")
    target(p)
    p.set_defaults(func=cmd_show)
    for command, help_text, func in (
        ("follow", "print an execution's steps live until it finishes", cmd_follow),
        ("cancel", "cancel an execution", cmd_cancel),
        ("retry", "start a fresh execution with the same name and input (prints its id)", cmd_retry),
        ("delete", "delete a finished or waiting execution with its journal and events", cmd_delete),
    ):
        p = ex.add_parser(command, help=help_text)
        p.add_argument("execution_id")
        target(p)
        p.set_defaults(func=func)

    p = ex.add_parser("fork", help="start a new execution that replays the journal up to a step and runs fresh from it")
    p.add_argument("execution_id")
    p.add_argument("--step", required=True, help="the key of the step to run fresh from (see executions show --full)")
    p.add_argument("--idempotency-key", help="the same key returns the same fork")
    p.add_argument("--follow", action="store_true", help="then print the fork's steps live until it finishes")
    target(p)
    p.set_defaults(func=cmd_fork)

    p = ex.add_parser("respond", help="answer the human input an execution waits for (empty text accepts)")
    p.add_argument("execution_id")
    p.add_argument("feedback", nargs="?", default="", help="the feedback for the agent (default: empty, accept)")
    p.add_argument("--signal", help="which request, when several wait (human:<id>, see executions show)")
    target(p)
    p.set_defaults(func=cmd_respond)

    add_approvals_parser(sub, target)

    p = sub.add_parser("signal", help="deliver a signal (approval, reply) to an execution")
    p.add_argument("execution_id")
    p.add_argument("name")
    p.add_argument("--payload", default="null", help="JSON payload (default null)")
    target(p)
    p.set_defaults(func=cmd_signal)

    add_budget_commands(sub, target)

    p = sub.add_parser("demo", help="an agent run whose worker is killed with SIGKILL, and resumed (offline)")
    p.add_argument("--calls", type=int, default=20, help="tool calls the agent makes (default 20)")
    p.add_argument("--crash-after", type=int, default=18, help="kill the worker after this tool call (default 18)")
    p.add_argument("--model", help="a real model instead of the offline fake, e.g. openai/gpt-4o-mini")
    p.set_defaults(func=cmd_demo)

    from ..testing.fake_openai import add_arguments

    p = sub.add_parser("fake-openai", help="a fake OpenAI-compatible server answering from a reply file (offline)")
    add_arguments(p)
    p.set_defaults(func=cmd_fake_openai)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentspan`` command."""
    args = _parser().parse_args(argv)
    level = (args.log_level or "warning").upper()
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        result: int = args.func(args)
        return result
    except UsageError as exc:
        print(f"agentspan: {exc}", file=sys.stderr)
        return 2
    except InvalidInputError as exc:  # a bad value on the command line (a status, a limit)
        print(f"agentspan: {exc.message}", file=sys.stderr)
        return 2
    except AgentspanError as exc:
        print(f"agentspan: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("agentspan: interrupted", file=sys.stderr)
        return 130
    except (OSError, sqlite3.Error) as exc:  # an unusable path or database, said in one line
        print(f"agentspan: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the output was piped into a command that stopped reading (head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

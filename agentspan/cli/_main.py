"""``agentspan``: the command line (server, worker, executions, signals, demo)."""

from __future__ import annotations

import argparse
import importlib
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..client import Client
from ..errors import AgentspanError
from ._format import print_execution, print_executions

__all__ = ["main"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 6767


def _connect(args: argparse.Namespace) -> Client:
    """The server named by --server or AGENTSPAN_SERVER_URL, else the embedded database."""
    url = getattr(args, "server", None) or os.environ.get("AGENTSPAN_SERVER_URL")
    if url:
        from ..client import HttpClient

        return HttpClient(url)
    from ..durable import default_db_path
    from ..runtime import Service, SQLiteStore

    return Service(SQLiteStore(getattr(args, "db", None) or default_db_path()))


def _load(target: str) -> list[Callable[..., Any]]:
    """``module:attr`` → the durable functions it names (a function, or a list of them)."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"agentspan: {target!r} is not module:attribute (e.g. myapp.flows:checkout)")
    sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"agentspan: cannot import {module_name!r}: {exc}") from None
    try:
        found = getattr(module, attr)
    except AttributeError:
        raise SystemExit(f"agentspan: module {module_name!r} has no attribute {attr!r}") from None
    items = list(found) if isinstance(found, list | tuple) else [found]
    return [_as_function(item) for item in items]


def _as_function(item: Any) -> Callable[..., Any]:
    """Agents, compiled graphs and SDK agents become the durable function their worker runs; durable functions stay."""
    from ..agents import Agent
    from ..agents._runtime import is_graph, is_openai_agent

    # Compiled LangGraph graphs and OpenAI Agents SDK agents are served under their name.
    if isinstance(item, Agent) or is_graph(item) or is_openai_agent(item):
        from ..agents._runtime import durable_function

        return durable_function(item)
    return item  # type: ignore[no-any-return]


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
    print(f"agentspan server on http://{args.host}:{args.port}/api (database {db})", flush=True)
    run_server(
        service,
        host=args.host,
        port=args.port,
        auth_token=os.environ.get("AGENTSPAN_AUTH_TOKEN") or None,
        log_level=args.log_level,
    )
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from ..worker import Worker

    functions: list[Callable[..., Any]] = []
    for target in args.targets:
        functions += _load(target)
    client = _connect(args)
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
    client = _connect(args)
    try:
        execution = client.create_execution(args.name, json.loads(args.input), idempotency_key=args.idempotency_key)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"agentspan: --input is not JSON: {exc}") from None
    print(execution.id)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from ..agents import Agent, AgentRuntime
    from ..agents._runtime import is_graph, is_openai_agent

    url = args.server or os.environ.get("AGENTSPAN_SERVER_URL")
    with AgentRuntime(url, db=args.db, serve_http=False) as runtime:
        if ":" in args.target:
            module_name, _, attr = args.target.partition(":")
            sys.path.insert(0, os.getcwd())
            agent = getattr(importlib.import_module(module_name), attr)
            prompt: Any = args.prompt
            if is_graph(agent):  # a compiled LangGraph graph: the prompt is the user message
                prompt = {"messages": [("user", args.prompt)]}
            elif not isinstance(agent, Agent) and not is_openai_agent(agent):
                raise SystemExit(
                    f"agentspan: {args.target} is neither an Agent, a compiled LangGraph graph nor an OpenAI"
                    " Agents SDK Agent"
                )
            result = runtime.run(agent, prompt, idempotency_key=args.idempotency_key, timeout=args.timeout)
        else:  # a deployed agent, run by whichever worker serves it
            result = runtime.run(args.target, args.prompt, idempotency_key=args.idempotency_key, timeout=args.timeout)
    result.print_result()
    return 0 if result.is_success else 1


def cmd_list(args: argparse.Namespace) -> int:
    client = _connect(args)
    page = client.list_executions(status=args.status, name=args.name, limit=args.limit)
    print_executions(page.items)
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    client = _connect(args)
    execution = client.get_execution(args.execution_id)
    journal = client.get_journal(args.execution_id, include_superseded=args.history)
    print_execution(execution, journal)
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    execution = _connect(args).cancel_execution(args.execution_id)
    print(f"{execution.id} {execution.status.value}")
    return 0


def cmd_signal(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"agentspan: --payload is not JSON: {exc}") from None
    execution = _connect(args).send_signal(args.execution_id, args.name, payload)
    print(f"{execution.id} {execution.status.value}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(calls=args.calls, crash_after=args.crash_after, model=args.model)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agentspan", description="Durable execution for AI agents.")
    parser.add_argument("--log-level", default="warning", help="debug, info, warning (default), error")
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
    p.add_argument("target", help="module:attribute naming an Agent, or the name of a deployed agent")
    p.add_argument("prompt")
    p.add_argument("--idempotency-key", help="the same key returns (and resumes) the same run")
    p.add_argument("--timeout", type=float, help="seconds to wait for the result")
    target(p)
    p.set_defaults(func=cmd_run)

    ex = sub.add_parser("executions", help="list, show and cancel executions").add_subparsers(
        dest="action", required=True
    )
    p = ex.add_parser("list", help="newest executions first")
    p.add_argument("--status")
    p.add_argument("--name")
    p.add_argument("--limit", type=int, default=20)
    target(p)
    p.set_defaults(func=cmd_list)
    p = ex.add_parser("show", help="an execution and its journal")
    p.add_argument("execution_id")
    p.add_argument("--history", action="store_true", help="include steps superseded by a divergence")
    target(p)
    p.set_defaults(func=cmd_show)
    p = ex.add_parser("cancel", help="cancel an execution")
    p.add_argument("execution_id")
    target(p)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("signal", help="deliver a signal (approval, reply) to an execution")
    p.add_argument("execution_id")
    p.add_argument("name")
    p.add_argument("--payload", default="null", help="JSON payload (default null)")
    target(p)
    p.set_defaults(func=cmd_signal)

    p = sub.add_parser("demo", help="an agent run whose worker is killed with SIGKILL, and resumed (offline)")
    p.add_argument("--calls", type=int, default=20, help="tool calls the agent makes (default 20)")
    p.add_argument("--crash-after", type=int, default=18, help="kill the worker after this tool call (default 18)")
    p.add_argument("--model", help="a real model instead of the offline fake, e.g. openai/gpt-4o-mini")
    p.set_defaults(func=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``agentspan`` command."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
    try:
        result: int = args.func(args)
        return result
    except AgentspanError as exc:
        print(f"agentspan: {exc.message}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # the output was piped into a command that stopped reading (head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0

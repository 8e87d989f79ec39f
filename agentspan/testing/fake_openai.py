"""``python -m agentspan.testing.fake_openai``: the fake OpenAI-compatible server, from a shell.

Serves :class:`~agentspan.testing.FakeOpenAIServer` on a chosen loopback port with replies read from a
JSON file, and prints the ``export OPENAI_BASE_URL=...`` line to paste into other terminals. The same
command is ``agentspan fake-openai``.

The reply file is a JSON list, one entry per model turn:

- ``"text"``: a final answer;
- ``[["tool_name", {"arg": "value"}], ...]``: one assistant message calling those tools;
- ``{"error": 429, "message": "slow down", "retry_after": 1}``: an error answered once before the
  next reply (not a turn).

Or, instead of a file, ``--research N --tool NAME``: N turns that each call the tool once, then an
answer.
"""

# ruff: noqa: T201 - a command: printing to the terminal is its job

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ._fake_openai import FakeOpenAIServer, ScriptedError
from ._scripted import ScriptedReply

__all__ = ["add_arguments", "main", "read_script", "serve"]


class ScriptFileError(ValueError):
    """The reply file cannot be read as a script; the message says where and how to fix it."""


def read_script(path: Path) -> list[ScriptedReply | ScriptedError]:
    """The script in the JSON reply file ``path`` (see the module docstring for its form)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ScriptFileError(f"no reply file {str(path)!r}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptFileError(f"cannot read the reply file {str(path)!r}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ScriptFileError(f"the reply file {str(path)!r} is not JSON: {exc}") from None
    if not isinstance(data, list) or not data:
        raise ScriptFileError(f"the reply file {str(path)!r} must hold a non-empty JSON list of replies")
    return [_entry(position, entry) for position, entry in enumerate(data)]


def _entry(position: int, entry: Any) -> ScriptedReply | ScriptedError:
    where = f"reply {position}"
    if isinstance(entry, str):
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("error"), int):
        retry_after = entry.get("retry_after")
        if retry_after is not None and not isinstance(retry_after, int | float):
            raise ScriptFileError(f"{where}: retry_after must be a number of seconds")
        return ScriptedError(entry["error"], str(entry.get("message", "scripted error")), retry_after)
    if isinstance(entry, list) and entry:
        calls: list[tuple[str, dict[str, Any]]] = []
        for call in entry:
            if not (
                isinstance(call, list) and len(call) == 2 and isinstance(call[0], str) and isinstance(call[1], dict)
            ):
                raise ScriptFileError(f'{where}: a tool call is ["tool_name", {{arguments}}], not {json.dumps(call)}')
            calls.append((call[0], call[1]))
        return calls
    raise ScriptFileError(
        f'{where}: expected a text answer, a list of ["tool_name", {{arguments}}] calls or'
        f' {{"error": STATUS, "message": "..."}}, not {json.dumps(entry)}'
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command's options (shared by ``agentspan fake-openai``)."""
    parser.add_argument("--port", type=int, default=8765, help="loopback port to listen on (default 8765; 0: any)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--script", type=Path, help="JSON file of replies, one per model turn")
    source.add_argument("--research", type=int, metavar="N", help="N turns calling --tool once each, then --answer")
    parser.add_argument("--tool", default="search_web", help="the tool --research calls (default search_web)")
    parser.add_argument("--answer", default="Done.", help="the final answer of --research (default 'Done.')")
    parser.add_argument(
        "--in-order", action="store_true", help="answer replies in order instead of by the conversation's turn"
    )


def serve(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM; returns the exit code (2 for a bad reply file or a taken port)."""
    try:
        if args.script is not None:
            script = read_script(args.script)
        else:
            if args.research < 0:
                raise ScriptFileError("--research takes a number of tool-calling turns, 0 or more")
            script = list(
                FakeOpenAIServer.research_script(
                    args.research, args.tool, lambda i: {"query": f"query {i + 1}"}, answer=args.answer
                )
            )
    except ScriptFileError as exc:
        print(f"fake-openai: {exc}", file=sys.stderr)
        return 2
    if not 0 <= args.port <= 65535:
        print(f"fake-openai: --port must be between 0 and 65535, not {args.port}", file=sys.stderr)
        return 2
    fake = FakeOpenAIServer(script, by_turn=not args.in_order, port=args.port)
    try:
        fake.start()
    except OSError as exc:
        print(
            f"fake-openai: cannot listen on 127.0.0.1:{args.port}: {exc.strerror}; choose another --port",
            file=sys.stderr,
        )
        return 2
    stop = threading.Event()
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        turns = sum(1 for entry in script if not isinstance(entry, ScriptedError))
        print(f"fake OpenAI-compatible server on {fake.base_url} ({turns} scripted turns); in other shells:")
        print(f"export OPENAI_BASE_URL={fake.base_url}")
        print("export OPENAI_API_KEY=fake-key", flush=True)
        stop.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        fake.stop()
    print(f"fake-openai: stopped after {fake.request_count} request(s)", flush=True)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m agentspan.testing.fake_openai``."""
    parser = argparse.ArgumentParser(
        prog="python -m agentspan.testing.fake_openai",
        description="A fake OpenAI-compatible server on loopback that answers from a script.",
    )
    add_arguments(parser)
    return serve(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

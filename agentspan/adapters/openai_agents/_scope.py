"""Whether the calling code is inside an Agentspan run of an SDK agent (a context variable), and the
tokens its model calls used.

Only calls made inside such a run become steps; outside it, the wrapped models and tools and the
patched SDK functions behave exactly as the SDK's own.
"""

from __future__ import annotations

import contextvars
import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

from ...durable._context import current_context

__all__ = ["RunUsage", "active", "agentspan_run", "run_usage"]


@dataclasses.dataclass
class RunUsage:
    """Tokens used by the model calls of a run, replayed ones included (the SDK's own count misses the
    calls inside a replayed agent-as-tool, which do not run again)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def add(self, usage: dict[str, int] | None) -> None:
        """Count one model call's (or one replayed tool's) usage."""
        for key, value in (usage or {}).items():
            if key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                setattr(self, key, getattr(self, key) + int(value))

    def as_dict(self) -> dict[str, int]:
        """The counts as JSON."""
        return dataclasses.asdict(self)


_RUN: contextvars.ContextVar[RunUsage | None] = contextvars.ContextVar("agentspan_openai_agents_run", default=None)


def active() -> bool:
    """Whether model and tool calls made here are durable steps."""
    return _RUN.get() is not None and current_context() is not None


def run_usage() -> RunUsage:
    """The usage counter of the current run (a throwaway one outside a run)."""
    return _RUN.get() or RunUsage()


@contextmanager
def agentspan_run() -> Iterator[RunUsage]:
    """Mark the enclosed code (and the tasks it starts) as an Agentspan run; yields its usage counter."""
    usage = RunUsage()
    token = _RUN.set(usage)
    try:
        yield usage
    finally:
        _RUN.reset(token)

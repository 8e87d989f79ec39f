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
from typing import Any

from ...durable._context import current_context

__all__ = ["RunUsage", "active", "agentspan_run", "run_usage"]


@dataclasses.dataclass
class RunUsage:
    """Tokens used by the model calls of a run, replayed ones included (the SDK's own count misses the
    calls inside a replayed agent-as-tool, which do not run again)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    seen: dict[str, int] = dataclasses.field(default_factory=dict, repr=False)
    """How many input items the last model call of each agent (by instructions) was sent."""

    def add(self, usage: dict[str, int] | None) -> None:
        """Count one model call's (or one replayed tool's) usage."""
        for key, value in (usage or {}).items():
            if key in ("prompt_tokens", "completion_tokens", "total_tokens"):
                setattr(self, key, getattr(self, key) + int(value))

    def as_dict(self) -> dict[str, int]:
        """The counts as JSON."""
        return {"prompt_tokens": self.prompt_tokens, "completion_tokens": self.completion_tokens,
                "total_tokens": self.total_tokens}  # fmt: skip

    def recorded(self, request: dict[str, Any]) -> dict[str, Any]:
        """What a model step records of ``request``: the input items added since the previous call of
        the same agent in this run (``input_from`` says how many came before), not the whole
        conversation again. The step's key still comes from the whole request."""
        items = request["input"]
        if not isinstance(items, list):
            return request
        agent = str(request["system"])
        before = self.seen.get(agent, 0)
        self.seen[agent] = len(items)
        if not 0 < before <= len(items):
            return request
        return {**request, "input": items[before:], "input_from": before}


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

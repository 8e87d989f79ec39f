"""CrewAI flows as durable functions (being written)."""

from __future__ import annotations

from typing import Any

__all__ = ["DurableFlow", "is_flow"]


def is_flow(obj: Any) -> bool:
    """Whether ``obj`` is a CrewAI ``Flow`` instance."""
    from crewai.flow.flow import Flow

    return isinstance(obj, Flow)


class DurableFlow:
    """A flow whose kickoffs are durable executions (being written)."""

    def __init__(self, flow: Any, runtime: Any, name: str | None) -> None:
        raise NotImplementedError("durable flows are not written yet")

"""The model interface the agent loop calls."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, runtime_checkable

from .._types import ModelRequest, ModelResponse

__all__ = ["Model"]


@runtime_checkable
class Model(Protocol):
    """A chat model: one request in, one response out.

    ``provider`` and ``name`` identify it in step names (``openai/gpt-4o-mini``).
    """

    provider: str
    name: str

    def complete(self, request: ModelRequest) -> ModelResponse:
        """Answer the request (blocking)."""
        ...

    def stream(self, request: ModelRequest) -> Iterator[str | ModelResponse]:
        """Answer the request as text deltas, then the complete :class:`ModelResponse` last."""
        ...

"""Errors a model provider raises, so the agent loop (and the user) can tell what to fix or retry.

The tree hangs off :class:`~agentspan.errors.AgentspanError`::

    ModelError                  a model call failed (provider, model, HTTP status when there was one)
    ├── ModelAuthError          401/403: the API key is missing, wrong or not allowed this model
    ├── ModelRequestError       400/404/422...: the provider rejected the request as sent
    ├── ModelRateLimitError     429 still answered after every retry (retryable)
    ├── ModelServerError        5xx, timeout or connection error after every retry (retryable)
    └── ModelResponseError      the provider answered 2xx with a body that is not what its API promises

Every class can be built from its message alone, so a failure recorded in the journal is raised
again as the same type when an execution replays it.
"""

from __future__ import annotations

from ...errors import AgentspanError

__all__ = [
    "ModelAuthError",
    "ModelError",
    "ModelRateLimitError",
    "ModelRequestError",
    "ModelResponseError",
    "ModelServerError",
]


class ModelError(AgentspanError):
    """A model call failed.

    Attributes:
        provider: The provider prefix (``openai``), when known.
        model: The model name without the prefix (``gpt-4o-mini``), when known.
        status: The HTTP status the provider answered with; ``None`` for timeouts, connection errors
            and malformed bodies.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str | None = None,
        model: str | None = None,
        status: int | None = None,
        execution_id: str | None = None,
    ) -> None:
        super().__init__(message, execution_id=execution_id)
        self.provider = provider
        self.model = model
        self.status = status


class ModelAuthError(ModelError):
    """The provider refused the credentials (401) or the permission (403); set the API key."""


class ModelRequestError(ModelError):
    """The provider rejected the request itself (400, 404, 422...); sending it again cannot help."""


class ModelRateLimitError(ModelError):
    """The provider kept answering 429 (rate limit or quota) after every retry."""

    retryable = True


class ModelServerError(ModelError):
    """The provider kept failing (5xx, 529 overloaded, timeout, connection error) after every retry."""

    retryable = True


class ModelResponseError(ModelError):
    """The provider answered with a body that is not JSON or lacks what its API promises."""

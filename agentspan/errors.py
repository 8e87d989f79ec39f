"""Errors raised by Agentspan.

Every error derives from :class:`AgentspanError`; the tree is shallow on purpose, so callers catch
by category::

    AgentspanError
    ├── InvalidInputError          what a caller sent is wrong (HTTP 400/422)
    │   ├── NotJSONError           a step input or output is not JSON
    │   └── PayloadTooLargeError   a request or payload exceeds the size limit (HTTP 413)
    ├── NotFoundError              no such execution, step or definition (HTTP 404)
    ├── ConflictError              the request contradicts the stored state (HTTP 409)
    │   └── LeaseLostError         a write carried a stale fencing epoch (HTTP 409)
    ├── UnauthorizedError          missing or wrong bearer token (HTTP 401)
    ├── ConfigurationError         the runtime is configured in a way that cannot work
    ├── TransportError             the server could not be reached or answered 5xx (retryable)
    ├── UnavailableError           the runtime cannot serve this now, try again (HTTP 503, retryable)
    ├── BudgetExceededError        a model call would start with the execution's token or cost budget spent
    ├── ExecutionError             an execution ended badly, raised to whoever waits on it
    │   ├── ExecutionFailedError   the durable function raised
    │   └── ExecutionCancelledError
    └── StepError                  raised inside a durable execution at a step
        ├── StepFailedError        a replayed failure whose original type cannot be rebuilt
        ├── DivergenceError        the code made a different call than the journal recorded (strict)
        ├── InDoubtStepError       a step was interrupted and its effect policy forbids re-running it
        └── GuardrailError         a guardrail failed and its on_fail (or its spent retries) ends the run
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AgentspanError",
    "BudgetExceededError",
    "ConfigurationError",
    "ConflictError",
    "DivergenceError",
    "ExecutionCancelledError",
    "ExecutionError",
    "ExecutionFailedError",
    "GuardrailError",
    "InDoubtStepError",
    "InvalidInputError",
    "LeaseLostError",
    "NotFoundError",
    "NotJSONError",
    "PayloadTooLargeError",
    "StepError",
    "StepFailedError",
    "TransportError",
    "UnauthorizedError",
    "UnavailableError",
]


class AgentspanError(Exception):
    """Base class of every Agentspan error.

    Attributes:
        message: What went wrong and, where there is one, what to do about it.
        execution_id: The execution concerned, when there is one.
        retryable: Whether repeating the same request may succeed.
    """

    retryable: bool = False

    def __init__(self, message: str, *, execution_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.execution_id = execution_id

    def to_dict(self) -> dict[str, Any]:
        """The JSON body the server answers with when it raises this error."""
        body: dict[str, Any] = {"type": type(self).__name__, "message": self.message}
        if self.execution_id is not None:
            body["execution_id"] = self.execution_id
        return body


class InvalidInputError(AgentspanError, ValueError):
    """What the caller sent is malformed or has the wrong type or value."""


class NotJSONError(InvalidInputError, TypeError):
    """A step input or output cannot be stored as JSON (Agentspan never pickles)."""


class PayloadTooLargeError(InvalidInputError):
    """A request body or a single payload is larger than the configured limit."""


class NotFoundError(AgentspanError, LookupError):
    """No execution, step or definition has the given id or name."""


class ConflictError(AgentspanError):
    """The request contradicts the stored state (a terminal execution, a reused key...)."""


class LeaseLostError(ConflictError):
    """A write carried a fencing epoch that is no longer current.

    Another worker has claimed the execution since (or it was cancelled or released), so this
    worker must stop executing it. Nothing from the rejected write was stored.
    """

    def __init__(self, message: str, *, execution_id: str | None = None, epoch: int | None = None) -> None:
        super().__init__(message, execution_id=execution_id)
        self.epoch = epoch


class UnauthorizedError(AgentspanError):
    """The server requires a bearer token (``AGENTSPAN_AUTH_TOKEN``) and none or a wrong one came."""


class ConfigurationError(AgentspanError):
    """The runtime is configured in a way that cannot work; the message says which setting."""


class TransportError(AgentspanError):
    """The server could not be reached, timed out, or failed with a 5xx answer."""

    retryable = True


class UnavailableError(AgentspanError):
    """The runtime cannot serve the request right now, but may shortly: the database is locked by
    another process (a backup, a long transaction), or the server is shutting down. Nothing was
    changed; the server answers 503 with ``Retry-After`` and clients retry.

    Attributes:
        retry_after: Seconds after which trying again is sensible.
    """

    retryable = True

    def __init__(self, message: str, *, execution_id: str | None = None, retry_after: float = 1.0) -> None:
        super().__init__(message, execution_id=execution_id)
        self.retry_after = retry_after


class BudgetExceededError(AgentspanError):
    """The execution's budget is spent, so its next model call did not start (``on_exhausted="fail"``).

    Attributes:
        tokens: Tokens spent by the execution's model calls.
        cost_usd: Their cost in USD (of the priced models).
    """

    def __init__(
        self, message: str, *, execution_id: str | None = None, tokens: int = 0, cost_usd: float = 0.0
    ) -> None:
        super().__init__(message, execution_id=execution_id)
        self.tokens = tokens
        self.cost_usd = cost_usd


class ExecutionError(AgentspanError):
    """An execution ended without a result."""


class ExecutionFailedError(ExecutionError):
    """The durable function raised; ``error`` holds the recorded type and message."""

    def __init__(self, message: str, *, execution_id: str | None = None, error: dict[str, Any] | None = None):
        super().__init__(message, execution_id=execution_id)
        self.error = error or {}


class ExecutionCancelledError(ExecutionError):
    """The execution was cancelled before it finished."""


class StepError(AgentspanError):
    """Raised at a step inside a durable execution.

    Attributes:
        step_key: The key of the step in the journal.
        attempt: The attempt number of the step.
    """

    def __init__(
        self,
        message: str,
        *,
        execution_id: str | None = None,
        step_key: str | None = None,
        attempt: int | None = None,
    ) -> None:
        super().__init__(message, execution_id=execution_id)
        self.step_key = step_key
        self.attempt = attempt


class StepFailedError(StepError):
    """A step failed earlier and its recorded error type cannot be rebuilt in this process.

    ``error_type`` is the qualified name of the original exception class.
    """

    def __init__(self, message: str, *, error_type: str, **context: Any) -> None:
        super().__init__(message, **context)
        self.error_type = error_type


class DivergenceError(StepError):
    """The re-run made a call that does not match the journal, and divergence is strict."""


class InDoubtStepError(StepError):
    """A step started but never finished (the process died), and its policy forbids re-running it."""


class GuardrailError(StepError):
    """A guardrail failed with ``on_fail="raise"``, ran out of retries, or a person rejected the text.

    Attributes:
        guardrail: The guardrail's name.
    """

    def __init__(self, message: str, *, guardrail: str = "", **context: Any) -> None:
        super().__init__(message, **context)
        self.guardrail = guardrail

"""Request bodies of the HTTP API and the one function that reads them.

Bodies are parsed by hand rather than by FastAPI's body parameters, for three reasons: a body that
is not JSON is a 400 (FastAPI would answer 422), ``NaN``/``Infinity`` literals and lone surrogates
must be refused before anything reaches the store (Python's ``json`` accepts both), and the records
endpoint is the hot path, where one ``from_json`` plus one prebuilt validator is the cheapest parse.
"""

from __future__ import annotations

from typing import Annotated, Any, Generic, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, TypeAdapter, ValidationError
from pydantic_core import from_json

from ...errors import InvalidInputError
from .._budget import TOKENS, USD
from .._models import CreateExecution, Record

__all__ = [
    "BODIES",
    "MAX_INT",
    "ApproveBody",
    "BodyReader",
    "ClaimBody",
    "DefinitionBody",
    "ForkBody",
    "HeartbeatBody",
    "RaiseBudgetBody",
    "RecordsBody",
    "RejectBody",
    "RespondBody",
    "SessionBody",
    "SignalBody",
    "body_doc",
]

MAX_INT = 2**63 - 1
"""The largest integer SQLite (and PostgreSQL ``bigint``) stores."""

_WorkerId = Annotated[str, Field(min_length=1, max_length=200)]


def json_number(value: Any) -> Any:
    """Refuse what pydantic's lax mode would turn into a number but JSON Schema does not call one."""
    if isinstance(value, bool | str):
        raise ValueError("Input should be a JSON number")
    return value


# A JSON number, never a bool or a numeric string (the document says number); 3.0 is an integer.
_Epoch = Annotated[int, Field(ge=0, le=MAX_INT), BeforeValidator(json_number)]
_WaitSeconds = Annotated[float, Field(ge=0, le=300), BeforeValidator(json_number)]
_LeaseSeconds = Annotated[float, Field(ge=1, le=3600), BeforeValidator(json_number)]


class _Body(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RecordsBody(_Body):
    """A batch of records a worker writes under its lease."""

    worker_id: _WorkerId
    """The worker holding the lease."""
    epoch: _Epoch
    """The fencing epoch of the lease (from the claim)."""
    records: list[Record]
    """Step, divergence and finish records, applied atomically in order."""


class ClaimBody(_Body):
    """A worker asking for the next execution it can run."""

    worker_id: _WorkerId
    names: Annotated[list[str], Field(min_length=1, max_length=1000)]
    """The agents or durable functions this worker can run (at least one)."""
    wait_seconds: _WaitSeconds = 0.0
    """How long to wait for work (0 to 300); the answer is 204 when none came."""
    lease_seconds: _LeaseSeconds = 30.0
    """How long the lease lasts without a heartbeat (1 to 3600)."""


class HeartbeatBody(_Body):
    """A worker renewing its lease."""

    worker_id: _WorkerId
    epoch: _Epoch
    lease_seconds: _LeaseSeconds = 30.0
    """How long the renewed lease lasts (1 to 3600)."""


class SignalBody(_Body):
    """An external event for an execution (an approval, a reply)."""

    payload: Any = None
    """Any JSON; the waiting step returns it."""


class RaiseBudgetBody(_Body):
    """A raise of a waiting execution's budget: positive increments, at least one."""

    model_config = ConfigDict(frozen=True, extra="forbid", json_schema_extra={"minProperties": 1})

    tokens: TOKENS = None  # type: ignore[assignment]  # absent means no raise; null is not accepted
    """Tokens to add to ``max_tokens`` (a positive integer)."""
    cost_usd: USD = None  # type: ignore[assignment]
    """USD to add to ``max_cost_usd`` (a positive number)."""


class ForkBody(_Body):
    """Forking an execution from one of its steps."""

    step: Annotated[str, Field(min_length=1, max_length=1000)]
    """The key of the step to run fresh from (see the execution's journal); the steps before it are
    replayed from the source's journal."""
    idempotency_key: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    """Forking again with the same key returns the same fork."""


class DefinitionBody(_Body):
    """A deployed agent or durable-function definition."""

    kind: Annotated[str, Field(min_length=1, max_length=50)] = "function"
    spec: dict[str, Any] | None = None
    """Free-form JSON describing it."""


class ApproveBody(_Body):
    """Approving a wait in the approvals inbox."""

    arguments: dict[str, Any] | None = None
    """Edited tool arguments to run the call with instead of the recorded ones (native tools and
    interrupts; validated against the tool's schema)."""


class RejectBody(_Body):
    """Rejecting a wait in the approvals inbox."""

    reason: Annotated[str, Field(max_length=10_000)] | None = None
    """Why: the model sees it as the tool's result; human input gets it as the feedback to revise by."""


class RespondBody(_Body):
    """Answering a wait in the approvals inbox."""

    value: Any
    """The answer: the feedback text for human input, any JSON for a LangGraph interrupt."""


class SessionBody(_Body):
    """A login of the UI: the server's auth token (``AGENTSPAN_AUTH_TOKEN``)."""

    token: Annotated[str, Field(min_length=1, max_length=4096)]


BODIES: tuple[type[BaseModel], ...] = (
    CreateExecution,
    RecordsBody,
    ClaimBody,
    HeartbeatBody,
    SignalBody,
    RaiseBudgetBody,
    ForkBody,
    DefinitionBody,
    ApproveBody,
    RejectBody,
    RespondBody,
    SessionBody,
)
"""Every request body model, for the OpenAPI document."""

B = TypeVar("B", bound=BaseModel)


class BodyReader(Generic[B]):
    """Reads one kind of request body: JSON errors are 400, wrong shapes 422 listing each problem.

    Built once per model, so a request pays for parsing and validation only.

    Args:
        model: The body model.
        optional: Whether an empty body means ``{}`` (for bodies whose fields all have defaults).
    """

    def __init__(self, model: type[B], *, optional: bool = False) -> None:
        self._adapter = TypeAdapter(model)
        self._optional = optional

    async def read(self, request: Request) -> B:
        """Parse and validate the request's body."""
        return self.parse(await request.body())

    def parse(self, raw: bytes) -> B:
        """Parse and validate a body."""
        if not raw and self._optional:
            raw = b"{}"
        try:
            data = from_json(raw, allow_inf_nan=False)
        except ValueError as exc:
            raise InvalidInputError(_not_json(raw, exc)) from None
        try:
            return self._adapter.validate_python(data)
        except ValidationError as exc:
            errors = [{"loc": ("body", *e["loc"]), "msg": e["msg"]} for e in exc.errors(include_url=False)]
            raise RequestValidationError(errors) from None


def _not_json(raw: bytes, exc: ValueError) -> str:
    if not raw.strip():
        return "the request body is empty; send a JSON object"
    message = f"the request body is not valid JSON: {exc}"
    if b"NaN" in raw or b"Infinity" in raw:
        message += " (NaN and Infinity are not JSON numbers; send null or a string instead)"
    return message


def body_doc(model: type[BaseModel], *, required: bool = True) -> dict[str, Any]:
    """The ``openapi_extra`` of a route whose body :class:`BodyReader` reads (see ``BODIES``)."""
    schema = {"$ref": f"#/components/schemas/{model.__name__}"}
    return {"requestBody": {"required": required, "content": {"application/json": {"schema": schema}}}}

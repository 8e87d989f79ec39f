"""The runtime's value objects: executions, steps, events and the records workers write.

They are pydantic models because the same objects cross the HTTP API, the local transport and the
store; everything in them is JSON.
"""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from ..errors import InvalidInputError
from ._budget import Budget

__all__ = [
    "Claim",
    "CreateExecution",
    "ErrorInfo",
    "Event",
    "Execution",
    "ExecutionPage",
    "ExecutionStatus",
    "ExecutionSummary",
    "FRAMEWORK_PATTERN",
    "framework_slug",
    "FinishRecord",
    "DivergenceRecord",
    "ForkOrigin",
    "Definition",
    "Heartbeat",
    "Record",
    "Step",
    "StepRecord",
    "StepStatus",
    "WaitInfo",
    "WriteResult",
    "validate",
]

JSON = Any
M = TypeVar("M", bound=BaseModel)
"""A value that ``json.dumps`` accepts unchanged."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExecutionStatus(enum.StrEnum):
    """Where an execution is in its lifecycle.

    ``QUEUED → RUNNING → COMPLETED | FAILED | CANCELLED``, with ``RUNNING → WAITING → QUEUED`` for a
    suspension and ``RUNNING → QUEUED`` when a lease expires or a worker releases it.
    """

    QUEUED = "queued"
    """Waiting for a worker that can run its agent to claim it."""
    RUNNING = "running"
    """Claimed: one worker holds the lease and is executing it."""
    WAITING = "waiting"
    """Suspended until a signal arrives or a timer is due; no worker or process is held."""
    COMPLETED = "completed"
    """Finished with an output. Terminal."""
    FAILED = "failed"
    """Finished with an error. Terminal."""
    CANCELLED = "cancelled"
    """Cancelled through the API. Terminal."""

    @property
    def is_terminal(self) -> bool:
        """Whether the execution can no longer change."""
        return self in _TERMINAL


_TERMINAL = frozenset({ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED})


class StepStatus(enum.StrEnum):
    """Where a step is. Only ``STARTED`` and ``SUSPENDED`` may still change."""

    STARTED = "started"
    """Recorded as started and not (yet) finished. Seen on replay, the step is *in doubt*: the
    process that ran it died inside it."""
    COMPLETED = "completed"
    """Finished with an output; a re-run returns that output without calling the function."""
    FAILED = "failed"
    """Finished with an error after its retries; a re-run raises the same error."""
    SUSPENDED = "suspended"
    """Waiting for a signal or a timer; the server completes it when that arrives."""


class ErrorInfo(_Frozen):
    """A recorded exception, enough to raise it again without unpickling anything."""

    type: str
    """Qualified class name, e.g. ``builtins.ValueError``."""
    message: str
    """``str(exception)``."""
    traceback: str | None = None
    """Where it was raised: the formatted traceback (its last 8,000 characters), as the worker saw it."""


class WaitInfo(_Frozen):
    """What a suspended step or a waiting execution waits for."""

    signal: str | None = None
    """The name of the signal that resumes it."""
    wake_at: datetime | None = None
    """When a timer is due (UTC)."""


class ForkOrigin(_Frozen):
    """Where a forked execution came from: its journal holds the source's steps before ``step``."""

    execution_id: str
    """The execution it was forked from."""
    step: str
    """The key of the step it runs fresh from (that step and everything after it run again)."""
    seq: int
    """That step's position in the source's journal."""


FRAMEWORK_PATTERN = r"^[a-z0-9_-]{1,40}$"
"""What an execution's ``framework`` looks like: a short slug (``native``, ``langgraph``,
``openai_agents``, ``crewai``, ``google_adk``, as the approvals inbox names them)."""


def framework_slug(value: str) -> str:
    """``value`` with hyphens read as underscores: ``openai-agents`` (as the install extras and deployed
    definitions spell it) is ``openai_agents``."""
    return value.replace("-", "_")


class ExecutionSummary(_Frozen):
    """What a listing shows of an execution at a glance, counted from its active journal."""

    steps: int = 0
    """Active steps (superseded history not counted), of every kind and status."""
    llm_calls: int = 0
    """Active model (``llm``) steps."""
    tool_calls: int = 0
    """Active ``tool`` steps."""
    tokens: int = 0
    """Tokens of the completed model calls, counted as budgets count them."""
    cost_usd: float | None = None
    """Their cost from the price table and the budget's prices; ``None`` when a model has no price."""
    cost_note: str | None = None
    """Why ``cost_usd`` is ``None``, when a model call was made."""
    started_at: datetime | None = None
    """When a worker first claimed it (its first ``execution.running`` event)."""
    ended_at: datetime | None = None
    """When it completed, failed or was cancelled; ``None`` while unfinished."""
    waiting_for: str | None = None
    """While ``WAITING``: the kind of step it waits on (``approval``, ``human``, ``interrupt``,
    ``budget``, ``timer``, ``signal``...)."""


class Execution(_Frozen):
    """One run of an agent (or durable function) on one input."""

    id: str
    """The execution id."""
    name: str
    """The agent or durable-function name; workers claim by it."""
    status: ExecutionStatus
    """Lifecycle state."""
    input: JSON
    """The input it was started with."""
    output: JSON = None
    """The result, once ``COMPLETED``."""
    error: ErrorInfo | None = None
    """The error, once ``FAILED``."""
    idempotency_key: str | None = None
    """Starting again with the same key returns this execution instead of a new one."""
    created_at: datetime
    """When it was created."""
    updated_at: datetime
    """When its state last changed."""
    epoch: int = 0
    """Fencing epoch: incremented by every claim; every write must carry the current one."""
    worker_id: str | None = None
    """The worker holding the lease while ``RUNNING``."""
    lease_expires_at: datetime | None = None
    """When the current lease runs out unless heartbeats renew it."""
    wait: WaitInfo | None = None
    """What it waits for while ``WAITING``."""
    cancel_requested: bool = False
    """Set when cancelled while a worker held it; the worker sees it on its next write or heartbeat."""
    budget: Budget | None = None
    """The token and cost budget it was started with (raises are recorded in its journal)."""
    forked_from: ForkOrigin | None = None
    """Set when it was forked from a step of another execution (see ``Service.fork_execution``)."""
    framework: str | None = None
    """What runs it: ``native`` (an ``agentspan.agents.Agent``), ``langgraph``, ``openai_agents``,
    ``crewai`` or ``google_adk``; ``None`` for a plain durable function."""
    summary: ExecutionSummary | None = None
    """Counts and times for a listing; only in ``list_executions(summary=True)`` answers."""


class Step(_Frozen):
    """One recorded step of an execution's journal."""

    execution_id: str
    key: str
    """Deterministic key: the same code on the same input produces the same keys."""
    seq: int
    """Position in the journal (order of first record)."""
    kind: str
    """``llm``, ``tool``, ``human``, ``guardrail``, ``node``, ``task``, ``step``, ``signal``, ``timer``..."""
    name: str
    """The function, tool or model name."""
    status: StepStatus
    parent: str | None = None
    """Key of the enclosing step, when steps nest."""
    fingerprint: str = ""
    """Hash of the normalised input; two calls with the same name and fingerprint are the same call."""
    input: JSON = None
    output: JSON = None
    error: ErrorInfo | None = None
    attempt: int = 1
    """1 on the first try; incremented each time an in-doubt step is executed again."""
    idempotency_key: str = ""
    """Stable across attempts, so a tool can de-duplicate its side effect."""
    concurrent: bool = False
    """Ran while a sibling step was in flight (divergence checks skip such groups)."""
    usage: dict[str, int] | None = None
    """Token usage of a model call."""
    wait: WaitInfo | None = None
    """What a suspended step waits for."""
    superseded: bool = False
    """Kept as history after a divergence; never replayed."""
    epoch: int = 0
    """The lease epoch under which it was last written; 0 for a step the server wrote before any worker
    ran the execution (copied from the source journal when the execution was forked)."""
    started_at: datetime
    completed_at: datetime | None = None


class Event(_Frozen):
    """One entry of an execution's ordered, persistent event log."""

    id: int
    """Globally increasing; an SSE client resumes with ``Last-Event-ID``."""
    execution_id: str
    type: str
    """e.g. ``execution.queued``, ``step.completed``, ``divergence``, ``lease.expired``."""
    data: dict[str, JSON] = Field(default_factory=dict)
    created_at: datetime


class Definition(_Frozen):
    """A deployed agent definition, registered by name."""

    name: str
    kind: str = "function"
    spec: dict[str, JSON] = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime


# --- requests -------------------------------------------------------------------------------------

_NAME = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-/]+$")]
_KEY = Annotated[str, Field(min_length=1, max_length=1000)]


class CreateExecution(_Frozen):
    """Request to create (start) an execution."""

    name: _NAME
    """The agent or durable-function name a worker will claim it by."""
    input: JSON = None
    idempotency_key: Annotated[str, Field(min_length=1, max_length=200)] | None = None
    budget: Budget | None = None
    """Limits on the tokens and cost of its model calls."""
    framework: Annotated[str, Field(pattern=FRAMEWORK_PATTERN), AfterValidator(framework_slug)] | None = None
    """What runs it (see :attr:`Execution.framework`; ``openai-agents`` is read as ``openai_agents``);
    ``None`` for a plain durable function."""


class StepRecord(_Frozen):
    """A step's state as a worker writes it; the server inserts or updates the row by ``key``."""

    type: Literal["step"] = "step"
    key: _KEY
    kind: Annotated[str, Field(min_length=1, max_length=50)]
    name: Annotated[str, Field(min_length=1, max_length=500)]
    status: StepStatus
    parent: str | None = None
    fingerprint: str = ""
    input: JSON = None
    output: JSON = None
    error: ErrorInfo | None = None
    attempt: Annotated[int, Field(ge=1, le=1_000_000)] = 1
    idempotency_key: str = ""
    concurrent: bool = False
    usage: dict[str, int] | None = None
    wait: WaitInfo | None = None


class DivergenceRecord(_Frozen):
    """The re-run left the recorded path: the listed steps become history, never replayed."""

    type: Literal["divergence"] = "divergence"
    key: _KEY
    """The key of the call that did not match."""
    expected: str | None = None
    """The key of the recorded step at that position."""
    superseded: list[str] = Field(default_factory=list)
    """Keys of recorded steps this run will not reuse."""


class FinishRecord(_Frozen):
    """The worker ends its turn with the execution: completed, failed, suspended or released."""

    type: Literal["finish"] = "finish"
    status: Literal["completed", "failed", "waiting", "released"]
    output: JSON = None
    error: ErrorInfo | None = None
    wait: WaitInfo | None = None


Record = Annotated[StepRecord | DivergenceRecord | FinishRecord, Field(discriminator="type")]


class Heartbeat(_Frozen):
    """Answer to a heartbeat: the renewed lease, and whether the execution was cancelled."""

    lease_expires_at: datetime
    cancel_requested: bool = False


class WriteResult(_Frozen):
    """Answer to a batch of records."""

    written: int
    """How many records were applied (an identical repeat of a finished step counts as applied)."""
    status: ExecutionStatus
    """The execution's status after the batch."""


class Claim(_Frozen):
    """A worker's lease on an execution, with everything needed to replay it."""

    execution: Execution
    epoch: int
    """The fencing epoch every write under this lease must carry."""
    lease_expires_at: datetime
    journal: list[Step]
    """The whole active journal, ordered by ``seq``."""
    server_time: datetime
    """The server's clock when the claim was made (timers are judged by it)."""


class ExecutionPage(_Frozen):
    """One page of a listing."""

    items: list[Execution]
    next_cursor: str | None = None
    """Pass as ``cursor`` to get the next page; ``None`` on the last page."""
    total: int | None = None
    """How many executions match the filters, all pages together; only with ``summary=True``."""


def validate(model: type[M], data: Any) -> M:
    """Build ``model`` from ``data``, turning pydantic's error into a readable ``InvalidInputError``."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInputError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    """One line per problem: where it is and what is wrong."""
    parts = []
    for err in exc.errors(include_url=False):
        where = ".".join(str(p) for p in err["loc"]) or "body"
        parts.append(f"{where}: {err['msg']}")
    return "invalid request: " + "; ".join(parts)

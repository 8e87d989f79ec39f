"""The approvals inbox: every wait for a person, across executions and frameworks, decided one way.

A wait is a suspended step with a signal (see :meth:`agentspan.durable.DurableContext.wait_for_signal`).
The person-facing ones are tool approvals (native ``@tool(approval_required=True)``, OpenAI Agents SDK
``needs_approval``, Google ADK confirmations; kind ``approval``), requests for human input (CrewAI;
kind ``human``) and LangGraph ``interrupt()`` (kind ``interrupt``). Each is an :class:`InboxItem`
with a short id, and one :class:`InboxDecision` (approve, reject, respond) is turned into the signal
payload that wait understands (:func:`payload_for`); the service delivers it with ``send_signal``.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

from ..errors import InvalidInputError
from ._models import ExecutionStatus, Step, StepStatus

__all__ = [
    "FRAMEWORKS",
    "INBOX_KINDS",
    "InboxDecision",
    "InboxItem",
    "InboxPage",
    "InboxStatus",
    "InboxType",
    "WaitRow",
    "check_decision",
    "describe_decision",
    "inbox_id",
    "item_of",
    "payload_for",
    "split_inbox_id",
]

INBOX_KINDS = ("approval", "human", "interrupt")
"""Step kinds of the waits a person answers (a LangGraph interrupt recorded before it had its own
kind is a ``signal`` step on ``interrupt:<n>``; the store counts it too)."""

FRAMEWORKS = ("native", "openai_agents", "langgraph", "crewai", "google_adk")
"""The values of :attr:`InboxItem.framework`."""

_PREFIX = 6  # characters of the execution id an inbox id starts with, so a lookup reads one journal
_DIGEST = 3  # bytes of digest after it (6 hex characters)


def inbox_id(execution_id: str, signal: str) -> str:
    """The inbox id of the wait for ``signal`` in ``execution_id``: 12 characters, the same every time.

    It starts with the execution id's first characters (the store finds the execution by them through
    the journal's index, without a table of ids) and ends with a digest of the pair."""
    digest = hashlib.blake2b(f"{execution_id}\0{signal}".encode(), digest_size=_DIGEST).hexdigest()
    return execution_id[:_PREFIX] + digest


def split_inbox_id(item_id: str) -> str | None:
    """The execution id prefix an inbox id starts with; ``None`` when it cannot be one."""
    if len(item_id) != _PREFIX + 2 * _DIGEST or not item_id.isascii() or not item_id.isalnum():
        return None
    return item_id[:_PREFIX]


class InboxType(enum.StrEnum):
    """What a person is asked."""

    TOOL_APPROVAL = "tool_approval"
    """Whether a tool call may run: approve (optionally with edited arguments) or reject with a reason."""
    HUMAN_INPUT = "human_input"
    """Feedback on an agent's draft (CrewAI): approve accepts it, reject or respond sends feedback."""
    INTERRUPT = "interrupt"
    """A LangGraph ``interrupt()``: the answer (any JSON) is the graph's resume value."""


class InboxStatus(enum.StrEnum):
    """Where an inbox item is."""

    PENDING = "pending"
    """Waiting for a decision."""
    DECIDED = "decided"
    """Decided once; a different decision now gets a 409 naming this one."""
    CLOSED = "closed"
    """The execution ended (cancelled, failed) without a decision."""


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class InboxItem(_Frozen):
    """One wait for a person, in any execution of any framework."""

    id: str
    """Short and stable (12 characters): what ``agentspan approvals approve ID`` takes."""
    execution_id: str
    """The execution that waits."""
    agent: str
    """The execution's agent (its name)."""
    execution_status: ExecutionStatus
    """The execution's status (``waiting`` while nothing else runs in it)."""
    framework: str
    """``native``, ``openai_agents``, ``langgraph``, ``crewai`` or ``google_adk``."""
    type: InboxType
    """What is asked."""
    signal: str
    """The signal the decision is delivered as (``approval:<call id>``, ``human:<id>``, ``interrupt:<n>``)."""
    tool: str | None = None
    """The tool, for a tool approval."""
    arguments: Any = None
    """The tool call's arguments (JSON), for a tool approval."""
    call_id: str | None = None
    """The tool call's id, for a tool approval."""
    question: Any = None
    """What an interrupt asks (the value passed to ``interrupt()``), the task human input is for, or
    why a guardrail asks a person about a text."""
    details: dict[str, Any]
    """Everything the wait recorded for whoever answers (a draft, a hint, the tool's schema...)."""
    status: InboxStatus
    """Pending, decided or closed."""
    decision: Any = None
    """The payload delivered, once decided."""
    created_at: datetime
    """When the wait began."""


class InboxPage(_Frozen):
    """One page of the inbox, oldest wait first."""

    items: list[InboxItem]
    next_cursor: str | None = None
    """Pass as ``cursor`` to get the next page; ``None`` on the last page."""


class InboxDecision(_Frozen):
    """One decision form for every kind of wait (see :func:`payload_for` for what each becomes)."""

    action: Literal["approve", "reject", "respond"]
    """Approve (with ``arguments``: approve an edited call), reject (with a ``reason``), or respond
    with a ``value``."""
    reason: str | None = None
    """Why it is rejected: the model sees it as the tool's result; human input gets it as feedback."""
    arguments: dict[str, Any] | None = None
    """Edited tool arguments, approved instead of the recorded ones."""
    value: Any = None
    """The answer of ``respond``: the feedback text for human input, any JSON for an interrupt."""


@dataclass(frozen=True, slots=True)
class WaitRow:
    """A waiting step as the store finds it, with what the inbox shows of its execution."""

    step: Step
    agent: str
    execution_status: ExecutionStatus
    framework: str
    decision_json: str | None
    """The signal's payload when it was delivered."""


def _type_of(step: Step) -> InboxType:
    if step.kind == "approval":
        return InboxType.TOOL_APPROVAL
    if step.kind == "human":
        return InboxType.HUMAN_INPUT
    return InboxType.INTERRUPT


def _arguments(value: Any) -> Any:
    # The OpenAI Agents SDK records a call's arguments as the model sent them: a JSON text.
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def item_of(row: WaitRow) -> InboxItem:
    """The inbox item of a waiting step."""
    step = row.step
    details = {k: v for k, v in step.input.items() if k != "signal"} if isinstance(step.input, dict) else {}
    signal = step.wait.signal if step.wait is not None and step.wait.signal else step.name
    kind = _type_of(step)
    if row.decision_json is not None:
        status = InboxStatus.DECIDED
    elif step.status is StepStatus.SUSPENDED and not row.execution_status.is_terminal:
        status = InboxStatus.PENDING
    else:
        status = InboxStatus.CLOSED
    question: Any = None
    if kind is InboxType.INTERRUPT:
        asked = details.get("question")
        question = asked[0] if isinstance(asked, list) and len(asked) == 1 else asked
    elif kind is InboxType.HUMAN_INPUT:
        question = details.get("task") or details.get("message") or details.get("question")
    elif "guardrail" in details:  # a guardrail asking a person about a text (edit: {"output": ...})
        question = f"guardrail {details['guardrail']}: {details.get('message', '')}"
    tool = details.get("tool") if kind is InboxType.TOOL_APPROVAL else None
    arguments = _arguments(details.get("arguments")) if kind is InboxType.TOOL_APPROVAL else None
    call_id = details.get("call_id") if kind is InboxType.TOOL_APPROVAL else None
    return InboxItem(
        id=inbox_id(step.execution_id, signal),
        execution_id=step.execution_id,
        agent=row.agent,
        execution_status=row.execution_status,
        framework=row.framework,
        type=kind,
        signal=signal,
        tool=None if tool is None else str(tool),
        arguments=arguments,
        call_id=None if call_id is None else str(call_id),
        question=question,
        details=details,
        status=status,
        decision=None if row.decision_json is None else json.loads(row.decision_json),
        created_at=step.started_at,
    )


_FRAMEWORK_NAMES = {"openai_agents": "the OpenAI Agents SDK", "google_adk": "Google ADK", "crewai": "CrewAI"}


def check_decision(decision: InboxDecision) -> None:
    """Refuse a field that does not go with the decision's action (it would be ignored)."""
    if decision.action != "approve" and decision.arguments is not None:
        raise InvalidInputError("edited arguments go with approve only")
    if decision.action != "respond" and decision.value is not None:
        raise InvalidInputError("a value goes with respond only")
    if decision.action != "reject" and decision.reason is not None:
        raise InvalidInputError("a reason goes with reject only")


def payload_for(item: InboxItem, decision: InboxDecision) -> Any:
    """The signal payload that carries ``decision`` to the wait of ``item``.

    Raises:
        InvalidInputError: the decision does not fit this kind of wait (a respond to a tool approval,
            edited arguments for a framework that cannot run them, a rejection of human input without
            the feedback to revise by).
    """
    check_decision(decision)
    if item.type is InboxType.HUMAN_INPUT:
        return _human_payload(decision)
    if decision.action == "respond":
        if item.type is InboxType.TOOL_APPROVAL:
            raise InvalidInputError(
                f"{item.id} is a tool approval: approve it (optionally with edited arguments) or reject it"
                " with a reason; respond answers human input and interrupts"
            )
        return decision.value
    if decision.action == "reject":
        return {"approved": False} if decision.reason is None else {"approved": False, "reason": decision.reason}
    if decision.arguments is None:
        return {"approved": True}
    # Only a wait that recorded a schema (a native tool, a guardrail's text) can take edited arguments;
    # a framework's own approval applies approve and reject only, through the framework's API.
    if item.type is InboxType.TOOL_APPROVAL and not isinstance(item.details.get("schema"), dict):
        which = _FRAMEWORK_NAMES.get(item.framework, "a wait that recorded no tool schema")
        raise InvalidInputError(
            f"{which} cannot run tool call {item.id} with edited arguments; approve it as it is or reject it"
            " with a reason"
        )
    return {"approved": True, "arguments": decision.arguments}


def _human_payload(decision: InboxDecision) -> str:
    if decision.action == "approve":
        if decision.arguments is not None:
            raise InvalidInputError("human input has no arguments to edit; approve accepts the draft as it is")
        return ""
    if decision.action == "reject":
        if not (decision.reason or "").strip():
            raise InvalidInputError(
                "rejecting a draft needs a reason: it is the feedback the agent revises by (an empty answer"
                " would accept the draft)"
            )
        return str(decision.reason)
    if not isinstance(decision.value, str):
        raise InvalidInputError(
            f"the answer to human input is the feedback text, not {json.dumps(decision.value)[:100]}; an empty"
            " text accepts the draft"
        )
    return decision.value


def describe_decision(payload: Any) -> str:
    """A recorded decision in words, for the 409 a second, different decision gets."""
    if isinstance(payload, dict) and isinstance(payload.get("approved"), bool):
        if not payload["approved"]:
            reason = payload.get("reason")
            return "rejected" + (f" ({reason})" if isinstance(reason, str) and reason else "")
        if "arguments" in payload:
            return f"approved with edited arguments {json.dumps(payload['arguments'])[:200]}"
        return "approved"
    if payload in (True, "approve", "approved"):
        return "approved"
    if payload in (False, "reject", "rejected"):
        return "rejected"
    if payload == "":
        return "accepted"
    return f"answered {json.dumps(payload)[:200]}"

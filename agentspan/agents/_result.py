"""``AgentResult`` and ``AgentHandle``: what a run returns, and a started run to follow."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, TypeVar

from ..durable import ExecutionHandle
from ..errors import ConflictError
from ..runtime import Event, Execution, ExecutionStatus, Step, StepStatus
from ..runtime._approval import Decision, approval_signal
from ..runtime._budget import BudgetRaise, raise_of, spend_of
from ..runtime._human import HUMAN_PREFIX, feedback_of
from ._types import Usage

__all__ = ["AgentHandle", "AgentResult", "PendingApproval", "PendingHumanInput"]

R = TypeVar("R", bound="AgentResult")

# Finish reasons of a completed execution that did not produce the agent's answer.
_UNFINISHED = frozenset({"max_turns"})


@dataclasses.dataclass(frozen=True)
class PendingApproval:
    """A tool call the run waits to have approved or rejected."""

    call_id: str
    """The tool call's id: what :meth:`AgentHandle.approve` and :meth:`AgentHandle.reject` take."""
    tool: str
    """The tool's name."""
    arguments: Any
    """The arguments the model gave (a JSON object for native agents; as the model sent them, a JSON
    text, for SDK agents)."""
    agent: str | None = None
    """The agent whose tool it is (when the wait records it)."""
    framework: str | None = None
    """``native`` for an :class:`~agentspan.agents.Agent`'s tool; the framework's name otherwise."""
    schema: dict[str, Any] | None = None
    """The tool's JSON schema, which edited arguments must match; ``None`` when edits are not supported."""

    @classmethod
    def from_details(cls, details: dict[str, Any]) -> PendingApproval:
        """Read from the details an approval wait records (a tool call's, or a guardrail's that sent a
        text to a person: tool ``guardrail:<name>``, arguments ``{"output": text}``)."""
        schema = details.get("schema")
        return cls(
            call_id=str(details.get("call_id")),
            tool=str(details.get("tool")),
            arguments=details.get("arguments"),
            agent=None if details.get("agent") is None else str(details["agent"]),
            framework=None if details.get("framework") is None else str(details["framework"]),
            schema=schema if isinstance(schema, dict) else None,
        )


@dataclasses.dataclass(frozen=True)
class PendingHumanInput:
    """A request for human feedback the run waits on (a CrewAI task with ``human_input=True``, a
    flow's ``@human_feedback``)."""

    signal: str
    """The signal that answers it (``human:<id>``): what :meth:`AgentHandle.respond` sends."""
    details: dict[str, Any]
    """What the human is asked: for a task, ``task``, ``expected_output``, ``agent`` and the agent's
    ``draft``; for a flow, the ``method``, its ``output`` and the ``message``."""


@dataclasses.dataclass(frozen=True)
class AgentResult:
    """The outcome of an agent run."""

    execution_id: str
    """The execution, for ``agentspan executions show``."""
    status: ExecutionStatus
    """``completed``, ``failed`` or ``cancelled`` (a run stopped by ``max_turns`` is ``completed``:
    see :attr:`finish_reason`, :attr:`is_success` and :attr:`outcome`)."""
    output: str
    """The final answer's text."""
    structured: Any = None
    """The final answer as the agent's ``output_type`` (a pydantic model), when it has one."""
    messages: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """The whole conversation."""
    tool_calls: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    """Every tool call: id, name, arguments, result."""
    token_usage: Usage = dataclasses.field(default_factory=Usage)
    """Tokens used by all model calls (each counted once, also across crashes)."""
    finish_reason: str = ""
    """``stop``, ``max_turns``, ``length``, ``error``, ``guardrail`` (a guardrail ended the run: see
    :attr:`error`), ``budget`` (failed: its budget was spent) or ``cancelled``."""
    error: str | None = None
    """What went wrong, when the run failed."""
    cost_usd: float | None = None
    """The cost of all model calls in USD (price table, or the budget's ``prices``); ``None`` when a
    model has no price (see :attr:`cost_note`)."""
    cost_note: str | None = None
    """Which models have no price, when :attr:`cost_usd` is ``None``."""

    @property
    def is_success(self) -> bool:
        """Whether the run completed with an answer: a run stopped by ``max_turns`` is not a success."""
        return self.status is ExecutionStatus.COMPLETED and self.finish_reason not in _UNFINISHED

    @property
    def outcome(self) -> str:
        """One word for how the run ended: ``completed``, ``max_turns``, ``failed`` or ``cancelled``."""
        if self.status is ExecutionStatus.COMPLETED and self.finish_reason in _UNFINISHED:
            return self.finish_reason
        return self.status.value

    @classmethod
    def from_execution(cls, execution: Execution, output_type: Any = None) -> AgentResult:
        """Build the result from a finished execution."""
        if execution.status is not ExecutionStatus.COMPLETED or not isinstance(execution.output, dict):
            error = None if execution.error is None else f"{execution.error.type}: {execution.error.message}"
            reason = "cancelled" if execution.status is ExecutionStatus.CANCELLED else "error"
            if execution.error is not None and execution.error.type.endswith(".GuardrailError"):
                reason = "guardrail"
            elif execution.error is not None and execution.error.type.endswith(".BudgetExceededError"):
                reason = "budget"
            return cls(execution.id, execution.status, "", finish_reason=reason, error=error)
        data = execution.output
        structured = data.get("structured")
        if structured is not None and output_type is not None:
            structured = output_type.model_validate(structured)
        return cls(
            execution_id=execution.id,
            status=execution.status,
            output=str(data.get("output", "")),
            structured=structured,
            messages=list(data.get("messages", [])),
            tool_calls=list(data.get("tool_calls", [])),
            token_usage=Usage.model_validate(data.get("usage") or {}),
            finish_reason=str(data.get("finish_reason", "")),
        )

    def with_spend(self, execution: Execution, journal: list[Step]) -> AgentResult:
        """This result with the tokens and cost of every model call in ``journal`` (sub-agents, handoffs,
        a framework's nested calls; each counted once), when it records any."""
        spend = spend_of(journal, execution.budget)
        if not spend.calls:
            return self
        usage = Usage(
            prompt_tokens=spend.prompt_tokens, completion_tokens=spend.completion_tokens, total_tokens=spend.tokens
        )
        return dataclasses.replace(self, token_usage=usage, cost_usd=spend.known_cost_usd, cost_note=spend.cost_note)

    def print_result(self) -> None:
        """Print the answer in a box, then tool calls, tokens, finish reason and execution id."""
        lines = self._headline().splitlines() or [""]
        width = max(min(max(len(line) for line in lines), 100), 1)
        print("╭" + "─" * (width + 2) + "╮")  # noqa: T201 - printing is this method's job
        for line in lines:
            for start in range(0, max(len(line), 1), width):
                print(f"│ {line[start : start + width]:<{width}} │")  # noqa: T201
        print("╰" + "─" * (width + 2) + "╯")  # noqa: T201
        usage = self.token_usage
        print(  # noqa: T201
            f"tool calls: {len(self.tool_calls)}  tokens: {usage.total_tokens} ({usage.prompt_tokens} prompt,"
            f" {usage.completion_tokens} completion)  finish: {self.finish_reason}  execution: {self.execution_id}"
        )

    def _headline(self) -> str:
        """What the box shows: the answer, or why there is none."""
        if self.status is ExecutionStatus.COMPLETED and self.finish_reason == "max_turns":
            note = "stopped at max_turns without a final answer (raise the agent's max_turns, or narrow the task)"
            return f"{note}\n\n{self.output}" if self.output else note
        if self.is_success:
            return self.output or "(the agent answered with an empty message)"
        return f"{self.status.value}: {self.error or 'no error recorded'}"


class AgentHandle:
    """A started agent run: its status, its events, its result; reconnect from any process by id."""

    def __init__(self, handle: ExecutionHandle, output_type: Any = None) -> None:
        self._handle = handle
        self._output_type = output_type

    @property
    def execution_id(self) -> str:
        """The execution id."""
        return self._handle.execution_id

    def __repr__(self) -> str:
        return f"AgentHandle({self.execution_id!r})"

    @property
    def status(self) -> ExecutionStatus:
        """The current status."""
        return self._handle.status

    def events(self, *, after: int = 0) -> Iterator[Event]:
        """The run's events as they happen, until it finishes."""
        return self._handle.events(after=after)

    def wait(self, timeout: float | None = None) -> AgentResult:
        """Block until the run finishes and return its result."""
        execution = self._handle.wait(timeout)
        return self._with_spend(execution, AgentResult.from_execution(execution, self._output_type))

    def _with_spend(self, execution: Execution, result: R) -> R:
        """``result`` with the token usage and cost read from the journal (see :meth:`AgentResult.with_spend`)."""
        found: R = result.with_spend(execution, self._handle.journal())  # type: ignore[assignment]
        return found

    def raise_budget(self, tokens: int | None = None, cost_usd: float | None = None) -> None:
        """Raise the budget of the run waiting on it (``on_exhausted="wait"``) by ``tokens`` and/or
        ``cost_usd``: the run goes on. Any client can instead: ``agentspan budget raise ID --tokens N``.

        Raises:
            InvalidInputError: neither a positive ``tokens`` nor a positive ``cost_usd``.
            ConflictError: the run is not waiting on its budget.
        """
        raise_of(BudgetRaise(tokens, cost_usd).payload())  # a clear error before any request
        self._handle.client.raise_budget(self.execution_id, tokens=tokens, cost_usd=cost_usd)

    def cancel(self) -> None:
        """Cancel the run."""
        self._handle.cancel()

    def pending_approvals(self) -> list[PendingApproval]:
        """The tool calls the run waits on (tools that need approval), oldest first; also the texts a
        guardrail with ``on_fail="human"`` sent to a person (tool ``guardrail:<name>``, arguments
        ``{"output": text}``)."""
        return [
            PendingApproval.from_details(step.input)
            for step in self._handle.journal()
            if step.kind == "approval" and step.status is StepStatus.SUSPENDED and isinstance(step.input, dict)
        ]

    def pending_human_input(self) -> list[PendingHumanInput]:
        """The requests for human feedback the run waits on, oldest first."""
        return [
            PendingHumanInput(str(step.input.get("signal")), {k: v for k, v in step.input.items() if k != "signal"})
            for step in self._handle.journal()
            if step.kind == "human" and step.status is StepStatus.SUSPENDED and isinstance(step.input, dict)
        ]

    def respond(self, feedback: str = "", *, signal: str | None = None) -> None:
        """Answer the pending request for human feedback: the text goes to the agent, which revises its
        draft (and is asked again); an empty text accepts the draft.

        Any client can answer instead: ``agentspan executions respond <id> "<feedback>"``, or
        ``POST /api/executions/{id}/signals/human:<id>`` with the text as the JSON payload.

        Args:
            feedback: The feedback.
            signal: Which request, when several wait at once (see :meth:`pending_human_input`).

        Raises:
            ConflictError: the run waits for no human input (or not for ``signal``).
        """
        feedback_of(feedback)
        pending = [found.signal for found in self.pending_human_input()]
        if signal is None:
            if not pending:
                raise ConflictError(f"execution {self.execution_id} is not waiting for human input")
            signal = pending[0]
        elif not signal.startswith(HUMAN_PREFIX) or signal not in pending:
            raise ConflictError(f"execution {self.execution_id} is not waiting for human input on {signal!r}")
        self._handle.signal(signal, feedback)

    def _pending_call(self, call_id: str | None) -> str:
        """``call_id``, or the one call the run waits on when none is named."""
        if call_id is not None:
            return call_id
        pending = [found.call_id for found in self.pending_approvals()]
        if len(pending) == 1:
            return pending[0]
        if not pending:
            raise ConflictError(f"execution {self.execution_id} is not waiting for an approval")
        raise ConflictError(
            f"execution {self.execution_id} waits for {len(pending)} approvals ({', '.join(pending)}): name the call"
        )

    def approve(self, call_id: str | None = None, *, arguments: dict[str, Any] | None = None) -> None:
        """Approve tool call ``call_id`` (the one waiting, if it is alone): the run goes on and the tool runs (once).

        Any client can decide instead: ``POST /api/executions/{id}/signals/approval:<call id>`` with
        ``{"approved": true}`` (or ``{"approved": true, "arguments": {...}}``).

        Args:
            call_id: The call (see :meth:`pending_approvals`); may be left out when only one waits.
            arguments: Edited arguments the tool runs with instead of the model's; checked against the
                tool's schema (native tools only).

        Raises:
            NotFoundError: the run has no such call waiting.
            InvalidInputError: the edited arguments do not match the tool's schema (nothing recorded).
            ConflictError: the call was already decided otherwise (the message says how), or no call
                was named and not exactly one waits.
        """
        decision = Decision(True, arguments=arguments).payload()
        self._handle.signal(approval_signal(self._pending_call(call_id)), decision)

    def reject(self, call_id: str | None = None, reason: str | None = None) -> None:
        """Reject tool call ``call_id`` (the one waiting, if it is alone): the tool does not run, and the
        model sees ``reason`` as its result.

        Raises:
            NotFoundError: the run has no such call waiting.
            ConflictError: the call was already decided otherwise (the message says how).
        """
        self._handle.signal(approval_signal(self._pending_call(call_id)), Decision(False, reason).payload())

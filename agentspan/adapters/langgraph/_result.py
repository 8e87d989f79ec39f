"""A graph run's :class:`~agentspan.agents.AgentResult`, read from its final state."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

from ...agents._result import AgentHandle, AgentResult
from ...agents._types import Usage
from ...errors import ConflictError
from ...runtime import Execution, ExecutionStatus, StepStatus
from ._graph import INTERRUPT_STEP
from ._guard import content_text as _text

__all__ = ["GraphHandle", "PendingInterrupt", "graph_result"]


def graph_result(execution: Execution) -> AgentResult:
    """The result of a graph run.

    ``output`` is the text of the last message of the final state; ``messages`` are the state's
    messages (``messages_to_dict`` form); ``structured`` is the whole final state (JSON);
    ``tool_calls`` pairs each tool message with the call that asked for it; ``token_usage`` adds up
    the usage metadata of the state's AI messages.
    """
    state = execution.output
    if execution.status is not ExecutionStatus.COMPLETED or not isinstance(state, dict):
        return AgentResult.from_execution(execution)
    found = state.get("messages")
    messages = [m for m in found if isinstance(m, dict)] if isinstance(found, list) else []
    output = _text((messages[-1].get("data") or {}).get("content")) if messages else ""
    calls: dict[str, dict[str, Any]] = {}
    tool_calls: list[dict[str, Any]] = []
    usage = Usage()
    for message in messages:
        data = message.get("data") or {}
        if message.get("type") == "ai":
            for call in data.get("tool_calls") or []:
                calls[str(call.get("id"))] = call
            meta = data.get("usage_metadata") or {}
            usage = usage + Usage(
                prompt_tokens=int(meta.get("input_tokens", 0)),
                completion_tokens=int(meta.get("output_tokens", 0)),
                total_tokens=int(meta.get("total_tokens", 0)),
            )
        elif message.get("type") == "tool":
            call = calls.get(str(data.get("tool_call_id")), {})
            tool_calls.append(
                {
                    "id": data.get("tool_call_id"),
                    "name": data.get("name") or call.get("name"),
                    "arguments": json.dumps(call.get("args", {}), ensure_ascii=False),
                    "result": _text(data.get("content")),
                }
            )
    return AgentResult(
        execution_id=execution.id,
        status=execution.status,
        output=output,
        structured=state,
        messages=messages,
        tool_calls=tool_calls,
        token_usage=usage,
        finish_reason="stop",
    )


@dataclasses.dataclass(frozen=True)
class PendingInterrupt:
    """What a graph run waiting at ``interrupt()`` asks."""

    signal: str
    """The signal that answers it: ``interrupt:<n>`` for the n-th interrupt of the run."""
    values: list[Any]
    """The values passed to ``interrupt()`` (several when parallel nodes interrupted together), as JSON."""

    @property
    def value(self) -> Any:
        """The (first) value passed to ``interrupt()``."""
        return self.values[0] if self.values else None


class GraphHandle(AgentHandle):
    """A started graph run; :meth:`wait` builds the result from the final state."""

    def wait(self, timeout: float | None = None) -> AgentResult:
        """Block until the run finishes and return its result (see :func:`graph_result`).

        A run waiting at ``interrupt()`` does not finish until it is answered (see :meth:`resume`).
        """
        execution = self._handle.wait(timeout)
        return self._with_spend(execution, graph_result(execution))

    def pending_interrupt(self) -> PendingInterrupt | None:
        """What the run waits for, when it is waiting at an ``interrupt()``; else ``None``.

        Read from the journal: the values are the output of the step ``langgraph.interrupt`` whose
        input is ``{"signal": "interrupt:<n>"}``, and the execution waits for that signal.
        """
        execution = self._handle.get()
        signal = execution.wait.signal if execution.wait is not None else None
        if execution.status is not ExecutionStatus.WAITING or not signal or not signal.startswith("interrupt:"):
            return None
        for step in reversed(self._handle.journal()):
            if (
                step.name == INTERRUPT_STEP
                and step.status is StepStatus.COMPLETED
                and step.input == {"signal": signal}
                and isinstance(step.output, list)
            ):
                return PendingInterrupt(signal, list(step.output))
        return PendingInterrupt(signal, [])

    def resume(self, answer: Any = None) -> None:
        """Answer the pending ``interrupt()``: the graph resumes with ``Command(resume=answer)``.

        This delivers the signal ``interrupt:<n>`` (the n-th interrupt of the run; any client can send
        it: ``POST /api/executions/{id}/signals/interrupt:<n>`` with the answer as payload). With
        several interrupts pending at once, a list of as many answers answers each in order.

        Raises:
            ConflictError: the run is not waiting at an interrupt.
        """
        pending = self.pending_interrupt()
        if pending is None:
            raise ConflictError(f"execution {self.execution_id} is not waiting at an interrupt()")
        self._handle.signal(pending.signal, answer)

"""A crew or flow run's :class:`~agentspan.agents.AgentResult`, with CrewAI's own output reachable."""

from __future__ import annotations

import dataclasses
from typing import Any

from ...agents._result import AgentHandle, AgentResult
from ...runtime import Execution, ExecutionStatus
from ._output import crew_output_of

__all__ = ["CrewHandle", "CrewResult", "crew_result"]


@dataclasses.dataclass(frozen=True)
class CrewResult(AgentResult):
    """An :class:`~agentspan.agents.AgentResult` whose ``output`` is ``CrewOutput.raw`` and ``structured``
    the last task's JSON or pydantic output (as JSON), with CrewAI's own ``CrewOutput``."""

    crew_output: Any = None
    """The ``CrewOutput`` ``crew.kickoff`` returned (``None`` for a flow, or a run that did not complete)."""


def crew_result(execution: Execution) -> CrewResult:
    """The result of a finished crew or flow run."""
    base = AgentResult.from_execution(execution)
    fields = {field.name: getattr(base, field.name) for field in dataclasses.fields(AgentResult)}
    data = execution.output
    found = None
    if execution.status is ExecutionStatus.COMPLETED and isinstance(data, dict) and data.get("crew_output"):
        found = crew_output_of(data["crew_output"])
    return CrewResult(**fields, crew_output=found)


class CrewHandle(AgentHandle):
    """A started crew or flow run; :meth:`wait` returns a :class:`CrewResult`."""

    def wait(self, timeout: float | None = None) -> CrewResult:
        """Block until the run finishes and return its result (a run waiting for human input does not
        finish until it is answered: see :meth:`~agentspan.agents.AgentHandle.respond`)."""
        execution = self._handle.wait(timeout)
        return self._with_spend(execution, crew_result(execution))

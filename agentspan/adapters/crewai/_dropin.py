"""``durable(crew)``: the crew's own ``kickoff`` calls, each run a durable execution.

```python
from agentspan.adapters.crewai import durable

result = durable(crew).kickoff(inputs={"topic": "AI agents"})   # the one changed line
result.raw, result.tasks_output, result.token_usage             # CrewAI's own CrewOutput
```

``kickoff``, ``kickoff_async``, ``akickoff`` and ``kickoff_for_each`` take what the crew's own methods
take and return what they return. Each call starts an execution that a worker thread of this process
runs with CrewAI's own ``kickoff``, every model call and tool call a durable step; when an unfinished
execution exists for the same crew and inputs because its process died, the call resumes it instead
(unless a live worker of another process holds it). While a run waits for human input, the call says
on stderr what it waits for and how to answer, and returns once the answer has arrived and the run has
finished. Every other attribute is the crew's.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

from ...durable import ExecutionHandle, FunctionDefinition, Runtime
from ...durable._runtime import find_unfinished
from ...errors import ConfigurationError
from ...runtime import ExecutionStatus
from .._default_runtime import default_runtime
from ._crew import crew_function, execution_input, is_crew
from ._output import crew_output_of

__all__ = ["DurableCrew", "DurableTarget", "durable", "outcome", "start"]


def _runtime_of(runtime: Any) -> Runtime | None:
    found = None if runtime is None else getattr(runtime, "_runtime", runtime)
    if found is not None and not isinstance(found, Runtime):
        raise ConfigurationError(f"runtime must be a Runtime or an AgentRuntime, not {type(runtime).__name__}")
    return found


def durable(target: Any, *, runtime: Any = None, name: str | None = None) -> Any:
    """``target`` (a ``Crew``, or a ``Flow``) with its kickoff methods run durably.

    Args:
        target: A CrewAI ``Crew`` or ``Flow`` instance.
        runtime: The ``Runtime`` or ``AgentRuntime`` that keeps the executions; default the process-wide
            one (embedded SQLite, or the server at ``AGENTSPAN_SERVER_URL``; see ``use_runtime``).
        name: The name its executions run under (default: the crew's name, the flow's class name).
    """
    found = _runtime_of(runtime)
    if is_crew(target):
        return DurableCrew(target, found, name)
    from ._flow import DurableFlow, is_flow

    if is_flow(target):
        return DurableFlow(target, found, name)
    if isinstance(target, type):
        raise ConfigurationError(
            f"durable() takes a CrewAI Crew or Flow instance, not the class {target.__name__}: pass an instance,"
            f" e.g. durable({target.__name__}(...))"
        )
    raise ConfigurationError(f"durable() takes a CrewAI Crew or Flow instance, not {type(target).__name__}")


def start(runtime: Runtime, fn: Callable[..., Any], data: dict[str, Any]) -> ExecutionHandle:
    """The unfinished execution of ``fn`` on ``data`` whose process died, else a new one; served here."""
    definition = FunctionDefinition.of(fn)
    name = definition.name
    execution = find_unfinished(runtime.client, name, data) or runtime.client.create_execution(
        name, data, framework=definition.framework
    )
    runtime.ensure_worker(fn)
    return ExecutionHandle(runtime.client, execution.id)


def _say_what_it_waits_for(handle: ExecutionHandle, signal: str) -> None:
    print(  # noqa: T201 - the one line that tells the user why the call does not return yet
        f"agentspan: execution {handle.execution_id} waits for human input ({signal}): answer with"
        f' `agentspan executions respond {handle.execution_id} "<feedback>"` (an empty answer accepts)',
        file=sys.stderr,
    )


def outcome(handle: ExecutionHandle) -> Any:
    """The execution's output once it has finished (raises when it failed or was cancelled)."""
    told: set[str] = set()
    after = 0
    while True:
        execution = handle.get()
        if execution.status.is_terminal:
            return handle.result(timeout=0)
        signal = execution.wait.signal if execution.wait is not None else None
        if execution.status is ExecutionStatus.WAITING and signal and signal not in told:
            told.add(signal)
            _say_what_it_waits_for(handle, signal)
        events = handle.client.wait_events(handle.execution_id, after=after, timeout=30.0)
        after = events[-1].id if events else after


class DurableTarget:
    """What a durable crew and a durable flow share: the runtime, the run name, the target's attributes."""

    def __init__(self, target: Any, runtime: Runtime | None, fn: Callable[..., Any]) -> None:
        self._target = target
        self._runtime = runtime
        self._fn = fn

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self._target, attribute)

    def __repr__(self) -> str:
        return f"durable({self._target!r})"

    @property
    def runtime(self) -> Runtime:
        """The runtime that keeps the executions."""
        return self._runtime if self._runtime is not None else default_runtime()

    @property
    def name(self) -> str:
        """The name its executions run under."""
        return FunctionDefinition.of(self._fn).name


class DurableCrew(DurableTarget):
    """A crew whose kickoffs are durable executions; see :func:`durable`."""

    def __init__(self, crew: Any, runtime: Runtime | None, name: str | None) -> None:
        super().__init__(crew, runtime, crew_function(crew, name))
        self.crew = crew
        """The crew itself."""

    def _run(self, inputs: Any, mode: str) -> Any:
        output = outcome(start(self.runtime, self._fn, execution_input(inputs, mode=mode)))
        if mode == "for_each":
            return [crew_output_of(found) for found in output["crew_outputs"]]
        return crew_output_of(output["crew_output"])

    def kickoff(self, inputs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Like ``Crew.kickoff``: the ``CrewOutput``."""
        _no_options(kwargs, "kickoff")
        return self._run(inputs, "kickoff")

    async def kickoff_async(self, inputs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Like ``Crew.kickoff_async`` (the run uses CrewAI's synchronous path in a worker thread)."""
        _no_options(kwargs, "kickoff_async")
        return await asyncio.to_thread(self._run, inputs, "kickoff")

    async def akickoff(self, inputs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Like ``Crew.akickoff``: the run uses CrewAI's native async path (``acall`` of the LLMs)."""
        _no_options(kwargs, "akickoff")
        return await asyncio.to_thread(self._run, inputs, "akickoff")

    def kickoff_for_each(self, inputs: list[dict[str, Any]], **kwargs: Any) -> list[Any]:
        """Like ``Crew.kickoff_for_each``: one ``CrewOutput`` per input, all in one execution (each input
        a step of its own, so a resumed run does not kick off the inputs that finished again)."""
        _no_options(kwargs, "kickoff_for_each")
        result: list[Any] = self._run(inputs, "for_each")
        return result


def _no_options(kwargs: dict[str, Any], method: str) -> None:
    if kwargs:
        raise ConfigurationError(
            f"durable {method}() takes the inputs only, not {', '.join(sorted(kwargs))}: a durable run replays"
            " with the crew's own settings"
        )

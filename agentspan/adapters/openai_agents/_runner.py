"""A drop-in for the SDK's ``Runner``: the same calls, each run a durable execution.

```python
from agentspan.adapters.openai_agents import Runner   # instead of: from agents import Runner

result = await Runner.run(agent, "I was double charged")
result = Runner.run_sync(agent, "I was double charged")
streamed = Runner.run_streamed(agent, "I was double charged")
async for event in streamed.stream_events():
    ...
```

Each call starts an execution (or, when an unfinished one exists for the same agent and input because
its process died, resumes it) that a worker thread of this process runs with the SDK's own ``Runner``:
every model call and function-tool call is a durable step. The call returns the SDK's own
``RunResult``. Keyword arguments go to the SDK's ``Runner`` unchanged, except ``session`` (the
execution's journal keeps the conversation; sessions are not supported). Executions are kept by the
process-wide runtime: embedded (SQLite) by default, the server at ``AGENTSPAN_SERVER_URL`` when it is
set, or the one given to :func:`use_runtime`.

Tools marked ``needs_approval``: the call returns the SDK's result with ``interruptions`` while the
execution waits on the server; decide with :func:`approve` / :func:`reject` (or the API or CLI), and
call ``Runner.run`` again with the same agent and input to go on (it waits for the decision if it
has not arrived yet).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from typing import Any

from agents.run_state import RunState

from ...durable import ExecutionHandle, FunctionDefinition, Runtime
from ...durable._runtime import find_unfinished
from ...errors import AgentspanError, ConfigurationError
from ...runtime import Execution, ExecutionStatus, StepStatus
from ...runtime._approval import Decision, approval_signal
from .._default_runtime import default_runtime, use_runtime
from . import _live
from ._agent import agent_function, execution_input

__all__ = ["DurableStreamedRun", "Runner", "approve", "reject", "use_runtime"]


def _decide(execution_id: str, call_id: str, decision: Decision) -> Execution:
    return default_runtime().client.send_signal(execution_id, approval_signal(call_id), decision.payload())


def approve(execution_id: str, call_id: str) -> Execution:
    """Approve tool call ``call_id`` that execution ``execution_id`` waits on."""
    return _decide(execution_id, call_id, Decision(True))


def reject(execution_id: str, call_id: str, reason: str | None = None) -> Execution:
    """Reject tool call ``call_id``; the model sees ``reason`` (or a default text) as the tool's result."""
    return _decide(execution_id, call_id, Decision(False, reason))


def _start(
    agent: Any, value: Any, kwargs: dict[str, Any], loop: asyncio.AbstractEventLoop | None
) -> tuple[ExecutionHandle, _live.LiveCall]:
    if isinstance(value, RunState):
        raise ConfigurationError(
            "the durable Runner does not resume from a RunState: decide pending approvals with"
            " approve()/reject() and call Runner.run again with the same agent and input"
        )
    if kwargs.get("session") is not None:
        raise ConfigurationError(
            "the durable Runner does not take a session: the execution's journal keeps the conversation"
            " (pass the history as the input list instead)"
        )
    kwargs.pop("session", None)
    run_config = kwargs.pop("run_config", None)
    fn = agent_function(agent)
    name = FunctionDefinition.of(fn).name
    data = execution_input(value)
    runtime = default_runtime()
    live = _live.LiveCall(kwargs, run_config, asyncio.Queue() if loop is not None else None, loop)
    with _live.registering() as calls:
        # A run this process is running for another caller right now is that caller's: start another.
        found = find_unfinished(runtime.client, name, data, exclude=calls)
        execution = found or runtime.client.create_execution(name, data, framework="openai_agents")
        calls[execution.id] = live
    if execution.status is ExecutionStatus.WAITING:
        _say_what_it_waits_for(runtime, execution.id)
    runtime.ensure_worker(fn)
    return ExecutionHandle(runtime.client, execution.id), live


def _say_what_it_waits_for(runtime: Runtime, execution_id: str) -> None:
    """A run found waiting goes on only once decided: say so, or the caller would just hang."""
    for step in runtime.client.get_journal(execution_id):
        if step.kind == "approval" and step.status is StepStatus.SUSPENDED and isinstance(step.input, dict):
            print(  # noqa: T201 - the one line that tells the user why the call does not return yet
                f"agentspan: execution {execution_id} waits for approval of {step.input.get('tool')}"
                f"({step.input.get('arguments')}), call id {step.input.get('call_id')}: decide with"
                f" approve()/reject() or `agentspan signal {execution_id} {step.input.get('signal')}"
                """ --payload '{"approved": true}'`""",
                file=sys.stderr,
            )


def _outcome(handle: ExecutionHandle, live: _live.LiveCall) -> Any:
    """The SDK's result of the run, once it stops here (or the execution ends elsewhere)."""
    try:
        while not live.done.wait(0.25):
            if handle.status.is_terminal:
                break
        # The run hands its result over just before the worker records how it ended: return only
        # once that is on record, so that a caller that goes on does not leave a run to repeat.
        execution, after = handle.get(), 0
        while execution.status is ExecutionStatus.RUNNING:
            events = handle.client.wait_events(handle.execution_id, after=after, timeout=1.0)
            after = events[-1].id if events else after
            execution = handle.get()
    finally:
        _live.forget(handle.execution_id)
    if live.error is not None:
        raise live.error
    if live.result is None:
        handle.result(timeout=0)  # raises when it failed or was cancelled
        raise AgentspanError(
            f"execution {handle.execution_id} was finished by another process, so there is no SDK result"
            " here; read its output with runtime.handle(execution_id).result()",
            execution_id=handle.execution_id,
        )
    result = live.result
    result.execution_id = handle.execution_id
    return result


class DurableStreamedRun:
    """A streamed durable run: :meth:`stream_events` yields the SDK's stream events live; afterwards
    the SDK result's attributes (``final_output``, ``new_items``, ``interruptions``...) are readable here.

    A resumed run does not stream the events of the steps it replays.
    """

    def __init__(self, handle: ExecutionHandle, live: _live.LiveCall) -> None:
        self.execution_id = handle.execution_id
        self._handle = handle
        self._live = live
        self._result: Any = None

    @property
    def is_complete(self) -> bool:
        """Whether the run has stopped (finished, failed, or waiting for an approval)."""
        return self._result is not None

    async def stream_events(self) -> AsyncIterator[Any]:
        """The SDK's stream events as the run produces them; raises the run's error after the last one."""
        queue = self._live.stream
        assert queue is not None
        while True:
            try:
                item = await asyncio.wait_for(queue.get(), 0.5)
            except TimeoutError:
                if self._live.done.is_set() or (await asyncio.to_thread(lambda: self._handle.status)).is_terminal:
                    break
                continue
            if item is _live.END:
                break
            yield item
        self._result = await asyncio.to_thread(_outcome, self._handle, self._live)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if self._result is None:
            raise AttributeError(f"{name!r} is readable once stream_events() has been consumed")
        return getattr(self._result, name)


class Runner:
    """The SDK's ``Runner`` calls, durable: see the module documentation."""

    @classmethod
    async def run(cls, starting_agent: Any, input: Any, context: Any = None, **kwargs: Any) -> Any:
        """Like ``agents.Runner.run``; the run is a durable execution."""
        kwargs["context"] = context
        handle, live = await asyncio.to_thread(_start, starting_agent, input, kwargs, None)
        return await asyncio.to_thread(_outcome, handle, live)

    @classmethod
    def run_sync(cls, starting_agent: Any, input: Any, context: Any = None, **kwargs: Any) -> Any:
        """Like ``agents.Runner.run_sync`` (and usable where an event loop runs); a durable execution."""
        kwargs["context"] = context
        return _outcome(*_start(starting_agent, input, kwargs, None))

    @classmethod
    def run_streamed(cls, starting_agent: Any, input: Any, context: Any = None, **kwargs: Any) -> DurableStreamedRun:
        """Like ``agents.Runner.run_streamed`` (call it where an event loop runs); a durable execution."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            raise ConfigurationError("Runner.run_streamed needs a running event loop (call it in async code)") from None
        kwargs["context"] = context
        return DurableStreamedRun(*_start(starting_agent, input, kwargs, loop))

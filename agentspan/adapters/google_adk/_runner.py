"""A drop-in for ADK's ``Runner`` and ``InMemoryRunner``: the same calls, each one a durable execution.

```python
from agentspan.adapters.google_adk import Runner   # instead of: from google.adk.runners import Runner

runner = Runner(agent=root_agent, app_name="weather", session_service=session_service)
async for event in runner.run_async(user_id="u1", session_id="s1", new_message=message):
    ...
```

The classes are ADK's own, with the same constructor; only ``run_async`` (and so ``run``, which ADK
builds on it) changes. Each call starts an execution (or, when an unfinished one exists for the same
call because its process died, resumes it) that a worker thread of this process runs with ADK's own
``Runner``: every model call and tool call is a durable step, ADK's ids are deterministic, and ADK's
``Event``\\ s reach the caller as the run makes them (a resumed run yields the events of the calls it
replays first, instantly, so the caller sees the whole run).

The run works on a copy of the session in memory (its events and state when the call was made); the
events the run adds are appended to the caller's session service once it ends, each once: a resumed
run never appends an event twice (ADK's event ids are deterministic, and an event already in the
session is skipped).

The execution input identifies the call: ``{"app_name", "user_id", "session_id", "after", "message",
"state_delta", "invocation_id"}``, where ``after`` is the id of the session's last event when the call
was made (``None`` for an empty session) and ``message`` is ``new_message`` as JSON. The same message
sent twice in one session is two calls (the session has grown in between); a program that crashed and
runs again makes the same call (nothing was appended yet) and resumes. Executions are named after the
runner's ``app_name`` and kept by the process-wide runtime (see :func:`use_runtime`).
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import threading
import weakref
from collections.abc import AsyncGenerator, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from google.adk import runners as adk_runners
from google.adk.agents.run_config import RunConfig
from google.adk.errors.session_not_found_error import SessionNotFoundError
from google.adk.events.event import Event
from google.adk.sessions.base_session_service import BaseSessionService
from google.adk.sessions.in_memory_session_service import InMemorySessionService
from google.adk.sessions.session import Session
from google.genai import types

from ...durable import ExecutionHandle, FunctionDefinition
from ...durable._codec import Codec, to_json
from ...durable._context import current_context
from ...durable._definitions import _check_name
from ...durable._runtime import find_unfinished
from ...errors import AgentspanError, ConfigurationError
from ...runtime import ExecutionStatus
from .._default_runtime import default_runtime, use_runtime
from ._agent import agent_name, run_output
from ._patch import install
from ._scope import adk_run, raise_if_failed

__all__ = ["InMemoryRunner", "Runner", "call_input", "use_runtime"]

_END = object()


@dataclasses.dataclass
class _Call:
    """One caller's run: what it hands to the worker thread, and what comes back."""

    runner: Runner
    session: Session
    """The caller's session as it was when the call was made."""
    run_config: RunConfig | None
    yield_user_message: bool
    loop: asyncio.AbstractEventLoop
    queue: asyncio.Queue[Any]
    sent: set[str] = dataclasses.field(default_factory=set)
    """Ids of the events handed over (an attempt run again does not hand them over twice)."""
    events: list[Event] | None = None
    error: BaseException | None = None
    done: threading.Event = dataclasses.field(default_factory=threading.Event)

    def emit(self, item: Any) -> None:
        try:
            self.loop.call_soon_threadsafe(self.queue.put_nowait, item)
        except RuntimeError:  # the caller's loop is closed
            pass

    def finish(self, events: list[Event] | None = None, error: BaseException | None = None) -> None:
        self.events, self.error = events, error
        self.done.set()
        self.emit(_END)


_lock = threading.Lock()
_calls: dict[str, _Call] = {}
# Per function name, the runner whose services a run without a waiting caller uses: the last one made
# a call in this process (kept while it lives).
_fallback: weakref.WeakValueDictionary[str, Runner] = weakref.WeakValueDictionary()


@contextmanager
def _registering() -> Iterator[dict[str, _Call]]:
    with _lock:
        yield _calls


def _find(execution_id: str) -> _Call | None:
    with _lock:
        return _calls.get(execution_id)


def _forget(execution_id: str) -> None:
    with _lock:
        _calls.pop(execution_id, None)


def call_input(
    app_name: str,
    user_id: str,
    session: Session,
    new_message: types.Content | None,
    state_delta: dict[str, Any] | None = None,
    invocation_id: str | None = None,
) -> dict[str, Any]:
    """The execution input of a ``run_async`` call on ``session`` (see the module documentation)."""
    message = new_message.model_dump(mode="json", exclude_none=True) if new_message is not None else None
    return {
        "app_name": app_name,
        "user_id": user_id,
        "session_id": session.id,
        "after": session.events[-1].id if session.events else None,
        "message": message,
        "state_delta": to_json(state_delta, "the state_delta of a run") if state_delta else None,
        "invocation_id": invocation_id,
    }


async def _copy(session: Session) -> InMemorySessionService:
    """An in-memory session service holding a copy of ``session`` (its events and state)."""
    sessions = InMemorySessionService()
    await sessions.create_session(
        app_name=session.app_name, user_id=session.user_id, state=dict(session.state), session_id=session.id
    )
    # The events as they are: appending them again would apply their state changes twice.
    sessions.sessions[session.app_name][session.user_id][session.id].events = [
        event.model_copy(deep=True) for event in session.events
    ]
    return sessions


async def _get_session(runner: Runner, user_id: str, session_id: str) -> Session:
    session = await runner.session_service.get_session(app_name=runner.app_name, user_id=user_id, session_id=session_id)
    if session is None:
        if not runner.auto_create_session:
            raise SessionNotFoundError(
                f"session {session_id!r} of user {user_id!r} of app {runner.app_name!r} not found: create it with"
                " the session service's create_session first, or pass auto_create_session=True to the Runner"
            )
        session = await runner.session_service.create_session(
            app_name=runner.app_name, user_id=user_id, session_id=session_id
        )
    return session


async def _append_new(
    service: BaseSessionService, runner: Runner, user_id: str, session_id: str, events: list[Event]
) -> None:
    """Append to the caller's session the run's events it does not hold yet (by id), in order."""
    session = await service.get_session(app_name=runner.app_name, user_id=user_id, session_id=session_id)
    if session is None:
        raise AgentspanError(f"session {session_id!r} of user {user_id!r} is gone: the run's events cannot be kept")
    held = {event.id for event in session.events}
    for event in events:
        if event.id not in held and not event.partial:
            await service.append_event(session, event)


async def _run(
    runner: Runner, call: dict[str, Any], session: Session, found: _Call | None, execution_id: str
) -> list[Event]:
    """One attempt: ADK's own Runner on a copy of ``session``; the events it added to the copy."""
    with adk_run(execution_id) as state:
        sessions = await _copy(session)
        inner = adk_runners.Runner(
            app=runner.app,
            app_name=runner.app_name,
            session_service=sessions,
            artifact_service=runner.artifact_service,
            memory_service=runner.memory_service,
            credential_service=runner.credential_service,
        )
        message = types.Content.model_validate(call["message"]) if call["message"] is not None else None
        async for event in inner.run_async(
            user_id=call["user_id"],
            session_id=call["session_id"],
            invocation_id=call["invocation_id"],
            new_message=message,
            state_delta=call["state_delta"],
            run_config=found.run_config if found is not None else None,
            yield_user_message=found.yield_user_message if found is not None else False,
        ):
            raise_if_failed(state)
            if found is not None and (event.partial or event.id not in found.sent):
                if not event.partial:
                    found.sent.add(event.id)
                found.emit(event)
        raise_if_failed(state)
        # Not inner.close(): the toolsets and plugins are the caller's runner's, closed with it.
        copy = await sessions.get_session(
            app_name=runner.app_name, user_id=call["user_id"], session_id=call["session_id"]
        )
        assert copy is not None
        return list(copy.events[len(session.events) :])


def runner_function(runner: Runner) -> Callable[..., Any]:
    """The durable function that runs ``run_async`` calls of ``runner`` (named after its ``app_name``)."""
    install()
    name = _check_name(agent_name(runner.app, runner.app_name))
    with _lock:
        _fallback[name] = runner

    async def entry(**call: Any) -> dict[str, Any]:
        if set(call) != {"app_name", "user_id", "session_id", "after", "message", "state_delta", "invocation_id"}:
            raise ConfigurationError(
                f"execution {name!r} expects the input of a Runner.run_async call (made by the drop-in Runner),"
                f" not one with the keys {sorted(call)}"
            )
        install()
        context = current_context()
        execution_id = context[0].execution_id if context is not None else "local"
        found = _find(execution_id)
        with _lock:
            target = found.runner if found is not None else _fallback.get(name)
        if target is None:
            raise AgentspanError(
                f"execution {execution_id} is a Runner.run_async call of app {name!r}, and no Runner of that app"
                " is alive in this process to run it (and keep its events in that Runner's session service)"
            )
        try:
            if found is not None:
                session = found.session
            else:  # nobody waits for this run here: read and keep the session from this thread
                session = await _get_session(target, call["user_id"], call["session_id"])
            # In a task of its own (a copy of this context): ADK's id provider is reset at the end.
            task = asyncio.get_running_loop().create_task(
                _run(target, call, session, found, execution_id), context=contextvars.copy_context()
            )
            events = await task
            if found is None:
                await _append_new(target.session_service, target, call["user_id"], call["session_id"], events)
            state = dict(session.state)
            for event in events:
                state.update(event.actions.state_delta or {})
            output = run_output(target.app, events, state)
        except BaseException as exc:
            if found is not None:
                found.finish(error=exc)
            raise
        if found is not None:
            found.finish(events)
        return output

    entry.__agentspan_function__ = FunctionDefinition(  # type: ignore[attr-defined]
        name=name, fn=entry, strict=False, codec=Codec(None), framework="google_adk"
    )
    return entry


def _start(runner: Runner, data: dict[str, Any], call: _Call) -> tuple[ExecutionHandle, list[Event] | None]:
    """Create the execution of the call (or find the unfinished one); or, when the call already ran to
    its end and only its events were not kept (the process died in between), those events."""
    fn = runner_function(runner)
    name = FunctionDefinition.of(fn).name
    runtime = default_runtime()
    with _registering() as calls:
        execution = find_unfinished(runtime.client, name, data, exclude=calls)
        if execution is None:
            done = runtime.client.list_executions(status=ExecutionStatus.COMPLETED, name=name, limit=100).items
            finished = next((e for e in done if e.input == data), None)
            if finished is not None:
                events = [Event.model_validate(e) for e in (finished.output or {}).get("events", [])]
                return ExecutionHandle(runtime.client, finished.id), events
        execution = execution or runtime.client.create_execution(name, data, framework="google_adk")
        calls[execution.id] = call
    runtime.ensure_worker(fn)
    return ExecutionHandle(runtime.client, execution.id), None


def _settled(handle: ExecutionHandle, call: _Call) -> None:
    """Return once the execution's end is on record (a caller that goes on leaves no run to repeat)."""
    execution, after = handle.get(), 0
    while execution.status is ExecutionStatus.RUNNING or execution.status is ExecutionStatus.QUEUED:
        if call.done.is_set() and call.error is not None:
            return
        events = handle.client.wait_events(handle.execution_id, after=after, timeout=1.0)
        after = events[-1].id if events else after
        execution = handle.get()


class _Durable:
    """``run_async`` as a durable execution (mixed into ADK's runner classes)."""

    async def run_async(
        self: Any,
        *,
        user_id: str,
        session_id: str,
        invocation_id: str | None = None,
        new_message: types.Content | None = None,
        state_delta: dict[str, Any] | None = None,
        run_config: RunConfig | None = None,
        yield_user_message: bool = False,
        abort_signal: asyncio.Event | None = None,
    ) -> AsyncGenerator[Event, None]:
        """Like ADK's ``Runner.run_async``: yields ADK's events; the run is a durable execution."""
        if abort_signal is not None:
            raise ConfigurationError(
                "the durable Runner does not take an abort_signal: cancel the execution instead"
                " (runtime.handle(execution_id).cancel(), or `agentspan cancel <execution id>`)"
            )
        if new_message is None and invocation_id is None:
            raise ValueError("Running an agent requires either a new_message or an invocation_id to resume.")
        if new_message is not None and new_message.role != "user":
            new_message = types.Content(role="user", parts=new_message.parts)
        session = await _get_session(self, user_id, session_id)
        data = call_input(self.app_name, user_id, session, new_message, state_delta, invocation_id)
        call = _Call(self, session, run_config, yield_user_message, asyncio.get_running_loop(), asyncio.Queue())
        handle, finished = await asyncio.to_thread(_start, self, data, call)
        if finished is not None:  # ran to its end before: keep its events, and yield them
            await _append_new(self.session_service, self, user_id, session_id, finished)
            for event in finished:
                yield event
            return
        try:
            while True:
                try:
                    item = await asyncio.wait_for(call.queue.get(), 0.5)
                except TimeoutError:
                    status = await asyncio.to_thread(lambda: handle.status)
                    if status.is_terminal and not call.done.is_set():
                        break  # ended elsewhere
                    continue
                if item is _END:
                    break
                yield item
            await asyncio.to_thread(_settled, handle, call)
        finally:
            _forget(handle.execution_id)
        if call.error is not None:
            raise call.error
        events = call.events
        if events is None:  # finished by another process: its events are in the execution's output
            output = await asyncio.to_thread(handle.result, 0)
            events = [Event.model_validate(e) for e in (output or {}).get("events", [])]
            for event in events:
                yield event
        await _append_new(self.session_service, self, user_id, session_id, events)


class Runner(_Durable, adk_runners.Runner):
    """ADK's ``Runner``, each ``run_async`` / ``run`` call a durable execution: see the module
    documentation."""


class InMemoryRunner(_Durable, adk_runners.InMemoryRunner):
    """ADK's ``InMemoryRunner``, each ``run_async`` / ``run`` call a durable execution."""

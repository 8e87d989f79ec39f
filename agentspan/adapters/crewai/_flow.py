"""A CrewAI ``Flow`` as a durable function: CrewAI's own ``kickoff`` runs it, each method call is a step.

```python
result = durable(flow).kickoff(inputs={"topic": "AI"})   # what flow.kickoff returns
flow.state                                               # the run's final state
```

The execution input is ``{"inputs": {...}}`` (what ``kickoff(inputs=...)`` puts into the state); the
output is ``{"output": <the final method's return as text>, "structured": <its JSON when it is not a
string>, "finish_reason": "stop", "flow_output": <its recorded value>, "state": <the final state>}``.

Every execution of a flow method (``@start``, ``@listen``, ``@router``; sync or async) is a
``flow_method`` step named after the method: it records what the method returned and the state after
it, so a replay hands back the return value and puts back the state fields the method changed without
running the method body again. A router's return value is its route, so a replayed router takes the
same route. Model, tool, crew and task calls inside a method are steps nested under it. A method's step
is keyed by its name and how many times it has run before in this execution (cycles run a method
again), never by when it started: listeners run side by side and may finish in any order.

Each run kicks off a fresh copy of the flow (:func:`fresh_flow`): the flow's attributes (constructor
arguments, LLMs, crews) are shared with the copy, containers copied one level, while CrewAI's run
bookkeeping and the state are new. The state starts from the flow's initial state, so executions
running side by side in one worker never share it, and a rerun in another process starts from the
same state. Its ``id`` is made from the execution's id: the same on every attempt of one execution.

``@human_feedback`` asks for feedback with a durable wait (see :func:`feedback_request`) instead of
reading the terminal; a feedback provider given to the decorator (or ``flow_config.hitl_provider``)
is left to do its own work.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import functools
import json
import re
import uuid
import weakref
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from pydantic import BaseModel

from ...durable import FunctionDefinition, Runtime, run_step, run_step_async
from ...durable._codec import Codec, to_json
from ...durable._context import current_context
from ...durable._definitions import _check_name
from ...errors import ConfigurationError, InvalidInputError, NotJSONError
from .._typed import decode_typed, encode_typed, model_path
from ._crew import check_inputs
from ._dropin import DurableTarget, outcome, start
from ._guard import guarded_run
from ._human import ask_human, human_input
from ._patch import install
from ._scope import crewai_run, raise_if_failed

__all__ = [
    "DurableFlow",
    "durable_method",
    "feedback_request",
    "flow_function",
    "flow_name",
    "fresh_flow",
    "is_flow",
    "run_flow",
]

_functions: weakref.WeakKeyDictionary[Any, dict[str, Callable[..., Any]]] = weakref.WeakKeyDictionary()


def is_flow(obj: Any) -> bool:
    """Whether ``obj`` is a CrewAI ``Flow`` instance."""
    from crewai.flow.runtime import Flow

    return isinstance(obj, Flow)


def flow_name(flow: Any, name: str | None = None) -> str:
    """The name runs of ``flow`` are created and claimed by: ``name``, else the flow's ``name``, else its
    class name, made valid."""
    if name:
        return name
    found = getattr(flow, "name", None) or type(flow).__name__
    return re.sub(r"[^A-Za-z0-9_.:/-]", "-", str(found))[:200] or "flow"


# --- the state ------------------------------------------------------------------------------------------------
def _state_class(state: BaseModel) -> str:
    """Where the state's class is found again; for ``Flow[MyState]`` CrewAI subclasses ``MyState`` inside
    a function, so the path is ``MyState``'s."""
    from crewai.flow.runtime import FlowState

    for cls in type(state).__mro__:
        if issubclass(cls, BaseModel) and cls not in (BaseModel, FlowState) and "<locals>" not in cls.__qualname__:
            return model_path(cls)
    return model_path(type(state))


def _state_json(flow: Any, what: str) -> dict[str, Any]:
    """The flow's state as recorded: ``{"model": <class path> | None, "value": <JSON>}``."""
    state = flow._state
    if isinstance(state, BaseModel):
        try:
            value = state.model_dump(mode="json")
        except Exception as exc:  # a field pydantic cannot serialise
            raise NotJSONError(f"{what} cannot be stored as JSON ({exc}); keep the state JSON data") from None
        return {"model": _state_class(state), "value": to_json(value, what)}
    return {"model": None, "value": to_json(state, what)}


def _changes(before: Any, after: Any) -> tuple[list[str], list[str]]:
    """The top-level state fields a method set (changed or added) and removed."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return sorted(after) if isinstance(after, dict) else [], []
    changed = [key for key, value in after.items() if key not in before or before[key] != value]
    return changed, [key for key in before if key not in after]


def _restore(flow: Any, state: dict[str, Any], changed: Sequence[str], removed: Sequence[str]) -> None:
    """Put back the fields a replayed method set, leaving what concurrent methods set alone."""
    value = state.get("value")
    if not isinstance(value, dict):
        return
    current = flow._state
    if isinstance(current, BaseModel):
        rebuilt = type(current).model_validate(value)
        for field in changed:
            if field in type(current).model_fields:
                setattr(current, field, getattr(rebuilt, field))
    elif isinstance(current, dict):
        for field in changed:
            current[field] = copy.deepcopy(value[field])
        for field in removed:
            current.pop(field, None)


def _set_state(flow: Any, state: dict[str, Any]) -> None:
    """Make ``flow``'s state the recorded final ``state`` (a whole new state, as CrewAI's own restore does)."""
    value = state.get("value")
    current = flow._state
    if isinstance(current, dict) and isinstance(value, dict):
        current.clear()
        current.update(value)
    elif isinstance(current, BaseModel) and isinstance(value, dict):
        flow._state = type(current).model_validate(value)


# --- a method's execution as a step ----------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Outcome:
    result: Any
    state: dict[str, Any]
    changed: list[str]
    removed: list[str]


class _OutcomeCodec(Codec):
    """What a method returned (pydantic models by class path) and the state after it."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(None)

    def encode(self, value: Any, what: str) -> Any:
        outcome: _Outcome = value
        return {
            **encode_typed(outcome.result, what),
            "state": outcome.state,
            "changed": outcome.changed,
            "removed": outcome.removed,
        }

    def decode(self, data: Any) -> Any:
        return _Outcome(
            decode_typed(data),
            dict(data.get("state") or {}),
            list(data.get("changed") or []),
            list(data.get("removed") or []),
        )


_OUTCOME = _OutcomeCodec()


def _shown(value: Any) -> Any:
    """``value`` as JSON for the journal's display of a step's input (a placeholder when it is not JSON)."""
    try:
        return to_json(value, "a flow method's argument")
    except NotJSONError:
        return f"<{type(value).__qualname__}>"


def _outcome(flow: Any, name: str, before: dict[str, Any], result: Any) -> _Outcome:
    after = _state_json(flow, f"the flow's state after method {name!r}")
    changed, removed = _changes(before.get("value"), after.get("value"))
    return _Outcome(result, after, changed, removed)


def durable_method(flow: Any, name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    """``method`` (sync or async, as CrewAI is about to call it) as a durable step of the current run."""
    identity = {"flow_method": name}

    def request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        return {"method": name, "args": [_shown(a) for a in args], "kwargs": {k: _shown(v) for k, v in kwargs.items()}}

    def finish(outcome: _Outcome, ran: bool) -> Any:
        if not ran:  # replayed: the body did not run, so its effect on the state is put back
            _restore(flow, outcome.state, outcome.changed, outcome.removed)
        return outcome.result

    if asyncio.iscoroutinefunction(method):

        @functools.wraps(method)
        async def run_async(*args: Any, **kwargs: Any) -> Any:
            ran = False

            async def call() -> _Outcome:
                nonlocal ran
                ran = True
                before = _state_json(flow, f"the flow's state before method {name!r}")
                return _outcome(flow, name, before, await method(*args, **kwargs))

            step: Callable[[], Awaitable[_Outcome]] = call
            outcome = await run_step_async(
                "flow_method", name, request(args, kwargs), step, codec=_OUTCOME, identity=identity, ordered=False
            )
            return finish(outcome, ran)

        return run_async

    @functools.wraps(method)
    def run_sync(*args: Any, **kwargs: Any) -> Any:
        ran = False

        def call() -> _Outcome:
            nonlocal ran
            ran = True
            before = _state_json(flow, f"the flow's state before method {name!r}")
            result = method(*args, **kwargs)
            if asyncio.iscoroutine(result):  # a sync method returning a coroutine: CrewAI awaits it
                result = asyncio.run(result)  # this thread (CrewAI's to_thread) has no loop of its own
            return _outcome(flow, name, before, result)

        outcome = run_step(
            "flow_method", name, request(args, kwargs), call, codec=_OUTCOME, identity=identity, ordered=False
        )
        return finish(outcome, ran)

    return run_sync


def _text(value: Any) -> str:
    """``value`` as text: itself when a string, else its JSON (its ``str`` when it has none)."""
    if isinstance(value, str):
        return value
    if isinstance(value, BaseModel):
        return value.model_dump_json()
    try:
        return json.dumps(to_json(value, "a flow method's result"), ensure_ascii=False)
    except NotJSONError:
        return str(value)


def feedback_request(
    flow: Any,
    message: str,
    output: Any,
    metadata: dict[str, Any] | None = None,
    emit: Sequence[str] | None = None,
    method_name: str = "",
) -> str:
    """``@human_feedback``'s request inside an Agentspan run: a durable wait for the reviewer's answer
    (what CrewAI's ``Flow._request_human_feedback`` reads from the terminal). An empty answer accepts."""
    details = {
        "flow": flow_name(flow),
        "method": str(method_name),
        "output": _text(output),
        "message": message,
        "emit": list(emit) if emit else None,
        "metadata": _shown(metadata or {}),
    }
    return ask_human(details).strip()


# --- running a flow ---------------------------------------------------------------------------------------
def fresh_flow(flow: Any, state_id: str | None = None) -> Any:
    """A copy of ``flow`` to run once: the same attributes (containers copied one level), new run
    bookkeeping, methods bound to the copy, and the flow's initial state (its ``id`` is ``state_id``
    when given).

    CrewAI keeps a run's state and bookkeeping on the instance, and a second ``kickoff`` on one
    instance continues from the first one's state; calling the class again would lose the constructor
    arguments, so the instance is copied and CrewAI's own initialisation runs again on the copy.
    """
    run = copy.copy(flow)
    for attribute, value in list(run.__dict__.items()):
        if isinstance(value, list | dict | set):
            run.__dict__[attribute] = copy.copy(value)
    run.__dict__.pop("_flow_post_init_done", None)
    run.__dict__.update(human_feedback_history=[], last_human_feedback=None)
    run.__dict__["stream"] = False  # the run is read to its end here: its result is what is recorded
    object.__setattr__(run, "__pydantic_private__", None)
    run.model_post_init(None)  # pydantic sets the private attributes' defaults, then CrewAI initialises
    if state_id is not None:
        run._stamp_state_id(state_id)
    return run


def _state_id() -> str | None:
    """A ``state.id`` for this execution, the same on every attempt (CrewAI makes a random one)."""
    found = current_context()
    return None if found is None else str(uuid.uuid5(uuid.NAMESPACE_URL, f"agentspan:{found[0].execution_id}"))


def _check(inputs: Any) -> dict[str, Any]:
    if inputs is not None and not isinstance(inputs, dict):
        raise InvalidInputError(
            'a flow\'s inputs are a JSON object of state values, e.g. {"topic": "AI"}, passed as'
            f" kickoff(inputs={{...}}), not {type(inputs).__name__}"
        )
    found: dict[str, Any] = check_inputs(inputs)
    return found


def _final_output(found: Any, run: Any) -> dict[str, Any]:
    from crewai.flow.async_feedback import HumanFeedbackPending

    if isinstance(found, HumanFeedbackPending):
        raise ConfigurationError(
            f"the flow paused for human feedback in method {found.context.method_name!r} through a feedback"
            " provider that answers later; inside an Agentspan run leave @human_feedback without a provider:"
            " the request is then a durable wait answered with `agentspan executions respond`"
        )
    recorded = encode_typed(found, "what the flow returned")
    return {
        "output": _text(found) if found is not None else "",
        "structured": None if isinstance(found, str) else recorded["value"],
        "finish_reason": "stop",
        "flow_output": recorded,
        "state": _state_json(run, "the flow's final state"),
    }


def run_flow(flow: Any, inputs: Any) -> dict[str, Any]:
    """Kick off a fresh copy of ``flow`` inside an Agentspan run (the body of the durable function)."""
    install()
    found = _check(inputs)
    run = fresh_flow(flow, _state_id())
    with crewai_run() as state, human_input():
        final = run.kickoff(inputs=found or None)
    raise_if_failed(state)
    return _final_output(final, run)


def flow_function(flow: Any, name: str | None = None) -> Callable[..., Any]:
    """The durable function a worker runs for ``flow`` (the same one each time for the same flow and name).

    Args:
        flow: The flow instance; each run kicks off a fresh copy of it (see :func:`fresh_flow`).
        name: The name executions are created and claimed by (see :func:`flow_name`).
    """
    if not is_flow(flow):
        raise ConfigurationError(
            f"expected a CrewAI Flow instance, not {type(flow).__name__}"
            + (" (a Flow class: pass an instance, MyFlow())" if isinstance(flow, type) else "")
        )
    install()
    name = _check_name(flow_name(flow, name))
    known = _functions.setdefault(flow, {})
    if name in known:
        return known[name]

    def entry(inputs: Any = None, guardrails: list[str] | None = None) -> dict[str, Any]:
        return guarded_run(name, guardrails, inputs, lambda found: run_flow(flow, found))

    entry.__agentspan_function__ = FunctionDefinition(  # type: ignore[attr-defined]
        name=name, fn=entry, strict=False, codec=Codec(None), framework="crewai"
    )
    known[name] = entry
    return entry


class DurableFlow(DurableTarget):
    """A flow whose kickoffs are durable executions; see :func:`~._dropin.durable`."""

    def __init__(self, flow: Any, runtime: Runtime | None, name: str | None) -> None:
        super().__init__(flow, runtime, flow_function(flow, name))
        self.flow = flow
        """The flow itself; its ``state`` is the last run's final state."""

    @property
    def state(self) -> Any:
        """The flow's state: after a kickoff, that run's final state."""
        return self.flow.state

    def _run(self, inputs: Any) -> Any:
        output = outcome(start(self.runtime, self._fn, {"inputs": _check(inputs)}))
        _set_state(self.flow, output["state"])
        return decode_typed(output["flow_output"])

    def kickoff(self, inputs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Like ``Flow.kickoff``: what the flow's final method returned."""
        _no_options(kwargs, "kickoff")
        return self._run(inputs)

    async def kickoff_async(self, inputs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Like ``Flow.kickoff_async`` (the run goes through ``Flow.kickoff`` in a worker thread)."""
        _no_options(kwargs, "kickoff_async")
        return await asyncio.to_thread(self._run, inputs)

    async def akickoff(self, inputs: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Like ``Flow.akickoff``; the same as :meth:`kickoff_async`."""
        _no_options(kwargs, "akickoff")
        return await asyncio.to_thread(self._run, inputs)


def _no_options(kwargs: dict[str, Any], method: str) -> None:
    if kwargs:
        raise ConfigurationError(
            f"durable {method}() takes the inputs only, not {', '.join(sorted(kwargs))}: a durable run replays"
            " from its own journal (no checkpoints or restored state ids)"
        )

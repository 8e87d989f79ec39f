"""Tool calls as durable steps: every ``run_async`` of every ADK tool class, with what the tool did to
its ``EventActions``.

A call is keyed by its tool and the model's function-call id (deterministic inside a run: the model's
responses are replayed and ADK's own ids come from the run's id provider), so parallel calls that
finish in another order on a rerun still find their records. The step records the tool's result and
the changes it made to ``tool_context.actions`` (``state_delta``, ``artifact_delta``,
``transfer_to_agent``, ``transfer_reason``, ``escalate``, ``skip_summarization``) and the content of
the artifacts it saved; a replay hands back the result, saves those artifacts into the resumed run's
artifact service and makes the same changes, so the session's state and history after a resume equal an
uninterrupted run's. The patch sits below ADK's tool callbacks, so the user's
``before_tool_callback`` / ``after_tool_callback`` and plugins run on a replayed call as on a live one.

A tool that runs an agent (``AgentTool``) runs that agent's model and tool calls inside its own step:
they are nested steps, so an interrupted inner run replays its finished calls.

A tool that asks to confirm its own call (``tool_context.request_confirmation``) records the request
with its step; the run then waits for the decision and runs the tool again, as a second step, with
``tool_context.tool_confirmation`` set (see :mod:`._approval`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

from google.genai import types

from ...durable import run_step_async
from ...durable._codec import Codec, to_json
from ...errors import NotJSONError
from .._typed import decode_typed, encode_typed
from . import _approval
from ._scope import RunState, raise_if_failed, stable_call_id

__all__ = ["same_tool", "tool_call"]

# The tool running as a step right now: a subclass's ``run_async`` calling its parent's (both patched)
# is one call.
_IN_TOOL: contextvars.ContextVar[object | None] = contextvars.ContextVar("agentspan_google_adk_tool", default=None)
_SCALARS = ("transfer_to_agent", "transfer_reason", "escalate", "skip_summarization")
_MISSING = object()


def same_tool(tool: object) -> bool:
    """Whether ``tool`` is the one whose step is running (its inner methods are part of that step)."""
    return _IN_TOOL.get() is tool


class _Outcome:
    __slots__ = ("effects", "result")

    def __init__(self, result: Any, effects: dict[str, Any]) -> None:
        self.result = result
        self.effects = effects


class _OutcomeCodec(Codec):
    """A tool's result (tagged with its pydantic class when it is a model) and its effects."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(None)

    def encode(self, value: Any, what: str) -> Any:
        outcome: _Outcome = value
        data = encode_typed(outcome.result, what)
        if outcome.effects:
            data["actions"] = to_json(outcome.effects, f"{what} (the state and actions it set)")
        return data

    def decode(self, data: Any) -> Any:
        return _Outcome(decode_typed(data), dict(data.get("actions") or {}))


_OUTCOME = _OutcomeCodec()


def _snapshot(actions: Any) -> dict[str, Any]:
    return {
        "state_delta": dict(actions.state_delta),
        "artifact_delta": dict(actions.artifact_delta),
        **{name: getattr(actions, name, None) for name in _SCALARS},
    }


def _changes(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What the tool changed: new or changed entries of the deltas, and the flags it set."""
    changes: dict[str, Any] = {}
    for name in ("state_delta", "artifact_delta"):
        old = before[name]
        changed = {k: v for k, v in after[name].items() if old.get(k, _MISSING) != v}
        if changed:
            changes[name] = changed
    for name in _SCALARS:
        if after[name] != before[name]:
            changes[name] = after[name]
    return changes


def _restore(tool_context: Any, effects: dict[str, Any]) -> None:
    """Make the changes a recorded call made: state through ``tool_context.state`` (so the session's
    current state sees them, as it saw the live call's writes), the rest on its actions."""
    if effects.get("state_delta"):
        tool_context.state.update(effects["state_delta"])
    actions = tool_context.actions
    if effects.get("artifact_delta"):
        actions.artifact_delta.update(effects["artifact_delta"])
    for name in _SCALARS:
        if name in effects:
            setattr(actions, name, effects[name])


async def _saved_artifacts(tool_context: Any, delta: dict[str, Any]) -> dict[str, list[Any]]:
    """The content of the artifacts a call saved, every version up to the one in its ``artifact_delta``
    (a resumed run's artifact service starts empty), as JSON."""
    saved: dict[str, list[Any]] = {}
    for filename, version in delta.items():
        parts = [await tool_context.load_artifact(filename, version=v) for v in range(int(version) + 1)]
        saved[filename] = [None if p is None else p.model_dump(mode="json", exclude_none=True) for p in parts]
    return saved


async def _save_artifacts(tool_context: Any, saved: dict[str, list[Any]]) -> None:
    """Save a recorded call's artifacts into this attempt's artifact service, in their version order,
    skipping the versions it already holds (saved by earlier replayed calls)."""
    for filename, parts in saved.items():
        latest = await tool_context.get_artifact_version(filename)
        for part in parts[0 if latest is None else latest.version + 1 :]:
            await tool_context.save_artifact(filename, types.Part.model_validate(part or {}))


def _arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    tool_args = kwargs.get("args", args[0] if args else None)
    tool_context = kwargs.get("tool_context", args[1] if len(args) > 1 else None)
    return tool_args, tool_context


async def tool_call(
    state: RunState, tool: Any, wrapped: Callable[..., Awaitable[Any]], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``await tool.run_async(args=..., tool_context=...)`` as a durable step."""
    raise_if_failed(state)
    name = str(getattr(tool, "name", type(tool).__name__))
    tool_args, tool_context = _arguments(args, kwargs)
    arguments = to_json(tool_args, f"the arguments of tool {name!r}", check=False)
    call_id = getattr(tool_context, "function_call_id", None)
    stable = stable_call_id(state, call_id) if isinstance(call_id, str) and call_id else None
    request = {"tool": name, "arguments": arguments, "call_id": stable}
    identity = {"call_id": stable} if stable else {"tool": name, "arguments": arguments}
    actions = getattr(tool_context, "actions", None)

    async def call() -> _Outcome:
        before = _snapshot(actions) if actions is not None else None
        asked = set(_approval.requested(tool_context))
        token = _IN_TOOL.set(tool)
        try:
            result = await wrapped(*args, **kwargs)
        finally:
            _IN_TOOL.reset(token)
        effects = _changes(before, _snapshot(tool_context.actions)) if before is not None else {}
        if effects.get("artifact_delta"):
            effects["artifacts"] = await _saved_artifacts(tool_context, effects["artifact_delta"])
        return _Outcome(result, {**effects, **_approval.new_requests(asked, tool_context)})

    async def step(request: dict[str, Any], identity: dict[str, Any]) -> Any:
        ran: list[bool] = []

        async def first_run() -> _Outcome:
            ran.append(True)
            return await call()

        try:
            outcome: _Outcome = await run_step_async(
                "tool", name, request, first_run, codec=_OUTCOME, identity=identity, ordered=stable is None
            )
        except NotJSONError as exc:
            error = _unstorable(name, exc)
            state.fail(error)
            raise error from None
        if not ran and tool_context is not None:  # replayed: the live call made these changes itself
            await _save_artifacts(tool_context, outcome.effects.get("artifacts") or {})
            _restore(tool_context, outcome.effects)
            _approval.restore_requests(tool_context, outcome.effects)
        # The result as recorded (a live call too), so that a run and its replay go on from the same value.
        return outcome.result

    result = await step(request, identity)
    if _approval.asked_to_confirm(tool_context):  # the tool asked to confirm its call: wait, run it again
        confirmed = {"after_confirmation": True}
        return await _approval.confirm_and_run_again(
            name, arguments, stable, tool_context, lambda: step({**request, **confirmed}, {**identity, **confirmed})
        )
    return result


def _unstorable(name: str, exc: NotJSONError) -> NotJSONError:
    return NotJSONError(
        f"tool {name!r} returned a value that cannot be recorded ({exc.message}); return a dict, text, JSON-compatible"
        " data or a pydantic model",
        execution_id=exc.execution_id,
    )

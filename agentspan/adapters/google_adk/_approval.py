"""ADK's tool confirmation as a durable wait on the server, decided like every framework's approvals.

Inside an Agentspan run, a tool call that needs confirmation does not end the invocation with an
``adk_request_confirmation`` call for a client to answer: the run waits on the signal
``approval:<tool call id>`` (the execution is suspended, holding no process and no lease) and the
decision (``{"approved": true}`` / ``{"approved": false, "reason": "..."}``, checked on delivery by
:mod:`agentspan.runtime._approval`) becomes the call's ``ToolConfirmation``, as ADK's own flow would
set it from the client's answer. A worker then replays the run (finished calls return their recorded
results) and goes on from the decision.

* A tool whose ``check_require_confirmation`` is true (``FunctionTool(require_confirmation=...)``):
  ADK's gate asks for confirmation; the run waits; an approval lets the tool run (once, as a step), a
  rejection never runs it and the model receives ADK's answer for a rejected confirmation,
  ``{"error": "This tool call is rejected."}``, with the decision's ``"reason"`` added when it has one.
* A tool that calls ``tool_context.request_confirmation(hint=..., payload=...)`` itself: its call is
  recorded as a step; the run waits; the tool is then run again (a second step) with
  ``tool_context.tool_confirmation`` set (``confirmed``, the request's ``hint``, and the decision's
  ``"payload"`` if it has one), as ADK re-runs it after the client's answer, and that second result is
  what the model receives. What a rejected tool does is up to the tool, as in ADK.

The waiting step is of kind ``"approval"`` with the call's ``tool``, ``arguments`` and ``call_id``
(the id without the run's tag, also the tool step's), so ``AgentHandle.pending_approvals()``,
``approve`` / ``reject``, ``agentspan signal`` and ``POST /api/executions/{id}/signals/approval:<id>``
decide it.

A long-running tool (``LongRunningFunctionTool``) follows ADK's model too: its call is answered later
by the client with a ``FunctionResponse`` of the call's id. Inside an Agentspan run, once the Runner
stops, every long-running call no user message answered yet waits durably for the signal
``result:<tool call id>`` (a waiting step of kind ``"signal"`` with ``tool``, ``arguments`` and
``call_id``); its payload (any JSON; a value that is not an object is sent as ``{"result": <value>}``)
becomes that ``FunctionResponse``, and the Runner runs on with it. This holds whatever the tool
returned: nothing (ADK then builds no response and stops), or an intermediate status (which the model
has already answered). ADK's own requests (``adk_request_credential``, ``adk_request_input``) and a
second confirmation asked for by a tool that was already run again with a decision are not waited on:
ADK stops the invocation there, and the run ends, as without Agentspan.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from google.adk.tools.tool_confirmation import ToolConfirmation
from google.genai import types

from ...durable._codec import to_json
from ...durable._context import Suspended
from ...durable._definitions import _require
from ...errors import InvalidInputError
from ...runtime._approval import approval_signal, decision_of
from ._scope import current_run, stable_call_id

__all__ = [
    "REJECTED",
    "asked_to_confirm",
    "confirmation_gate",
    "confirm_and_run_again",
    "long_running_results",
    "new_requests",
    "requested",
    "restore_requests",
    "result_signal",
]

REJECTED = "This tool call is rejected."
"""ADK's answer to a call whose confirmation was rejected (``tools/_confirmation_utils.py``)."""
_REQUESTS = "requested_tool_confirmations"


def _wait(name: str, arguments: Any, call_id: str, hint: str) -> tuple[bool, str | None, Any]:
    """Wait durably for the decision on call ``call_id``: (approved, reason, payload)."""
    ctx = _require("a tool confirmation")
    details = {"tool": name, "arguments": arguments, "call_id": call_id, "hint": hint, "framework": "google_adk"}
    payload = ctx.wait_for_signal(approval_signal(call_id), kind="approval", details=details)
    decision = decision_of(payload)
    extra = payload.get("payload") if isinstance(payload, dict) else None
    return decision.approved, decision.reason, extra


def _call_id(tool_context: Any, name: str) -> str:
    call_id = getattr(tool_context, "function_call_id", None)
    if not isinstance(call_id, str) or not call_id:
        raise InvalidInputError(f"tool {name!r} needs confirmation but its call has no id to approve it by")
    return call_id


async def confirmation_gate(
    wrapped: Callable[..., Awaitable[Any]], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """ADK's ``apply_confirmation_gate(tool, function_args, tool_context)``, whose request for
    confirmation becomes a durable wait inside an Agentspan run."""
    response = await wrapped(*args, **kwargs)
    state = current_run()
    if state is None or response is None:
        return response
    tool = kwargs.get("tool", args[0] if args else None)
    function_args = kwargs.get("function_args", args[1] if len(args) > 1 else None)
    tool_context: Any = kwargs.get("tool_context", args[2] if len(args) > 2 else None)
    if not asked_to_confirm(tool_context):
        return response  # not a request (a rejection ADK answered itself, or no request made)
    name = str(getattr(tool, "name", type(tool).__name__))
    request = tool_context.actions.requested_tool_confirmations.pop(tool_context.function_call_id)
    approved, reason, payload = _wait(
        name,
        to_json(function_args, f"the arguments of tool {name!r}", check=False),
        stable_call_id(state, _call_id(tool_context, name)),
        request.hint,
    )
    tool_context.tool_confirmation = ToolConfirmation(hint=request.hint, confirmed=approved, payload=payload)
    if approved:
        return None  # the tool runs
    return {"error": REJECTED} if reason is None else {"error": REJECTED, "reason": reason}


def requested(tool_context: Any) -> dict[str, Any]:
    """The confirmations requested on ``tool_context``'s actions, by function-call id."""
    actions = getattr(tool_context, "actions", None)
    found = getattr(actions, _REQUESTS, None)
    return found if isinstance(found, dict) else {}


def new_requests(before: set[str], tool_context: Any) -> dict[str, Any]:
    """The effect to record for the confirmations a tool requested while it ran (not in ``before``)."""
    found = {k: v.model_dump(mode="json") for k, v in requested(tool_context).items() if k not in before}
    return {_REQUESTS: found} if found else {}


def restore_requests(tool_context: Any, effects: dict[str, Any]) -> None:
    """Make the confirmation requests a recorded call made."""
    for call_id, request in (effects.get(_REQUESTS) or {}).items():
        requested(tool_context)[call_id] = ToolConfirmation.model_validate(request)


def asked_to_confirm(tool_context: Any) -> bool:
    """Whether the tool, running without a confirmation, asked for one of its own call."""
    call_id = getattr(tool_context, "function_call_id", None)
    return tool_context is not None and tool_context.tool_confirmation is None and call_id in requested(tool_context)


async def confirm_and_run_again(
    name: str, arguments: Any, stable: str | None, tool_context: Any, run_again: Callable[[], Awaitable[Any]]
) -> Any:
    """For a tool that asked for confirmation of its own call (:func:`asked_to_confirm`): wait for the
    decision, then run it again with ``tool_context.tool_confirmation`` set; its result."""
    call_id = tool_context.function_call_id
    request = tool_context.actions.requested_tool_confirmations.pop(call_id)
    approved, _, payload = _wait(name, arguments, stable or _call_id(tool_context, name), request.hint)
    tool_context.tool_confirmation = ToolConfirmation(
        hint=request.hint, confirmed=approved, payload=payload if payload is not None else request.payload
    )
    return await run_again()


# --- long-running tools ----------------------------------------------------------------------------------------
RESULT_PREFIX = "result:"
"""The signal that delivers a long-running tool call's final result: ``result:<tool call id>``."""


def result_signal(call_id: str) -> str:
    """The signal the final result of long-running call ``call_id`` is delivered as."""
    return f"{RESULT_PREFIX}{call_id}"


def _unanswered(events: list[Any]) -> list[Any]:
    """The long-running calls (``event.long_running_tool_ids``) no user message answered yet, oldest first.
    ADK's own requests (``adk_request_confirmation``, ``adk_request_credential``...) are not waited on."""
    answered = {r.id for e in events if e.author == "user" for r in e.get_function_responses()}
    return [
        call
        for event in events
        if event.long_running_tool_ids
        for call in event.get_function_calls()
        if call.id in event.long_running_tool_ids
        and call.id not in answered
        and not str(call.name).startswith("adk_request_")
    ]


def long_running_results(events: list[Any]) -> Any | None:
    """The message answering every long-running call of ``events`` left unanswered, with the final
    results delivered as their ``result:<call id>`` signals (waited for durably, all at once); ``None``
    when no call is left unanswered.

    This is ADK's own model: the client answers a long-running call later with a ``FunctionResponse``
    of the call's id. A result that is not a JSON object is sent as ``{"result": <value>}``."""
    state = current_run()
    calls = _unanswered(events) if state is not None else []
    if state is None or not calls:
        return None
    ctx = _require("a long-running tool's result")
    parts: list[Any] = []
    suspended: BaseException | None = None
    for call in calls:
        stable = stable_call_id(state, str(call.id))
        details = {"tool": call.name, "arguments": to_json(dict(call.args or {}), "a tool's arguments", check=False),
                   "call_id": stable}  # fmt: skip
        try:
            result = ctx.wait_for_signal(result_signal(stable), details=details)
        except Suspended as exc:  # wait for every unanswered call at once, so all are visible
            suspended = suspended or exc
            continue
        response = result if isinstance(result, dict) else {"result": result}
        parts.append(
            types.Part(function_response=types.FunctionResponse(id=call.id, name=call.name, response=response))
        )
    if suspended is not None:
        raise suspended
    return types.Content(role="user", parts=parts)

"""Guardrails on a framework run: its prompt checked before the framework runs, its final answer after.

``runtime.run(graph_or_agent_or_crew, ..., guardrails=[...])`` hands the guardrails to the durable
function of the run: they are code, so they cannot travel in the execution input. Their names do
(``"guardrails": [names]``): a run started with other guardrails is another execution, and a process
started again with the same guardrails resumes the same one. The guardrail objects are registered in
this process under the function's name and those names; the function finds them when the worker runs
the execution. Every check is a recorded step (see :class:`~agentspan.agents._guarding.Guarding`).
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from ..agents._guarding import Guarding, check_guardrails, retry_request
from ..agents._guardrail import Guardrail
from ..errors import ConfigurationError

__all__ = ["check_answer", "check_answer_async", "guarded_input", "guarding_of"]

R = TypeVar("R")
_lock = threading.Lock()
_registered: dict[str, dict[tuple[str, ...], tuple[Guardrail, ...]]] = {}


def guarded_input(
    data: dict[str, Any], guardrails: Sequence[Any] | None, *, function_name: str, retry: str | None = None
) -> dict[str, Any]:
    """The execution input ``data`` of a run of ``function_name`` with ``guardrails``, registered here.

    ``retry`` (when set) says why this framework cannot ask again: ``on_fail="retry"`` is then refused.
    Without guardrails ``data`` is returned unchanged, so unguarded runs keep their inputs (and resume).
    """
    found = check_guardrails(guardrails or ())
    if not found:
        return data
    if retry is not None:
        for guardrail in found:
            if guardrail.on_fail == "retry" and guardrail.position == "output":
                raise ConfigurationError(
                    f"guardrail {guardrail.name}: on_fail='retry' is not supported here ({retry});"
                    " use on_fail='fix', 'raise' or 'human'"
                )
    names = tuple(g.name for g in found)
    with _lock:
        # The latest registration of the same names wins: guardrails are identified by their names.
        _registered.setdefault(function_name, {})[names] = found
    return {**data, "guardrails": list(names)}


def guarding_of(function_name: str, names: Any, framework: str) -> Guarding | None:
    """The guardrails an execution of ``function_name`` was started with (``None`` without any)."""
    if not names:
        return None
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ConfigurationError(f"an execution's guardrails are a list of guardrail names, not {names!r}")
    with _lock:
        found = _registered.get(function_name, {}).get(tuple(names))
    if found is None:
        raise ConfigurationError(
            f"this execution of {function_name} was started with the guardrails {', '.join(names)}, which this"
            " process does not have: run it from a process that passes the same guardrails"
            " (runtime.run(..., guardrails=[...]))"
        )
    return Guarding(found, agent=function_name, framework=framework)


def check_answer(
    guarding: Guarding, result: R, text_of: Callable[[R], str], again: Callable[[R, str], R]
) -> tuple[R, str]:
    """Check the final answer of ``result``; while a ``retry`` guardrail fails, ``again(result, request)``
    asks the framework again, ``request`` saying why (:func:`retry_request`, as native runs say it).
    Returns the last result and its checked (maybe fixed) text."""
    while True:
        verdict = guarding.check("output", text_of(result))
        if verdict.retry is None:
            return result, verdict.text
        result = again(result, retry_request(verdict.retry))


async def check_answer_async(
    guarding: Guarding, result: R, text_of: Callable[[R], str], again: Callable[[R, str], Awaitable[R]]
) -> tuple[R, str]:
    """:func:`check_answer` from an event loop."""
    while True:
        verdict = await guarding.check_async("output", text_of(result))
        if verdict.retry is None:
            return result, verdict.text
        result = await again(result, retry_request(verdict.retry))

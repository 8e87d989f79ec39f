"""A CrewAI ``Crew`` as a durable function: CrewAI's own ``kickoff`` runs it, each call is a step.

The execution input is ``{"inputs": {...}}`` (the placeholders ``kickoff(inputs=...)`` interpolates),
with ``"mode": "akickoff"`` for a run through CrewAI's native async path and ``"mode": "for_each"``
(``inputs`` a list) for ``kickoff_for_each``; the output is :func:`~._output.run_output`'s. Each run
kicks off a fresh ``crew.copy()``, as ``kickoff_for_each`` does, so executions running side by side
in one worker never share a crew's mutable state. Keys never contain CrewAI's per-run uuids.
"""

from __future__ import annotations

import asyncio
import re
import weakref
from collections.abc import Callable
from typing import Any

from crewai import Crew
from crewai.crews.crew_output import CrewOutput
from crewai.llms.base_llm import BaseLLM

from ...durable import FunctionDefinition, run_step
from ...durable._codec import Codec, to_json
from ...durable._definitions import _check_name
from ...errors import ConfigurationError, InvalidInputError
from ._guard import guarded_run
from ._human import human_input
from ._output import crew_output_json, crew_output_of, run_output
from ._patch import install
from ._scope import crewai_run, raise_if_failed

__all__ = ["MODES", "check_inputs", "crew_function", "crew_name", "execution_input", "is_crew"]

MODES = ("kickoff", "akickoff", "for_each")
_functions: weakref.WeakKeyDictionary[Any, dict[str, Callable[..., Any]]] = weakref.WeakKeyDictionary()


def is_crew(obj: Any) -> bool:
    """Whether ``obj`` is a CrewAI ``Crew``."""
    return isinstance(obj, Crew)


def crew_name(crew: Any, name: str | None = None) -> str:
    """The name runs of ``crew`` are created and claimed by: ``name``, else the crew's ``name`` made valid
    (CrewAI's default is ``"crew"``: give crews served side by side their own names)."""
    if name:
        return name
    return re.sub(r"[^A-Za-z0-9_.:/-]", "-", str(crew.name or "crew"))[:200] or "crew"


def check_inputs(inputs: Any, *, each: bool = False) -> Any:
    """``inputs`` as JSON, or a clear error: a JSON object of placeholder values (a list of them for
    ``kickoff_for_each``)."""
    if each:
        if not isinstance(inputs, list | tuple) or not all(isinstance(item, dict) for item in inputs):
            raise InvalidInputError(
                "kickoff_for_each takes a list of input objects (one dict of placeholder values per run),"
                f" not {type(inputs).__name__}"
            )
        return [to_json(item, "the crew's inputs") for item in inputs]
    if inputs is None:
        return {}
    if not isinstance(inputs, dict):
        raise InvalidInputError(
            'a crew\'s inputs are a JSON object of placeholder values, e.g. {"topic": "AI"},'
            f" not {type(inputs).__name__}"
        )
    return to_json(inputs, "the crew's inputs")


def execution_input(inputs: Any = None, *, mode: str = "kickoff") -> dict[str, Any]:
    """The execution input for kicking off a crew with ``inputs``."""
    if mode not in MODES:
        raise ConfigurationError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
    data: dict[str, Any] = {"inputs": check_inputs(inputs, each=mode == "for_each")}
    if mode != "kickoff":
        data["mode"] = mode
    return data


class _CrewOutputCodec(Codec):
    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(None)

    def encode(self, value: Any, what: str) -> Any:
        return crew_output_json(value)

    def decode(self, data: Any) -> Any:
        return crew_output_of(data)


_CREW_OUTPUT = _CrewOutputCodec()


_LLM_FIELDS = ("llm", "function_calling_llm", "manager_llm", "planning_llm")


def _own_token_counters(run: Crew) -> None:
    """Give the LLMs of a crew's copy token counters of their own, starting from zero.

    ``Crew.copy()`` copies each LLM but not its counters: every copy adds to the same ones, so a run's
    ``token_usage`` would include every run of the crew this process made before it (and those running
    beside it), and a resumed run would report less than the same run uninterrupted. LLMs that shared
    counters in the crew share the new ones, so a run reports what the crew's first kickoff would.
    """
    fresh: dict[int, dict[str, int]] = {}
    for owner in (run, *run.agents, run.manager_agent):
        for field in _LLM_FIELDS:
            llm = vars(owner).get(field) if owner is not None else None  # not getattr: deprecated fields warn
            counters = getattr(llm, "_token_usage", None)
            if isinstance(llm, BaseLLM) and isinstance(counters, dict):
                llm._token_usage = fresh.setdefault(id(counters), dict.fromkeys(counters, 0))


def _kickoff(crew: Crew, inputs: dict[str, Any], mode: str) -> CrewOutput:
    run = crew.copy()
    _own_token_counters(run)
    found = asyncio.run(run.akickoff(inputs=inputs)) if mode == "akickoff" else run.kickoff(inputs=inputs)
    if not isinstance(found, CrewOutput):  # a streaming crew (stream=True): run the stream to its end
        for _ in found:
            pass
        found = found.result
    return found


def _kickoff_step(crew: Crew, index: int, inputs: dict[str, Any]) -> CrewOutput:
    """One input of ``kickoff_for_each`` as a step: its calls are keyed under it."""

    def kickoff() -> CrewOutput:
        return _kickoff(crew, inputs, "kickoff")

    output: CrewOutput = run_step("crew", "kickoff", {"index": index, "inputs": inputs}, kickoff, codec=_CREW_OUTPUT)
    return output


def run_crew(crew: Crew, inputs: Any, mode: str = "kickoff") -> dict[str, Any]:
    """Kick off ``crew`` inside an Agentspan run (the body of the durable function)."""
    install()
    each = mode == "for_each"
    found = check_inputs(inputs, each=each)
    with crewai_run() as state, human_input():
        if each:
            # Each input is its own child scope: its calls are keyed under its own step.
            outputs = [_kickoff_step(crew, index, item) for index, item in enumerate(found)]
        else:
            outputs = [_kickoff(crew, found, mode)]
    raise_if_failed(state)
    if each:
        return {
            "output": "\n\n".join(output.raw for output in outputs),
            "structured": None,
            "finish_reason": "stop",
            "crew_outputs": [crew_output_json(output) for output in outputs],
        }
    return run_output(outputs[0])


def crew_function(crew: Crew, name: str | None = None) -> Callable[..., Any]:
    """The durable function a worker runs for ``crew`` (the same one each time for the same crew and name).

    Args:
        crew: The crew; each run kicks off a copy of it.
        name: The name executions are created and claimed by (see :func:`crew_name`).
    """
    if not is_crew(crew):
        raise ConfigurationError(f"expected a CrewAI Crew, not {type(crew).__name__}")
    install()
    name = _check_name(crew_name(crew, name))
    known = _functions.setdefault(crew, {})
    if name in known:
        return known[name]

    def entry(inputs: Any = None, mode: str = "kickoff", guardrails: list[str] | None = None) -> dict[str, Any]:
        if mode not in MODES:
            raise InvalidInputError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        return guarded_run(name, guardrails, inputs, lambda found: run_crew(crew, found, mode))

    entry.__agentspan_function__ = FunctionDefinition(  # type: ignore[attr-defined]
        name=name, fn=entry, strict=False, codec=Codec(None), framework="crewai"
    )
    known[name] = entry
    return entry

"""What the runtime, the worker and the CLI need of a crew or flow: its durable function, its
execution input, its description (the core reaches CrewAI only through this module)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ...errors import ConfigurationError
from ._crew import check_inputs, crew_function, execution_input, is_crew
from ._guard import RETRY_REFUSAL

__all__ = ["RETRY_REFUSAL", "describe", "execution_input_of", "function_of"]


def _is_flow(target: Any) -> bool:
    from ._flow import is_flow

    return is_flow(target)


def function_of(target: Any, name: str | None = None) -> Callable[..., Any]:
    """The durable function that kicks off ``target`` (a crew or a flow) under ``name``."""
    if is_crew(target):
        return crew_function(target, name)
    if _is_flow(target):
        from ._flow import flow_function

        return flow_function(target, name)
    raise ConfigurationError(f"expected a CrewAI Crew or Flow instance, not {type(target).__name__}")


def execution_input_of(target: Any, inputs: Any) -> dict[str, Any]:
    """The execution input of kicking off ``target`` with ``inputs`` (a JSON object; a clear error else)."""
    if is_crew(target):
        return execution_input(inputs)
    return {"inputs": check_inputs(inputs)}


def describe(target: Any) -> dict[str, Any]:
    """What ``deploy`` registers for a crew (its process, agents and tasks) or a flow (its methods)."""
    if is_crew(target):
        return {
            "framework": "crewai",
            "kind": "crew",
            "process": str(getattr(target.process, "value", target.process)),
            "agents": [str(agent.role) for agent in target.agents],
            "tasks": [str(task.name or task.description)[:200] for task in target.tasks],
        }
    methods = sorted(getattr(target, "_methods", {}) or {})
    return {"framework": "crewai", "kind": "flow", "class": type(target).__name__, "methods": methods}

"""``CrewOutput`` as the execution's output, and back: what a replay or another process hands the caller.

The execution output is what :class:`~agentspan.agents.AgentResult` reads (``output`` is
``CrewOutput.raw``, ``structured`` the last task's JSON or pydantic output, ``usage`` the crew's token
usage) plus ``crew_output``, the whole ``CrewOutput`` as JSON with the class of each pydantic output,
from which :func:`crew_output_of` rebuilds an equal ``CrewOutput``.
"""

from __future__ import annotations

from typing import Any

from crewai.crews.crew_output import CrewOutput

from ...durable._codec import to_json
from .._typed import model_class, model_path

__all__ = ["crew_output_json", "crew_output_of", "run_output"]


def _pydantic_classes(output: CrewOutput) -> dict[str, str]:
    found: dict[str, str] = {}
    if output.pydantic is not None:
        found["crew"] = model_path(type(output.pydantic))
    for index, task in enumerate(output.tasks_output):
        if task.pydantic is not None:
            found[str(index)] = model_path(type(task.pydantic))
    return found


def crew_output_json(output: CrewOutput) -> dict[str, Any]:
    """``output`` as JSON, with the path of each pydantic output's class."""
    value = output.model_dump(mode="json")
    # pydantic dumps a field typed ``BaseModel`` by that type (as {}): dump each output by its own class.
    if output.pydantic is not None:
        value["pydantic"] = output.pydantic.model_dump(mode="json", by_alias=True)
    for index, task in enumerate(output.tasks_output):
        if task.pydantic is not None:
            value["tasks_output"][index]["pydantic"] = task.pydantic.model_dump(mode="json", by_alias=True)
    return {"value": to_json(value, "the crew's output"), "models": _pydantic_classes(output)}


def _typed(data: Any, path: str | None) -> Any:
    cls = model_class(path)
    return cls.model_validate(data) if cls is not None and isinstance(data, dict) else data


def crew_output_of(data: dict[str, Any]) -> CrewOutput:
    """The ``CrewOutput`` :func:`crew_output_json` recorded (pydantic outputs as their own classes)."""
    value = dict(data["value"])
    models: dict[str, str] = data.get("models") or {}
    if value.get("pydantic") is not None:
        value["pydantic"] = _typed(value["pydantic"], models.get("crew"))
    tasks = [dict(task) for task in value.get("tasks_output") or []]
    for index, task in enumerate(tasks):
        if task.get("pydantic") is not None:
            task["pydantic"] = _typed(task["pydantic"], models.get(str(index)))
    value["tasks_output"] = tasks
    return CrewOutput.model_validate(value)


def _structured(output: CrewOutput) -> Any:
    if output.json_dict is not None:
        return to_json(output.json_dict, "the crew's JSON output")
    if output.pydantic is not None:
        return to_json(output.pydantic.model_dump(mode="json"), "the crew's pydantic output")
    return None


def run_output(output: CrewOutput) -> dict[str, Any]:
    """The execution output of a finished crew run."""
    usage = output.token_usage
    return {
        "output": output.raw,
        "structured": _structured(output),
        "usage": {
            "prompt_tokens": int(usage.prompt_tokens),
            "completion_tokens": int(usage.completion_tokens),
            "total_tokens": int(usage.total_tokens),
        },
        "finish_reason": "stop",
        "crew_output": crew_output_json(output),
    }

"""What the runtime, the worker and the CLI need of an ADK agent or app: its durable function, its
execution input, its description (the core reaches ADK only through this module)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._agent import _check, _root, agent_function, execution_input

__all__ = ["describe", "execution_input_of", "function_of"]


def function_of(target: Any, name: str | None = None) -> Callable[..., Any]:
    """The durable function that runs ``target`` (an ADK agent or ``App``) under ``name``."""
    return agent_function(target, name)


def execution_input_of(target: Any, prompt: Any) -> dict[str, Any]:
    """The execution input of running ``target`` on ``prompt`` (text; a clear error else)."""
    _check(target)
    return execution_input(prompt)


def _tool_name(tool: Any) -> str:
    return str(getattr(tool, "name", None) or getattr(tool, "__name__", None) or type(tool).__name__)


def _agent(agent: Any) -> dict[str, Any]:
    model = getattr(agent, "model", None)
    return {
        "name": str(agent.name),
        "type": type(agent).__name__,
        "model": model if isinstance(model, str) or model is None else type(model).__name__,
        "tools": [_tool_name(tool) for tool in getattr(agent, "tools", None) or []],
        "sub_agents": [_agent(sub) for sub in agent.sub_agents],
    }


def describe(target: Any) -> dict[str, Any]:
    """What ``deploy`` registers for an agent or app: its tree of agents, their models and tools."""
    _check(target)
    root = _root(target)
    spec: dict[str, Any] = {"framework": "google-adk", "kind": "app" if root is not target else "agent"}
    spec.update(_agent(root))
    return spec

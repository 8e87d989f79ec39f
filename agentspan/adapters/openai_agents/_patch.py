"""Every point of the OpenAI Agents SDK this adapter patches, in one place (with ``wrapt``), inert outside Agentspan runs.

``RunConfig(model_provider=...)`` covers models given by name; a ``Model`` instance on an agent
bypasses the provider, and an agent's tools (also those of handoff targets and of agents run as
tools, which are reachable only through the SDK's closures) are read per turn by
``Agent.get_all_tools``. So both resolution points are wrapped, once per process:

| module | point | why |
|---|---|---|
| ``agents.run_internal.turn_preparation`` | ``get_model`` | resolves an agent's model; the module defines it (0.20 to 0.24) |
| ``agents.run_internal.run_loop`` | ``get_model`` | its own binding (``from .turn_preparation import get_model``): the model each turn calls (0.20 to 0.24) |
| ``agents.run_internal.agent_runner_helpers`` | ``get_model`` | its own binding, only to check the model's type before a run (0.22 to 0.24, optional): it sees the model the user gave |
| ``agents.agent`` | ``Agent.get_all_tools`` | an agent's tools, read per turn: function tools become durable steps keyed by call id |

Outside an Agentspan run the wrappers return what the SDK's own functions return. The points are
private to the SDK: :func:`install` checks all of them before it patches any, and raises a
``RuntimeError`` naming the one that is not where the supported versions (0.20 to 0.24) keep it,
rather than letting models run without being recorded. A module of the SDK that binds
``get_model`` but is not in the table is such an error too (its models would run unwrapped).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from agents.tool import FunctionTool

from .._patching import Patches
from ._model import DurableModel, durable_model
from ._scope import active
from ._tools import durable_tool

__all__ = ["install", "installed", "unpatch"]

_patches = Patches("OpenAI Agents SDK", "openai-agents", "openai-agents 0.20 to 0.24")


# --- wrappers ------------------------------------------------------------------------------------------------
def _get_model(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    model = wrapped(*args, **kwargs)
    if not active():
        return model
    agent = args[0] if args else kwargs.get("agent")
    name = getattr(agent, "name", None)
    return durable_model(model, name if isinstance(name, str) else None)


def _inspected_model(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    model = wrapped(*args, **kwargs)
    return model.model if isinstance(model, DurableModel) else model


async def _get_all_tools(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    tools = await wrapped(*args, **kwargs)
    if not active():
        return tools
    return [durable_tool(t) if isinstance(t, FunctionTool) else t for t in tools]


# --- installing ------------------------------------------------------------------------------------------------
_GET_MODEL_HOME = "agents.run_internal.turn_preparation"
# (module, attribute path, wrapper, required): the table of the docstring, in the order it is patched.
_POINTS: tuple[tuple[str, str, Callable[..., Any], bool], ...] = (
    (_GET_MODEL_HOME, "get_model", _get_model, True),
    ("agents.run_internal.run_loop", "get_model", _get_model, True),
    ("agents.run_internal.agent_runner_helpers", "get_model", _inspected_model, False),
    ("agents.agent", "Agent.get_all_tools", _get_all_tools, True),
)
_GET_MODEL_MODULES = {module_name for module_name, path, _, _ in _POINTS if path == "get_model"}


def _resolve_all() -> list[tuple[Any, str, Callable[..., Any]]]:
    """Every point to patch with its wrapper; a ``RuntimeError`` naming the first one that is not as expected."""
    found: list[tuple[Any, str, Callable[..., Any]]] = []
    original: Any = None  # the function every get_model point must bind
    for module_name, path, wrapper, required in _POINTS:
        target = _patches.resolve(module_name, path, required)
        if target is None:
            continue
        owner, attribute = target
        if path == "get_model":
            bound = vars(owner).get(attribute)
            if module_name == _GET_MODEL_HOME:
                original = bound
            elif bound is not original:
                if required:
                    raise _patches.unsupported(
                        f"{module_name} does not resolve models with {_GET_MODEL_HOME}.get_model"
                    )
                continue
        found.append((owner, attribute, wrapper))
    unknown = sorted(
        name
        for name, module in list(sys.modules.items())
        if name.partition(".")[0] == "agents" and name not in _GET_MODEL_MODULES
        and isinstance(module, ModuleType) and vars(module).get("get_model") is original
    )  # fmt: skip
    if unknown:
        raise _patches.unsupported(f"{', '.join(unknown)} also resolves models with {_GET_MODEL_HOME}.get_model")
    return found


def installed() -> bool:
    """Whether the patches are in place in this process."""
    return _patches.installed


def install() -> None:
    """Make the SDK's model and tool resolution durable inside Agentspan runs (idempotent)."""
    with _patches.lock:
        if _patches.installed:
            return
        for owner, attribute, wrapper in _resolve_all():  # all found: patch them
            _patches.wrap(owner, attribute, wrapper)


def unpatch() -> None:
    """Undo every patch (for tests that compare with the SDK unpatched); :func:`install` puts them back."""
    _patches.undo()

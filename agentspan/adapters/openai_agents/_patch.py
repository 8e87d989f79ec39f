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

import importlib
import importlib.metadata
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

import wrapt
from agents.tool import FunctionTool

from ._model import DurableModel, durable_model
from ._scope import active
from ._tools import durable_tool

__all__ = ["install", "installed", "unpatch"]

_lock = threading.Lock()
_ABSENT = object()
_patched: list[tuple[Any, str, Any]] = []  # (owner, attribute, what its __dict__ held, or _ABSENT) to undo


# --- wrappers ------------------------------------------------------------------------------------------------
def _get_model(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    model = wrapped(*args, **kwargs)
    return durable_model(model) if active() else model


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


def _unsupported(problem: str) -> RuntimeError:
    try:
        version = importlib.metadata.version("openai-agents")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source checkout of the SDK
        version = "unknown"
    return RuntimeError(
        f"agentspan cannot make this OpenAI Agents SDK (openai-agents {version}) durable: {problem}. "
        "The adapter supports openai-agents 0.20 to 0.24."
    )


def _resolve(module_name: str, path: str, required: bool) -> tuple[Any, str] | None:
    """The owner of the patched attribute and its name, or ``None`` for an optional point that is absent."""
    try:
        owner: Any = importlib.import_module(module_name)
    except ImportError as exc:
        if required:
            raise _unsupported(f"module {module_name} not found") from exc
        return None
    *parents, attribute = path.split(".")
    for part in parents:
        owner = getattr(owner, part, None)
        if owner is None:
            if required:
                raise _unsupported(f"{module_name}.{path} not found")
            return None
    if not callable(getattr(owner, attribute, None)):
        if required:
            raise _unsupported(f"{module_name}.{path} not found")
        return None
    return owner, attribute


def _resolve_all() -> list[tuple[Any, str, Callable[..., Any]]]:
    """Every point to patch with its wrapper; a ``RuntimeError`` naming the first one that is not as expected."""
    found: list[tuple[Any, str, Callable[..., Any]]] = []
    original: Any = None  # the function every get_model point must bind
    for module_name, path, wrapper, required in _POINTS:
        target = _resolve(module_name, path, required)
        if target is None:
            continue
        owner, attribute = target
        if path == "get_model":
            bound = vars(owner).get(attribute)
            if module_name == _GET_MODEL_HOME:
                original = bound
            elif bound is not original:
                if required:
                    raise _unsupported(f"{module_name} does not resolve models with {_GET_MODEL_HOME}.get_model")
                continue
        found.append((owner, attribute, wrapper))
    unknown = sorted(
        name
        for name, module in list(sys.modules.items())
        if name.partition(".")[0] == "agents" and name not in _GET_MODEL_MODULES
        and isinstance(module, ModuleType) and vars(module).get("get_model") is original
    )  # fmt: skip
    if unknown:
        raise _unsupported(f"{', '.join(unknown)} also resolves models with {_GET_MODEL_HOME}.get_model")
    return found


def installed() -> bool:
    """Whether the patches are in place in this process."""
    return bool(_patched)


def install() -> None:
    """Make the SDK's model and tool resolution durable inside Agentspan runs (idempotent)."""
    with _lock:
        if _patched:
            return
        for owner, attribute, wrapper in _resolve_all():  # all found: patch them
            original = vars(owner).get(attribute, _ABSENT)
            wrapt.wrap_function_wrapper(owner, attribute, wrapper)
            _patched.append((owner, attribute, original))


def unpatch() -> None:
    """Undo every patch (for tests that compare with the SDK unpatched); :func:`install` puts them back."""
    with _lock:
        while _patched:
            owner, attribute, original = _patched.pop()
            if original is _ABSENT:
                delattr(owner, attribute)
            else:
                setattr(owner, attribute, original)

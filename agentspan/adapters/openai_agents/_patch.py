"""Where the SDK resolves an agent's model and tools, so that every one of them is made durable.

``RunConfig(model_provider=...)`` covers models given by name; a ``Model`` instance on an agent
bypasses the provider, and an agent's tools (also those of handoff targets and of agents run as
tools, which are reachable only through the SDK's closures) are read per turn by
``Agent.get_all_tools``. :func:`install` wraps both resolution points once per process. Outside an
Agentspan run they return what the SDK's own functions return. Both points are private to the SDK:
:func:`install` raises a ``RuntimeError`` when they are not where the supported versions (0.20 to
0.24) keep them, rather than letting models run without being recorded.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import sys
import threading
from collections.abc import Callable
from types import ModuleType
from typing import Any

from agents.agent import Agent
from agents.tool import FunctionTool

from ._model import DurableModel, durable_model
from ._scope import active
from ._tools import durable_tool

__all__ = ["install"]

_lock = threading.Lock()
_installed = False
# Where the SDK binds ``get_model`` by name: the module that defines it and those that import it with
# ``from .turn_preparation import get_model``. Each one present is patched; the first two are required.
_GET_MODEL_HOME = "agents.run_internal.turn_preparation"  # defines it (0.20 to 0.24)
# Only checks the model's type before a run (0.22 to 0.24): it must see the model the user gave.
_GET_MODEL_INSPECTS = "agents.run_internal.agent_runner_helpers"
_GET_MODEL_MODULES = (
    _GET_MODEL_HOME,
    "agents.run_internal.run_loop",  # resolves the model each turn calls (0.20 to 0.24)
    _GET_MODEL_INSPECTS,
)
_GET_MODEL_REQUIRED = _GET_MODEL_MODULES[:2]


def _unsupported(problem: str) -> RuntimeError:
    try:
        version = importlib.metadata.version("openai-agents")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source checkout of the SDK
        version = "unknown"
    return RuntimeError(
        f"agentspan cannot make this OpenAI Agents SDK (openai-agents {version}) durable: {problem}. "
        "The adapter supports openai-agents 0.20 to 0.24."
    )


def _patch_get_model() -> None:
    try:
        home = importlib.import_module(_GET_MODEL_HOME)
    except ImportError as exc:
        raise _unsupported(f"module {_GET_MODEL_HOME} not found") from exc
    found: Any = getattr(home, "get_model", None)
    if getattr(found, "__agentspan_patched__", False):
        found = found.__wrapped__
    if not callable(found):
        raise _unsupported(f"{_GET_MODEL_HOME} has no get_model")
    original: Callable[..., Any] = found

    targets: list[ModuleType] = []
    for module_name in _GET_MODEL_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        bound = vars(module).get("get_model")
        if bound is original or getattr(bound, "__agentspan_patched__", False):
            targets.append(module)
    missing = [name for name in _GET_MODEL_REQUIRED if name not in {t.__name__ for t in targets}]
    if missing:
        raise _unsupported(f"{', '.join(missing)} does not resolve models with {_GET_MODEL_HOME}.get_model")
    # A module of the SDK that binds the function but is not in the table would run unwrapped models.
    unknown = sorted(
        name
        for name, module in list(sys.modules.items())
        if name.partition(".")[0] == "agents" and name not in _GET_MODEL_MODULES
        and isinstance(module, ModuleType) and vars(module).get("get_model") is original
    )  # fmt: skip
    if unknown:
        raise _unsupported(f"{', '.join(unknown)} also resolves models with {_GET_MODEL_HOME}.get_model")

    def get_model(agent: Any, run_config: Any) -> Any:
        model = original(agent, run_config)
        return durable_model(model) if active() else model

    def inspected_model(agent: Any, run_config: Any) -> Any:
        model = original(agent, run_config)
        return model.model if isinstance(model, DurableModel) else model

    for wrapper in (get_model, inspected_model):
        functools.update_wrapper(wrapper, original)
        wrapper.__agentspan_patched__ = True  # type: ignore[attr-defined]
    for module in targets:
        if not getattr(module.get_model, "__agentspan_patched__", False):
            module.get_model = inspected_model if module.__name__ == _GET_MODEL_INSPECTS else get_model  # type: ignore[attr-defined]


def _patch_get_all_tools() -> None:
    original = Agent.get_all_tools
    if getattr(original, "__agentspan_patched__", False):
        return

    @functools.wraps(original)
    async def get_all_tools(self: Any, run_context: Any) -> Any:
        tools = await original(self, run_context)
        if not active():
            return tools
        return [durable_tool(t) if isinstance(t, FunctionTool) else t for t in tools]

    get_all_tools.__agentspan_patched__ = True  # type: ignore[attr-defined]
    Agent.get_all_tools = get_all_tools  # type: ignore[method-assign]


def install() -> None:
    """Make the SDK's model and tool resolution durable inside Agentspan runs (idempotent)."""
    global _installed
    with _lock:
        if _installed:
            return
        _patch_get_model()
        _patch_get_all_tools()
        _installed = True

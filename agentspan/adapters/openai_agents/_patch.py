"""Where the SDK resolves an agent's model and tools, so that every one of them is made durable.

``RunConfig(model_provider=...)`` covers models given by name; a ``Model`` instance on an agent
bypasses the provider, and an agent's tools (also those of handoff targets and of agents run as
tools, which are reachable only through the SDK's closures) are read per turn by
``Agent.get_all_tools``. :func:`install` wraps both resolution points once per process. Outside an
Agentspan run they return what the SDK's own functions return.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Callable
from typing import Any

from agents.agent import Agent
from agents.tool import FunctionTool

from ._model import durable_model
from ._scope import active
from ._tools import durable_tool

__all__ = ["install"]

_lock = threading.Lock()
_installed = False
# The SDK modules that bind ``get_model`` by name (``from .turn_preparation import get_model``).
_GET_MODEL_MODULES = (
    "agents.run_internal.turn_preparation",
    "agents.run_internal.run_loop",
    "agents.run_internal.agent_runner_helpers",
)


def _patch_get_model() -> None:
    for module_name in _GET_MODEL_MODULES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # pragma: no cover - depends on the SDK version
            continue
        original: Callable[..., Any] | None = getattr(module, "get_model", None)
        if original is None or getattr(original, "__agentspan_patched__", False):
            continue

        def get_model(agent: Any, run_config: Any, *, _original: Callable[..., Any] = original) -> Any:
            model = _original(agent, run_config)
            return durable_model(model) if active() else model

        functools.update_wrapper(get_model, original)
        get_model.__agentspan_patched__ = True  # type: ignore[attr-defined]
        module.get_model = get_model  # type: ignore[attr-defined]


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

"""The process-wide runtime the drop-ins (the SDK's ``Runner``, ``durable(graph)``) keep executions in.

Embedded (SQLite) by default, the server at ``AGENTSPAN_SERVER_URL`` when it is set, or the one given to
:func:`use_runtime`. Created on first use and closed when the process exits.
"""

from __future__ import annotations

import atexit
import threading
from typing import Any

from ..durable import Runtime
from ..errors import ConfigurationError

__all__ = ["default_runtime", "use_runtime"]

_lock = threading.Lock()
_runtime: Runtime | None = None
_owned = False


def use_runtime(runtime: Any) -> None:
    """Keep the drop-ins' executions in ``runtime`` (a ``Runtime`` or an ``AgentRuntime``), instead of
    the process-wide default."""
    global _runtime, _owned
    found = getattr(runtime, "_runtime", runtime)
    if not isinstance(found, Runtime):
        raise ConfigurationError(f"use_runtime() takes a Runtime or an AgentRuntime, not {type(runtime).__name__}")
    with _lock:
        previous, owned = _runtime, _owned
        _runtime, _owned = found, False
    if owned and previous is not None and previous is not found:
        previous.close()


def default_runtime() -> Runtime:
    """The runtime given to :func:`use_runtime`, else the process-wide default (created now if needed)."""
    global _runtime, _owned
    with _lock:
        if _runtime is None:
            _runtime, _owned = Runtime(), True
            atexit.register(_close_default)
        return _runtime


def _close_default() -> None:
    global _runtime
    with _lock:
        runtime, owned = _runtime, _owned
        if owned:
            _runtime = None
    if owned and runtime is not None:
        runtime.close()

"""What every adapter's ``_patch`` module shares: finding each patch point, wrapping it with ``wrapt``,
and undoing the wraps.

An adapter lists its points (module, dotted attribute path, required or not) in a table, resolves all
of them before patching any (:meth:`Patches.resolve`: a required point that is missing is a clear
``RuntimeError`` naming it and the supported versions, and nothing is patched), then wraps each one
(:meth:`Patches.wrap`). :meth:`Patches.undo` restores the originals, for tests that compare with the
framework unpatched.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
from collections.abc import Callable
from typing import Any

import wrapt

__all__ = ["Patches"]

_ABSENT = object()  # the attribute was inherited: undoing deletes the subclass's wrapper


class Patches:
    """The patches one adapter has put in place.

    Args:
        framework: The framework's name in messages, e.g. ``"CrewAI"``.
        distribution: The package whose version messages report, e.g. ``"crewai"``.
        supported: Which versions the adapter supports, e.g. ``"crewai 1.15"``.
    """

    def __init__(self, framework: str, distribution: str, supported: str) -> None:
        self.framework = framework
        self.distribution = distribution
        self.supported = supported
        self.lock = threading.RLock()
        """Held while patching or undoing."""
        self._done: list[tuple[Any, str, Any]] = []  # (owner, attribute, original or _ABSENT)

    def unsupported(self, problem: str) -> RuntimeError:
        """The error for a framework whose internals are not what the adapter patches."""
        try:
            version = importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source checkout
            version = "unknown"
        return RuntimeError(
            f"agentspan cannot make this {self.framework} ({self.distribution} {version}) durable: {problem}."
            f" The adapter supports {self.supported}."
        )

    def resolve(self, module_name: str, path: str, required: bool = True) -> tuple[Any, str] | None:
        """The owner of the patched attribute and its name; ``None`` for an optional point that is
        absent, :meth:`unsupported` for a required one."""
        try:
            owner: Any = importlib.import_module(module_name)
        except ImportError as exc:
            if required:
                raise self.unsupported(f"module {module_name} not found") from exc
            return None
        *parents, attribute = path.split(".")
        for part in parents:
            owner = getattr(owner, part, None)
            if owner is None:
                break
        if owner is None or not callable(getattr(owner, attribute, None)):
            if required:
                raise self.unsupported(f"{module_name}.{path} not found")
            return None
        return owner, attribute

    def wrap(self, owner: Any, attribute: str, wrapper: Callable[..., Any]) -> None:
        """Wrap ``owner.attribute`` with ``wrapper`` (a ``wrapt`` wrapper), once."""
        with self.lock:
            if self.wrapped(owner, attribute):
                return
            original = vars(owner).get(attribute, _ABSENT)
            wrapt.wrap_function_wrapper(owner, attribute, wrapper)
            self._done.append((owner, attribute, original))

    def wrapped(self, owner: Any, attribute: str) -> bool:
        """Whether ``owner.attribute`` is wrapped already."""
        return any(o is owner and a == attribute for o, a, _ in self._done)

    @property
    def installed(self) -> bool:
        """Whether any patch is in place."""
        return bool(self._done)

    def undo(self) -> None:
        """Restore every original, newest first."""
        with self.lock:
            while self._done:
                owner, attribute, original = self._done.pop()
                if original is _ABSENT:
                    delattr(owner, attribute)
                else:
                    setattr(owner, attribute, original)

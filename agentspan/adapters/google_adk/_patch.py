"""Every point of ADK this adapter patches, in one place (with ``wrapt``), inert outside Agentspan runs.

| point | why |
|---|---|
| ``generate_content_async`` of every ``BaseLlm`` subclass that defines it: ``Gemini`` (``google.adk.models.google_llm``), ``LiteLlm``, ``Claude``, ``Gemma``, ``ApigeeLlm`` when their modules import, and user-defined model classes | every model call is a step; below ADK's model callbacks and plugins, which still run on a replayed response |
| ``run_async`` of ``BaseTool`` and of every subclass that defines it (``FunctionTool``, ``AgentTool``, MCP and OpenAPI tools...) | every tool call is a step, with the changes it made to its ``EventActions``; below ADK's tool callbacks, which still run on a replayed call |

ADK's own ids (function-call ids, invocation ids, event ids) are made deterministic without a patch,
through ADK's id provider (``google.adk.platform.uuid.set_id_provider``, see :mod:`._scope`).

:func:`install` checks that each required point exists in the installed ADK (2.13) and raises a
``RuntimeError`` naming the missing one rather than letting calls run unrecorded. Model classes whose
module cannot be imported (``LiteLlm`` without litellm) are skipped; a model or tool class imported or
defined later is patched when the next run starts (:func:`patch_new_classes`). Each wrapper calls the
original unchanged unless the calling code belongs to an Agentspan run (:func:`~._scope.current_run`).
"""

from __future__ import annotations

import importlib
import importlib.metadata
import threading
from collections.abc import Callable
from typing import Any

import wrapt

from . import _model, _tools
from ._scope import current_run

__all__ = ["install", "installed", "patch_new_classes", "unpatch"]

# (module, class, required): the model classes ADK ships.
_MODEL_CLASSES = (
    ("google.adk.models.google_llm", "Gemini", True),
    ("google.adk.models.lite_llm", "LiteLlm", False),
    ("google.adk.models.anthropic_llm", "Claude", False),
    ("google.adk.models.gemma_llm", "Gemma", False),
    ("google.adk.models.apigee_llm", "ApigeeLlm", False),
)
_BASES = (("google.adk.models.base_llm", "BaseLlm"), ("google.adk.tools.base_tool", "BaseTool"))

_lock = threading.RLock()
_patched: list[tuple[Any, str, Any]] = []  # (owner, attribute, original) to undo
_classes: set[type] = set()


def _unsupported(problem: str) -> RuntimeError:
    try:
        version = importlib.metadata.version("google-adk")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - a source checkout of ADK
        version = "unknown"
    return RuntimeError(
        f"agentspan cannot make this Google ADK (google-adk {version}) durable: {problem}."
        " The adapter supports google-adk 2.13 and later 2.x."
    )


def _class(module_name: str, name: str, required: bool) -> type | None:
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        if required:
            raise _unsupported(f"module {module_name} not found") from exc
        return None
    found = getattr(module, name, None)
    if not isinstance(found, type):
        if required:
            raise _unsupported(f"{module_name}.{name} not found")
        return None
    return found


def _wrap(owner: Any, attribute: str, wrapper: Callable[..., Any]) -> None:
    if any(o is owner and a == attribute for o, a, _ in _patched):
        return
    original = vars(owner)[attribute]
    wrapt.wrap_function_wrapper(owner, attribute, wrapper)
    _patched.append((owner, attribute, original))


# --- wrappers ------------------------------------------------------------------------------------------------
def _generate_content(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    state = current_run()
    if state is None or _model.in_model():
        return wrapped(*args, **kwargs)
    return _model.model_call(state, instance, wrapped, args, kwargs)


async def _tool_run_async(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    state = current_run()
    if state is None or _tools.same_tool(instance) or _model.in_model():
        return await wrapped(*args, **kwargs)
    return await _tools.tool_call(state, instance, wrapped, args, kwargs)


# --- installing ------------------------------------------------------------------------------------------------
def _patch_class(cls: type, attribute: str, wrapper: Callable[..., Any]) -> None:
    if attribute in cls.__dict__ and not getattr(cls.__dict__[attribute], "__isabstractmethod__", False):
        _wrap(cls, attribute, wrapper)
    _classes.add(cls)


def patch_new_classes() -> None:
    """Patch the model and tool classes defined or imported since :func:`install` (custom classes)."""
    model_base = _class(*_BASES[0], True)
    tool_base = _class(*_BASES[1], True)
    with _lock:
        for base, attribute, wrapper in (
            (model_base, "generate_content_async", _generate_content),
            (tool_base, "run_async", _tool_run_async),
        ):
            pending: list[type] = [base] if base is not None else []
            while pending:
                cls = pending.pop()
                if cls not in _classes:
                    _patch_class(cls, attribute, wrapper)
                pending.extend(cls.__subclasses__())


def installed() -> bool:
    """Whether the patches are in place in this process."""
    return bool(_patched)


def install() -> None:
    """Put every patch in place (once per process; later calls only patch new model and tool classes)."""
    with _lock:
        if not _patched:
            found = [_class(m, name, required) for m, name, required in _MODEL_CLASSES]  # check before patching
            tool_base = _class(*_BASES[1], True)
            for cls, attribute in ((found[0], "generate_content_async"), (tool_base, "run_async")):
                if cls is None or attribute not in cls.__dict__:
                    raise _unsupported(f"{getattr(cls, '__name__', cls)}.{attribute} not found")
        patch_new_classes()


def unpatch() -> None:
    """Undo every patch (for tests that compare with ADK unpatched)."""
    with _lock:
        while _patched:
            owner, attribute, original = _patched.pop()
            setattr(owner, attribute, original)
        _classes.clear()

"""Every point of ADK this adapter patches, in one place (with ``wrapt``), inert outside Agentspan runs.

| point | why |
|---|---|
| ``generate_content_async`` of every ``BaseLlm`` subclass that defines it: ``Gemini`` (``google.adk.models.google_llm``), ``LiteLlm``, ``Claude``, ``Gemma``, ``ApigeeLlm`` when their modules import, and user-defined model classes | every model call is a step; below ADK's model callbacks and plugins, which still run on a replayed response |
| ``run_async`` of ``BaseTool`` and of every subclass that defines it (``FunctionTool``, ``AgentTool``, MCP and OpenAPI tools...) | every tool call is a step, with the changes it made to its ``EventActions``; below ADK's tool callbacks, which still run on a replayed call |
| ``apply_confirmation_gate`` as ``google.adk.flows.llm_flows.tools._caller`` calls it | a tool call that needs confirmation waits durably for an approval (:mod:`._approval`) |
| ``BaseAgent.run_async`` (``google.adk.agents.base_agent``) | the ids an agent draws are counted on its branch (``InvocationContext.branch``): ``ParallelAgent`` branches draw them side by side, in another order on a replay |

ADK's own ids (function-call ids, invocation ids, event ids) are made deterministic without a patch,
through ADK's id provider (``google.adk.platform.uuid.set_id_provider``, see :mod:`._scope`).

:func:`install` checks that each required point exists in the installed ADK (2.13) and raises a
``RuntimeError`` naming the missing one rather than letting calls run unrecorded. Model classes whose
module cannot be imported (``LiteLlm`` without litellm) are skipped; a model or tool class imported or
defined later is patched when the next run starts (:func:`patch_new_classes`). Each wrapper calls the
original unchanged unless the calling code belongs to an Agentspan run (:func:`~._scope.current_run`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._patching import Patches
from . import _approval, _model, _tools
from ._scope import current_run, in_branch

__all__ = ["install", "installed", "patch_new_classes", "unpatch"]

# (module, class, required): the model classes ADK ships, and the tool base class.
_MODEL_CLASSES = (
    ("google.adk.models.google_llm", "Gemini", True),
    ("google.adk.models.lite_llm", "LiteLlm", False),
    ("google.adk.models.anthropic_llm", "Claude", False),
    ("google.adk.models.gemma_llm", "Gemma", False),
    ("google.adk.models.apigee_llm", "ApigeeLlm", False),
)
_MODEL_BASE = ("google.adk.models.base_llm", "BaseLlm")
_TOOL_BASE = ("google.adk.tools.base_tool", "BaseTool")
_GATE = ("google.adk.flows.llm_flows.tools._caller", "apply_confirmation_gate")
_AGENT_RUN = ("google.adk.agents.base_agent", "BaseAgent.run_async")

_patches = Patches("Google ADK", "google-adk", "google-adk 2.13 and later 2.x")
_classes: set[type] = set()


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


def _agent_run_async(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    events = wrapped(*args, **kwargs)
    if current_run() is None:
        return events
    context = kwargs.get("parent_context", args[0] if args else None)
    return in_branch(getattr(context, "branch", None), events)


# --- installing ------------------------------------------------------------------------------------------------
def _patch_class(cls: type, attribute: str, wrapper: Callable[..., Any]) -> None:
    if attribute in vars(cls) and not getattr(vars(cls)[attribute], "__isabstractmethod__", False):
        _patches.wrap(cls, attribute, wrapper)
    _classes.add(cls)


def _class(module_name: str, name: str) -> type:
    found = _patches.resolve(module_name, name)
    assert found is not None  # required: resolve raised otherwise
    cls: type = getattr(*found)
    return cls


def patch_new_classes() -> None:
    """Patch the model and tool classes defined or imported since :func:`install` (custom classes)."""
    with _patches.lock:
        for base, attribute, wrapper in (
            (_class(*_MODEL_BASE), "generate_content_async", _generate_content),
            (_class(*_TOOL_BASE), "run_async", _tool_run_async),
        ):
            pending: list[type] = [base]
            while pending:
                cls = pending.pop()
                if cls not in _classes:
                    _patch_class(cls, attribute, wrapper)
                pending.extend(cls.__subclasses__())


def installed() -> bool:
    """Whether the patches are in place in this process."""
    return _patches.installed


def install() -> None:
    """Put every patch in place (once per process; later calls only patch new model and tool classes)."""
    with _patches.lock:
        if not _patches.installed:  # check the required points before patching any
            for module_name, name, required in _MODEL_CLASSES:
                _patches.resolve(module_name, f"{name}.generate_content_async", required)
            _patches.resolve(_TOOL_BASE[0], f"{_TOOL_BASE[1]}.run_async")
            _patches.resolve(*_MODEL_BASE)
            gate = _patches.resolve(*_GATE)
            agent_run = _patches.resolve(*_AGENT_RUN)
            assert gate is not None and agent_run is not None  # required: resolve raised otherwise
            _patches.wrap(*gate, _approval.confirmation_gate)
            _patches.wrap(*agent_run, _agent_run_async)
        patch_new_classes()


def unpatch() -> None:
    """Undo every patch (for tests that compare with ADK unpatched)."""
    with _patches.lock:
        _patches.undo()
        _classes.clear()

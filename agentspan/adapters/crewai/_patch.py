"""Every point of CrewAI this adapter patches, in one place (with ``wrapt``), inert outside Agentspan runs.

| point | why |
|---|---|
| ``call`` / ``acall`` of every ``BaseLLM`` subclass that defines them: ``crewai.LLM`` (the litellm fallback), ``OpenAICompletion`` (and the OpenAI-compatible and Snowflake providers built on it), ``AnthropicCompletion``, ``GeminiCompletion``, ``AzureCompletion``, ``BedrockCompletion``, and user-defined LLM classes | every model call, whoever makes it (agents, ``manager_llm``, ``function_calling_llm``, planning, reasoning, context summarisation, output conversion, flow human feedback) |
| ``InternalInstructor.to_pydantic`` | ``output_json`` / ``output_pydantic`` conversion through instructor calls the provider's SDK directly, not ``llm.call`` |
| ``BaseTool.run`` / ``arun``, ``Tool.run`` / ``arun`` | tool calls on the native function-calling path (``BaseTool`` subclasses and ``@tool`` functions) |
| ``CrewStructuredTool.invoke`` / ``ainvoke`` | tool calls on the ReAct text path |
| ``AgentExecutor._execute_single_native_tool_call``, ``CrewAgentExecutor._execute_single_native_tool_call``, ``agent_utils.execute_single_native_tool_call`` (also as imported by ``step_executor``) | the model's tool-call id, so parallel calls are keyed by id |
| ``Agent.execute_task`` / ``aexecute_task`` | a task's execution as a step grouping its calls |
| ``Flow._execute_method`` (``crewai.flow.runtime``) | each execution of a flow method (start, listener, router) as a step grouping its calls, replayed with the state it left |
| ``Flow._request_human_feedback`` | ``@human_feedback``'s request in a flow as a durable wait instead of a read from the terminal |

:func:`install` checks that each required point exists in the installed CrewAI (1.15) and raises a
``RuntimeError`` naming the missing one rather than letting calls run unrecorded. Provider classes
whose SDK is not installed are skipped; a ``BaseLLM`` subclass imported or defined later is patched
when the next run starts (:func:`patch_new_llm_classes`). Each wrapper calls the original unchanged
unless the calling code belongs to an Agentspan run (:func:`~._scope.current_run`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .._patching import Patches
from . import _model, _tasks, _tools
from ._scope import current_run

__all__ = ["install", "installed", "patch_new_llm_classes", "unpatch"]

# (module, attribute path, required)
_LLM_CLASSES = (
    ("crewai.llm", "LLM", True),
    ("crewai.llms.providers.openai.completion", "OpenAICompletion", True),
    ("crewai.llms.providers.anthropic.completion", "AnthropicCompletion", False),
    ("crewai.llms.providers.gemini.completion", "GeminiCompletion", False),
    ("crewai.llms.providers.azure.completion", "AzureCompletion", False),
    ("crewai.llms.providers.bedrock.completion", "BedrockCompletion", False),
)
_CALL_IDS = (
    ("crewai.experimental.agent_executor", "AgentExecutor._execute_single_native_tool_call", True),
    ("crewai.agents.crew_agent_executor", "CrewAgentExecutor._execute_single_native_tool_call", False),
    ("crewai.utilities.agent_utils", "execute_single_native_tool_call", True),
    ("crewai.agents.step_executor", "execute_single_native_tool_call", False),
)

_patches = Patches("CrewAI", "crewai", "crewai 1.15")
_llm_classes: set[type] = set()


# --- wrappers ------------------------------------------------------------------------------------------------
def _llm_call(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if current_run() is None or _model.in_model():
        return wrapped(*args, **kwargs)
    return _model.model_call(instance, wrapped, args, kwargs)


async def _llm_acall(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if current_run() is None or _model.in_model():
        return await wrapped(*args, **kwargs)
    return await _model.model_call_async(instance, wrapped, args, kwargs)


def _instructor(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if current_run() is None or _model.in_model():
        return wrapped(*args, **kwargs)
    return _model.instructor_call(instance, lambda: wrapped(*args, **kwargs), as_json=False)


def _tool_arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return {"args": list(args), **kwargs} if args else dict(kwargs)


def _underlying(tool: Any) -> Any:
    """A ``CrewStructuredTool`` made from a ``BaseTool`` is that tool: ``invoke`` then ``run`` is one call."""
    return getattr(tool, "_original_tool", None) or tool


def _tool_run(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    state = current_run()
    tool = _underlying(instance)
    if state is None or _tools.same_tool(tool) or _model.in_model():
        return wrapped(*args, **kwargs)
    name = str(getattr(instance, "name", type(instance).__name__))
    return _tools.tool_call(state, tool, name, _tool_arguments(args, kwargs), lambda: wrapped(*args, **kwargs))


async def _tool_arun(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    state = current_run()
    tool = _underlying(instance)
    if state is None or _tools.same_tool(tool) or _model.in_model():
        return await wrapped(*args, **kwargs)
    name = str(getattr(instance, "name", type(instance).__name__))
    return await _tools.tool_call_async(
        state, tool, name, _tool_arguments(args, kwargs), lambda: wrapped(*args, **kwargs)
    )


def _invoke_input(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    return args[0] if args else kwargs.get("input")


def _tool_invoke(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    state = current_run()
    tool = _underlying(instance)
    if state is None or _tools.same_tool(tool) or _model.in_model():
        return wrapped(*args, **kwargs)
    name = str(getattr(instance, "name", type(instance).__name__))
    return _tools.tool_call(state, tool, name, _invoke_input(args, kwargs), lambda: wrapped(*args, **kwargs))


async def _tool_ainvoke(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    state = current_run()
    tool = _underlying(instance)
    if state is None or _tools.same_tool(tool) or _model.in_model():
        return await wrapped(*args, **kwargs)
    name = str(getattr(instance, "name", type(instance).__name__))
    return await _tools.tool_call_async(
        state, tool, name, _invoke_input(args, kwargs), lambda: wrapped(*args, **kwargs)
    )


def _native_call_id(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if current_run() is None:
        return wrapped(*args, **kwargs)
    if "call_id" in kwargs:
        call_id = kwargs["call_id"]
    else:
        tool_call = args[0] if args else kwargs.get("tool_call")
        from crewai.utilities.agent_utils import extract_tool_call_info

        info = extract_tool_call_info(tool_call) if tool_call is not None else None
        call_id = info[0] if info else None
    token = _tools.call_id_scope(call_id)
    try:
        return wrapped(*args, **kwargs)
    finally:
        _tools.reset_call_id(token)


def _task_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
    task = args[0] if args else kwargs.get("task")
    context = args[1] if len(args) > 1 else kwargs.get("context")
    return task, context


def _execute_task(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    task, context = _task_args(args, kwargs)
    if current_run() is None or _tasks.same_task(instance, task):
        return wrapped(*args, **kwargs)
    return _tasks.task_call(instance, task, context, lambda: wrapped(*args, **kwargs))


async def _aexecute_task(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    task, context = _task_args(args, kwargs)
    if current_run() is None or _tasks.same_task(instance, task):
        return await wrapped(*args, **kwargs)
    return await _tasks.task_call_async(instance, task, context, lambda: wrapped(*args, **kwargs))


def _user_flow(instance: Any) -> bool:
    """Flows CrewAI runs for its own bookkeeping (the agent executor, memory) are not the user's steps."""
    return current_run() is not None and not getattr(type(instance), "is_crewai_internal", False)


async def _flow_execute_method(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    if len(args) < 2 or not _user_flow(instance):
        return await wrapped(*args, **kwargs)
    from ._flow import durable_method

    name, method, *rest = args
    return await wrapped(name, durable_method(instance, str(name), method), *rest, **kwargs)


def _flow_feedback(wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    if not _user_flow(instance):
        return wrapped(*args, **kwargs)
    from ._flow import feedback_request

    return feedback_request(instance, *args, **kwargs)


# --- installing ------------------------------------------------------------------------------------------------
def _patch_llm_class(cls: type) -> None:
    if cls in _llm_classes:
        return
    for attribute, wrapper in (("call", _llm_call), ("acall", _llm_acall)):
        if attribute in cls.__dict__:
            _patches.wrap(cls, attribute, wrapper)
    _llm_classes.add(cls)


def patch_new_llm_classes() -> None:
    """Patch the ``BaseLLM`` subclasses defined or imported since :func:`install` (custom LLM classes)."""
    from crewai.llms.base_llm import BaseLLM

    pending: list[type] = list(BaseLLM.__subclasses__())
    found: list[type] = []
    while pending:
        cls = pending.pop()
        if cls not in _llm_classes:
            found.append(cls)
        pending.extend(cls.__subclasses__())
    if found:
        with _patches.lock:
            for cls in found:
                _patch_llm_class(cls)


def installed() -> bool:
    """Whether the patches are in place in this process."""
    return _patches.installed


def install() -> None:
    """Put every patch in place (once per process; later calls only patch new LLM classes)."""
    with _patches.lock:
        if _patches.installed:
            patch_new_llm_classes()
            return
        llm_classes = [_patches.resolve(module_name, path, required) for module_name, path, required in _LLM_CLASSES]
        points: list[tuple[str, str, bool, Callable[..., Any]]] = [
            ("crewai.utilities.internal_instructor", "InternalInstructor.to_pydantic", True, _instructor),
            ("crewai.tools.base_tool", "BaseTool.run", True, _tool_run),
            ("crewai.tools.base_tool", "BaseTool.arun", True, _tool_arun),
            ("crewai.tools.base_tool", "Tool.run", True, _tool_run),
            ("crewai.tools.base_tool", "Tool.arun", True, _tool_arun),
            ("crewai.tools.structured_tool", "CrewStructuredTool.invoke", True, _tool_invoke),
            ("crewai.tools.structured_tool", "CrewStructuredTool.ainvoke", True, _tool_ainvoke),
            ("crewai.agent.core", "Agent.execute_task", True, _execute_task),
            ("crewai.agent.core", "Agent.aexecute_task", True, _aexecute_task),
            ("crewai.flow.runtime", "Flow._execute_method", True, _flow_execute_method),
            ("crewai.flow.runtime", "Flow._request_human_feedback", True, _flow_feedback),
            *((module_name, path, required, _native_call_id) for module_name, path, required in _CALL_IDS),
        ]
        resolved = [(_patches.resolve(m, p, r), w) for m, p, r, w in points]  # check them all before patching any
        for found_class in llm_classes:
            if found_class is not None:
                _patch_llm_class(getattr(*found_class))
        for found, wrapper in resolved:
            if found is not None:
                _patches.wrap(*found, wrapper)
        patch_new_llm_classes()


def unpatch() -> None:
    """Undo every patch (for tests that compare with CrewAI unpatched)."""
    with _patches.lock:
        _patches.undo()
        _llm_classes.clear()

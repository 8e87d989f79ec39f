"""``@tool``: a Python function a model can call, with a JSON schema from its type hints."""

from __future__ import annotations

import asyncio
import concurrent.futures
import dataclasses
import inspect
import json
import re
import typing
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar, overload

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from ..durable import InDoubt
from ..errors import ConfigurationError
from ._guarding import check_guardrails
from ._guardrail import Guardrail
from ._types import ToolSpec

__all__ = ["ToolContext", "ToolDefinition", "ToolError", "tool"]

F = TypeVar("F", bound=Callable[..., Any])
_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@dataclasses.dataclass(frozen=True)
class ToolContext:
    """Injected into a tool that declares a parameter of this type (it is not shown to the model)."""

    execution_id: str
    """The execution the call belongs to (empty when the loop runs outside one, durability off)."""
    step_key: str
    """The call's key in the journal (empty outside an execution)."""
    idempotency_key: str
    """The same on every attempt of this call: pass it to APIs that de-duplicate side effects."""
    attempt: int
    """1 on the first run; higher when the call runs again after a crash or a retry."""
    agent_name: str
    """The agent that called the tool."""


class ToolError(Exception):
    """Raise it in a tool to send the model an error message instead of a result."""


@dataclasses.dataclass(frozen=True)
class ToolDefinition:
    """What ``@tool`` attached to a function (``fn.__agentspan_tool__``)."""

    name: str
    """The name the model calls it by."""
    description: str
    """What the model is told the tool does (the docstring's first paragraph by default)."""
    parameters: dict[str, Any]
    """JSON schema of the arguments object."""
    fn: Callable[..., Any] = dataclasses.field(repr=False)
    args_model: type[BaseModel] = dataclasses.field(repr=False)
    context_param: str | None = None
    """The parameter that receives the :class:`ToolContext`, if any."""
    timeout: float | None = None
    """Seconds a call may take; a call that takes longer returns a timeout error to the model."""
    retries: int = 0
    """Extra attempts when the tool raises (inside the same durable step)."""
    retry_delay: float = 1.0
    in_doubt: InDoubt = InDoubt.REEXECUTE
    """What to do with a call that started in a process that died."""
    guardrails: tuple[Guardrail, ...] = ()
    """Checks on each call's arguments (``position="input"``, the arguments as JSON text) and on its
    result (``"output"``, the result as text), each a recorded step."""
    approval_required: bool = False
    """Each call waits for a person to approve, reject or edit it before it runs."""
    approval_timeout: float | None = None
    """Seconds a call waits for a decision before :attr:`approval_default` is taken (``None``: forever)."""
    approval_default: str = "reject"
    """The decision taken when :attr:`approval_timeout` passes: ``"approve"`` or ``"reject"``."""

    @property
    def is_async(self) -> bool:
        """Whether the function is a coroutine function."""
        return inspect.iscoroutinefunction(self.fn)

    def spec(self) -> ToolSpec:
        """The tool as a model sees it."""
        return ToolSpec(name=self.name, description=self.description, parameters=self.parameters)

    @staticmethod
    def of(obj: Any) -> ToolDefinition:
        """The definition of a ``@tool`` function; a plain function is made into a tool."""
        found = getattr(obj, "__agentspan_tool__", None)
        if isinstance(found, ToolDefinition):
            return found
        if callable(obj):
            return _define(obj, name=None, description=None, timeout=None, retries=0, retry_delay=1.0,
                           in_doubt=InDoubt.REEXECUTE, approval=_Approval())  # fmt: skip
        raise ConfigurationError(f"{obj!r} is not a tool: pass functions decorated with @tool")

    def parse(self, arguments: str) -> dict[str, Any]:
        """Validate the model's JSON arguments; ``ToolError`` says what is wrong, for the model to fix."""
        try:
            raw = json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            raise ToolError(f"the arguments for {self.name} are not valid JSON ({exc}); send a JSON object") from None
        if not isinstance(raw, dict):
            raise ToolError(f"the arguments for {self.name} must be a JSON object, not {type(raw).__name__}")
        try:
            return dict(self.args_model.model_validate(raw))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                for e in exc.errors(include_url=False)
            )
            raise ToolError(f"invalid arguments for {self.name}: {problems}") from None

    def call(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        """Run the (sync) tool, within its timeout."""
        kwargs = dict(arguments)
        if self.context_param is not None:
            kwargs[self.context_param] = context
        if self.timeout is None:
            return self.fn(**kwargs)
        # A thread cannot be killed: past the timeout the call is abandoned (it may still finish).
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix=f"tool-{self.name}")
        try:
            return pool.submit(self.fn, **kwargs).result(timeout=self.timeout)
        except concurrent.futures.TimeoutError:
            raise ToolError(f"{self.name} did not answer within {self.timeout} s") from None
        finally:
            pool.shutdown(wait=False)

    async def call_async(self, arguments: dict[str, Any], context: ToolContext) -> Any:
        """Run the tool from the event loop: coroutines directly, sync functions in a thread."""
        if not self.is_async:
            return await asyncio.to_thread(self.call, arguments, context)
        kwargs = dict(arguments)
        if self.context_param is not None:
            kwargs[self.context_param] = context
        try:
            return await asyncio.wait_for(self.fn(**kwargs), timeout=self.timeout)
        except TimeoutError:
            raise ToolError(f"{self.name} did not answer within {self.timeout} s") from None


def _describe(fn: Callable[..., Any]) -> tuple[str, dict[str, str]]:
    """The docstring's first paragraph, and per-parameter descriptions from an ``Args:`` section."""
    doc = inspect.getdoc(fn) or ""
    summary = doc.split("\n\n", 1)[0].strip()
    params: dict[str, str] = {}
    section = re.search(r"^(?:Args|Arguments|Parameters):\s*\n((?:[ \t]+.*\n?)+)", doc, re.MULTILINE)
    if section:
        current = None
        for line in section.group(1).splitlines():
            match = re.match(r"^\s+(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", line)
            if match and (current is None or len(line) - len(line.lstrip()) <= 4):
                current = match.group(1)
                params[current] = match.group(2).strip()
            elif current is not None and line.strip():
                params[current] += " " + line.strip()
    return summary, params


@dataclasses.dataclass(frozen=True)
class _Approval:
    required: bool = False
    timeout: float | None = None
    default: str = "reject"

    def check(self, tool_name: str) -> None:
        if not isinstance(self.required, bool):
            raise ConfigurationError(f"tool {tool_name}: approval_required must be True or False")
        if self.default not in ("approve", "reject"):
            raise ConfigurationError(
                f"tool {tool_name}: approval_default must be 'approve' or 'reject', not {self.default!r}"
            )
        if self.timeout is not None:
            if isinstance(self.timeout, bool) or not isinstance(self.timeout, int | float) or not self.timeout > 0:
                raise ConfigurationError(
                    f"tool {tool_name}: approval_timeout must be a positive number of seconds (or None to wait"
                    f" forever), not {self.timeout!r}"
                )
            if not self.required:
                raise ConfigurationError(
                    f"tool {tool_name}: approval_timeout is set but approval_required is not; pass"
                    " approval_required=True too"
                )


def _define(
    fn: Callable[..., Any],
    *,
    name: str | None,
    description: str | None,
    timeout: float | None,
    retries: int,
    retry_delay: float,
    in_doubt: InDoubt,
    approval: _Approval,
    guardrails: Sequence[Guardrail] = (),
) -> ToolDefinition:
    tool_name = name or fn.__name__
    if not _NAME.match(tool_name):
        raise ConfigurationError(f"tool name {tool_name!r} is not valid: use 1 to 64 letters, digits, _ and -")
    if timeout is not None and timeout <= 0:
        raise ConfigurationError(f"tool {tool_name}: timeout must be positive")
    try:
        checks = check_guardrails(guardrails)
    except ConfigurationError as exc:
        raise ConfigurationError(f"tool {tool_name}: {exc}") from None
    approval.check(tool_name)
    summary, param_docs = _describe(fn)
    try:
        hints = typing.get_type_hints(fn)
    except Exception as exc:
        raise ConfigurationError(f"tool {tool_name}: cannot resolve its type hints ({exc})") from None
    fields: dict[str, Any] = {}
    context_param = None
    for param in inspect.signature(fn).parameters.values():
        annotation = hints.get(param.name, Any)
        if annotation is ToolContext:
            context_param = param.name
            continue
        if param.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ConfigurationError(f"tool {tool_name}: *args and **kwargs cannot be described to a model")
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[param.name] = (annotation, Field(default, description=param_docs.get(param.name)))
    args_model = create_model(f"{tool_name}_arguments", __config__=ConfigDict(extra="forbid"), **fields)
    schema = args_model.model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    return ToolDefinition(
        name=tool_name,
        description=description or summary or f"The {tool_name} tool.",
        parameters=schema,
        fn=fn,
        args_model=args_model,
        context_param=context_param,
        timeout=timeout,
        retries=retries,
        retry_delay=retry_delay,
        in_doubt=in_doubt,
        guardrails=checks,
        approval_required=approval.required,
        approval_timeout=None if approval.timeout is None else float(approval.timeout),
        approval_default=approval.default,
    )


@overload
def tool(fn: F, /) -> F: ...
@overload
def tool(
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    retries: int = 0,
    retry_delay: float = 1.0,
    in_doubt: InDoubt = InDoubt.REEXECUTE,
    guardrails: Sequence[Guardrail] = (),
    approval_required: bool = False,
    approval_timeout: float | None = None,
    approval_default: Literal["approve", "reject"] = "reject",
) -> Callable[[F], F]: ...
def tool(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    description: str | None = None,
    timeout: float | None = None,
    retries: int = 0,
    retry_delay: float = 1.0,
    in_doubt: InDoubt = InDoubt.REEXECUTE,
    guardrails: Sequence[Guardrail] = (),
    approval_required: bool = False,
    approval_timeout: float | None = None,
    approval_default: Literal["approve", "reject"] = "reject",
) -> F | Callable[[F], F]:
    """Make a function (sync or async) a tool an agent's model can call.

    The JSON schema comes from the type hints (validated with pydantic) and the description from the
    docstring (its first paragraph; parameters from an ``Args:`` section). The function is returned
    unchanged, so it stays directly callable in tests. A parameter typed :class:`ToolContext`
    receives the execution id, step key, attempt and idempotency key.

    Args:
        name: The name the model calls it by (default: the function's name).
        description: What the model is told it does (default: the docstring).
        timeout: Seconds a call may take before the model gets a timeout error instead.
        retries: Extra attempts when the tool raises, with ``retry_delay`` doubling between them.
        retry_delay: Seconds before the first retry.
        in_doubt: What to do with a call that started in a process that died.
        guardrails: Checks on the call's arguments (input guardrails: a failure sends the model an
            error instead of running the tool, or fixes the arguments) and on its result (output
            guardrails: the model gets the guardrail's message instead, or the fixed text).
        approval_required: Each call waits (durably: no process is held) for a person to approve it,
            reject it with a reason the model reads as the result, or approve it with edited
            arguments, before it runs.
        approval_timeout: Seconds a call waits for a decision; then ``approval_default`` is taken
            (and recorded as the decision). ``None`` waits forever.
        approval_default: ``"reject"`` (the default) or ``"approve"``: the decision taken at the timeout.

    Raises:
        ConfigurationError: A name, timeout or approval setting is not valid.
    """
    approval = _Approval(approval_required, approval_timeout, approval_default)

    def decorate(func: F) -> F:
        func.__agentspan_tool__ = _define(  # type: ignore[attr-defined]
            func, name=name, description=description, timeout=timeout, retries=retries,
            retry_delay=retry_delay, in_doubt=in_doubt, approval=approval, guardrails=guardrails,
        )  # fmt: skip
        return func

    return decorate if fn is None else decorate(fn)

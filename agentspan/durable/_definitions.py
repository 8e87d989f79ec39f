"""``@step`` and ``@function``: the decorators for durable steps and durable entry points."""

from __future__ import annotations

import dataclasses
import functools
import inspect
import re
from collections.abc import Callable
from typing import Any, TypeVar, overload

from ..errors import ConfigurationError, InvalidInputError
from ._codec import Codec, return_codec
from ._context import InDoubt, StepInfo, current_context, current_step_info
from ._steps import run_step, run_step_async

__all__ = [
    "FunctionDefinition",
    "StepDefinition",
    "current_step",
    "function",
    "sleep",
    "step",
    "wait_for_signal",
]

F = TypeVar("F", bound=Callable[..., Any])
_NAME = re.compile(r"^[A-Za-z0-9_.:\-/]{1,200}$")


@dataclasses.dataclass(frozen=True)
class StepDefinition:
    """What ``@step`` attached to a function (read it as ``fn.__agentspan_step__``)."""

    name: str
    """Part of every key of this step; defaults to the function's qualified name."""
    kind: str
    """How the step is shown and counted (``step``, ``tool``, ``llm``...)."""
    retries: int
    """Extra attempts when the function raises."""
    retry_delay: float
    """Seconds before the first retry, doubled on each further one."""
    in_doubt: InDoubt
    """What to do when the step started in a process that died."""
    volatile: tuple[str, ...]
    """Argument fields that do not identify the call (ignored by the fingerprint)."""
    codec: Codec = dataclasses.field(repr=False, compare=False)


@dataclasses.dataclass(frozen=True)
class FunctionDefinition:
    """What ``@function`` attached to a function (read it as ``fn.__agentspan_function__``)."""

    name: str
    """The name executions are created and claimed by."""
    fn: Callable[..., Any] = dataclasses.field(repr=False)
    strict: bool
    """Fail on divergence instead of re-executing from the divergent step."""
    codec: Codec = dataclasses.field(repr=False, compare=False)
    framework: str | None = None
    """What the function runs (``native``, ``langgraph``, ``openai_agents``, ``crewai``, ``google_adk``),
    recorded with its executions; ``None`` for a plain durable function."""

    @staticmethod
    def of(fn: Callable[..., Any]) -> FunctionDefinition:
        """The definition attached to ``fn``; a clear error if it was not decorated."""
        found = getattr(fn, "__agentspan_function__", None)
        if not isinstance(found, FunctionDefinition):
            raise ConfigurationError(
                f"{getattr(fn, '__qualname__', fn)!r} is not a durable function; decorate it with"
                " @agentspan.durable.function"
            )
        return found

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """The execution input for a call with ``args`` and ``kwargs``: arguments by parameter name."""
        return _bind(self.fn, self.name, args, kwargs)


def _bind(fn: Callable[..., Any], name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    signature, names = _plan(fn)
    if names is not None and not kwargs and len(args) == len(names):
        return dict(zip(names, args, strict=True))  # the common case, without bind()
    try:
        bound = signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise InvalidInputError(f"cannot call {name}{signature}: {exc}") from None
    arguments: dict[str, Any] = {}
    for param_name, value in bound.arguments.items():
        param = signature.parameters[param_name]
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            arguments[param_name] = list(value)
        elif param.kind is inspect.Parameter.VAR_KEYWORD:
            arguments.update(value)
        else:
            arguments[param_name] = value
    return arguments


@functools.lru_cache(maxsize=1024)
def _plan(fn: Callable[..., Any]) -> tuple[inspect.Signature, tuple[str, ...] | None]:
    """``fn``'s signature, and its parameter names when positional arguments map onto them one to
    one (only positional-or-keyword parameters without defaults)."""
    signature = inspect.signature(fn)
    simple = all(
        p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and p.default is inspect.Parameter.empty
        for p in signature.parameters.values()
    )
    return signature, tuple(signature.parameters) if simple else None


def _check_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConfigurationError(f"name {name!r} is not valid: use 1 to 200 letters, digits and _ . : - / characters")
    return name


@overload
def step(fn: F, /) -> F: ...
@overload
def step(
    *,
    name: str | None = None,
    kind: str = "step",
    retries: int = 0,
    retry_delay: float = 1.0,
    in_doubt: InDoubt = InDoubt.REEXECUTE,
    volatile: tuple[str, ...] = (),
) -> Callable[[F], F]: ...
def step(
    fn: F | None = None,
    /,
    *,
    name: str | None = None,
    kind: str = "step",
    retries: int = 0,
    retry_delay: float = 1.0,
    in_doubt: InDoubt = InDoubt.REEXECUTE,
    volatile: tuple[str, ...] = (),
) -> F | Callable[[F], F]:
    """Make every call of a function a durable step (sync or async).

    Inside a durable execution, a call that completed before returns its recorded result without
    running; outside one, the function runs as if undecorated (so it stays easy to unit-test).
    Arguments and the return value must be JSON or convertible (pydantic models, dataclasses); a
    declared return type is rebuilt on replay.

    Args:
        name: The step name in keys and the journal (default: the function's qualified name).
        kind: How the step is shown and counted.
        retries: Extra attempts when the function raises (errors marked non-retryable excepted).
        retry_delay: Seconds before the first retry, doubled each time.
        in_doubt: What to do with a call that started in a process that died.
        volatile: Argument fields (at any depth) that must not change the step's identity.
    """
    if retries < 0 or retry_delay < 0:
        raise ConfigurationError("retries and retry_delay must not be negative")

    def decorate(func: F) -> F:
        definition = StepDefinition(
            name=_check_name(name or func.__qualname__.replace("<locals>.", "")),
            kind=kind,
            retries=retries,
            retry_delay=retry_delay,
            in_doubt=in_doubt,
            volatile=tuple(volatile),
            codec=return_codec(func),
        )
        options: dict[str, Any] = {
            "codec": definition.codec, "volatile": definition.volatile, "in_doubt": definition.in_doubt,
            "retries": definition.retries, "retry_delay": definition.retry_delay,
        }  # fmt: skip

        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                if current_context() is None:
                    return await func(*args, **kwargs)
                arguments = _bind(func, definition.name, args, kwargs)
                return await run_step_async(kind, definition.name, arguments, lambda: func(*args, **kwargs), **options)

            wrapper: Any = async_wrapper
        else:

            @functools.wraps(func)
            def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
                if current_context() is None:
                    return func(*args, **kwargs)
                arguments = _bind(func, definition.name, args, kwargs)
                return run_step(kind, definition.name, arguments, lambda: func(*args, **kwargs), **options)

            wrapper = sync_wrapper
        wrapper.__agentspan_step__ = definition
        return wrapper  # type: ignore[no-any-return]

    return decorate if fn is None else decorate(fn)


@overload
def function(fn: F, /) -> F: ...
@overload
def function(*, name: str | None = None, strict: bool = False) -> Callable[[F], F]: ...
def function(fn: F | None = None, /, *, name: str | None = None, strict: bool = False) -> F | Callable[[F], F]:
    """Declare a durable function: an entry point that runs as a durable execution.

    The function is returned unchanged (call it directly in unit tests); a worker runs it by ``name``
    with the execution's input as keyword arguments, replaying its completed steps after a crash.

    Args:
        name: The name executions are started and claimed by (default: the function's name).
        strict: Fail the execution when a re-run diverges from the journal, instead of
            re-executing from the divergent step.
    """

    def decorate(func: F) -> F:
        func.__agentspan_function__ = FunctionDefinition(  # type: ignore[attr-defined]
            name=_check_name(name or func.__name__), fn=func, strict=strict, codec=return_codec(func)
        )
        return func

    return decorate if fn is None else decorate(fn)


def current_step() -> StepInfo | None:
    """The running step's execution id, key, attempt and idempotency key; ``None`` outside a step."""
    return current_step_info()


def wait_for_signal(name: str) -> Any:
    """Wait for the signal ``name`` and return its payload.

    The execution is suspended (no process or lease is held) until the signal is delivered through
    the API (``POST /api/executions/{id}/signals/{name}``); then a worker resumes it and this call
    returns the payload. Only inside a durable execution.
    """
    return _require("wait_for_signal").wait_for_signal(name)


def sleep(seconds: float) -> None:
    """Wait ``seconds`` durably: the execution is suspended and the server resumes it when due."""
    if seconds < 0:
        raise InvalidInputError("sleep() needs a non-negative number of seconds")
    _require("sleep").sleep(seconds)


def _require(what: str) -> Any:
    found = current_context()
    if found is None:
        raise ConfigurationError(f"{what}() only works inside a durable execution (run by a worker)")
    return found[0]

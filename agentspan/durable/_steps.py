"""Running one step: replay it from the journal, or execute it and record the outcome."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from ..errors import AgentspanError, NotJSONError
from ._codec import Codec, to_json
from ._context import InDoubt, WorkerStopping, _Call, current_context, not_json

__all__ = ["run_step", "run_step_async"]

T = TypeVar("T")
_PLAIN = Codec(None)


def _begin(
    kind: str, name: str, input: Any, identity: Any, volatile: tuple[str, ...], in_doubt: InDoubt, ordered: bool
) -> _Call | None:
    """The step call in the current execution, or ``None`` outside of one."""
    found = current_context()
    if found is None:
        return None
    data = to_json(input, f"the input of step {name!r}", check=False)
    return found[0].begin(kind, name, data, identity=identity, volatile=volatile, in_doubt=in_doubt, ordered=ordered)


def _retry(call: _Call, exc: Exception, retries: int, retry_delay: float) -> float | None:
    """Seconds to wait before the next attempt, or ``None`` when the error is final.

    A worker asked to stop does not make the error final: the step is left in doubt and the execution
    handed back, so the worker that resumes it makes the next attempt.
    """
    retryable = not isinstance(exc, AgentspanError) or exc.retryable
    if call.attempt > retries or not retryable:
        return None
    _stop_if_asked(call, exc)
    call.attempt += 1
    return float(retry_delay * 2 ** (call.attempt - 2))


def _stop_if_asked(call: _Call, cause: BaseException | None = None) -> None:
    if call.ctx.stop_requested.is_set():
        call.abandon()
        raise WorkerStopping() from cause


def _backoff(call: _Call, delay: float) -> None:
    """Wait ``delay`` seconds before the next attempt, or stop at once when the worker is asked to."""
    call.ctx.stop_requested.wait(delay)
    _stop_if_asked(call)


def _finish(call: _Call, result: Any, codec: Codec) -> tuple[Any, Any]:
    try:
        data = codec.encode(result, f"the output of step {call.name!r}")
    except NotJSONError as exc:
        error = not_json(call, exc)
        call.fail(error)
        raise error from None
    return data, codec.decode(data)


def run_step(
    kind: str,
    name: str,
    input: Any,
    fn: Callable[[], T],
    *,
    codec: Codec = _PLAIN,
    identity: Any = None,
    volatile: tuple[str, ...] = (),
    in_doubt: InDoubt = InDoubt.REEXECUTE,
    ordered: bool = True,
    retries: int = 0,
    retry_delay: float = 1.0,
    usage_of: Callable[[Any], dict[str, int] | None] | None = None,
) -> T:
    """Run ``fn`` as a durable step of the current execution, or plainly outside of one.

    Args:
        kind: ``llm``, ``tool``, ``step``...: how the step is shown and counted.
        name: The model, tool or function name; part of the key.
        input: What the step is called with (JSON, or convertible); recorded, and fingerprinted
            into the key unless ``identity`` is given.
        fn: The call itself, with no arguments.
        codec: Turns the output into JSON and back (by default: JSON as-is).
        identity: What identifies the call instead of ``input``, when the input carries noise.
        volatile: Dict keys ignored by the fingerprint at any depth (random ids, timestamps).
        in_doubt: What to do if the step started in a process that died.
        ordered: ``False`` for a call named by a unique id (a model's tool call id) among calls that may
            start in another order on a rerun: when it is not on record it is new work, not a sign that
            the code changed (no divergence), and the recorded calls around it still replay.
        retries: How many more times to try when ``fn`` raises.
        retry_delay: Seconds before the first retry; doubled each time.
        usage_of: Reads token usage from the result, recorded with the step (model calls).
    """
    call = _begin(kind, name, input, identity, volatile, in_doubt, ordered)
    if call is None:
        return fn()
    if call.replayed:
        return call.replay(codec.decode)  # type: ignore[no-any-return]
    while True:
        token = call.enter()
        try:
            result = fn()
        except Exception as exc:
            delay = _retry(call, exc, retries, retry_delay)
            if delay is None:
                call.fail(exc)
                raise
            _backoff(call, delay)
            continue
        except BaseException:  # the worker stops, the execution suspends, the process is interrupted
            call.abandon()
            raise
        finally:
            call.exit(token)
        data, value = _finish(call, result, codec)
        call.complete(data, None if usage_of is None else usage_of(value))
        return value  # type: ignore[no-any-return]


async def run_step_async(
    kind: str,
    name: str,
    input: Any,
    fn: Callable[[], Awaitable[T]],
    *,
    codec: Codec = _PLAIN,
    identity: Any = None,
    volatile: tuple[str, ...] = (),
    in_doubt: InDoubt = InDoubt.REEXECUTE,
    ordered: bool = True,
    retries: int = 0,
    retry_delay: float = 1.0,
    usage_of: Callable[[Any], dict[str, int] | None] | None = None,
) -> T:
    """:func:`run_step` for a coroutine function. Arguments are the same."""
    call = _begin(kind, name, input, identity, volatile, in_doubt, ordered)
    if call is None:
        return await fn()
    if call.replayed:
        return call.replay(codec.decode)  # type: ignore[no-any-return]
    # Remote writes go through a thread so that concurrent steps share requests (group commit)
    # instead of blocking the event loop one after another.
    inline = call.ctx.writer.inline
    while True:
        token = call.enter()
        try:
            result = await fn()
        except Exception as exc:
            delay = _retry(call, exc, retries, retry_delay)
            if delay is None:
                if inline:
                    call.fail(exc)
                else:
                    await asyncio.to_thread(call.fail, exc)
                raise
            await asyncio.to_thread(_backoff, call, delay)
            continue
        except BaseException:  # the worker stops, the execution suspends, the task is cancelled
            call.abandon()
            raise
        finally:
            call.exit(token)
        data, value = _finish(call, result, codec)
        usage = None if usage_of is None else usage_of(value)
        if inline:
            call.complete(data, usage)
        else:
            await asyncio.to_thread(call.complete, data, usage)
        return value  # type: ignore[no-any-return]

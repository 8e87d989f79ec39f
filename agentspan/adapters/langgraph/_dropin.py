"""``durable(graph)``: the compiled graph's own calls, each run a durable execution.

```python
from agentspan.adapters.langgraph import durable

app = durable(builder.compile(checkpointer=saver))     # the one changed line
state = app.invoke({"messages": [("user", "compare the offers")]}, config)
state["messages"][-1].content                          # LangChain message objects, as before
```

``invoke``, ``ainvoke``, ``stream`` and ``astream`` take what the graph's own methods take and return
what they return: the final state with LangChain message objects, the stream's items. Each call starts
an execution that a worker thread of this process runs with LangGraph's own runner, every model call and
tool call a durable step; when an unfinished execution exists for the same graph, input and config
because its process died, the call resumes it instead. Every other attribute (``get_state``, ``name``...)
is the graph's.

An ``interrupt()`` returns as LangGraph returns it: the state so far with ``__interrupt__``, while the
execution waits on the server (no process held). ``invoke(Command(resume=answer), config)`` with the
same thread answers it, from this process or another one, and the execution goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

from langgraph.types import Command, Interrupt

from ...durable import ExecutionHandle, FunctionDefinition, Runtime
from ...durable._runtime import find_unfinished
from ...errors import ConfigurationError, ConflictError
from ...runtime import Execution, ExecutionStatus
from .._default_runtime import default_runtime
from ._graph import execution_input, graph_function
from ._result import GraphHandle
from ._serde import decode_state
from ._stream import GraphStream, open_sink

__all__ = ["DurableGraph", "durable"]

_INTERRUPT = "__interrupt__"


def durable(graph: Any, *, runtime: Any = None, name: str | None = None) -> DurableGraph:
    """The compiled ``graph`` with ``invoke``/``ainvoke``/``stream``/``astream`` run durably.

    Args:
        graph: A compiled graph (``StateGraph(...).compile()``, ``create_react_agent(...)``...).
        runtime: The ``Runtime`` or ``AgentRuntime`` that keeps the executions; default the process-wide
            one (embedded SQLite, or the server at ``AGENTSPAN_SERVER_URL``; see ``use_runtime``).
        name: The name its executions run under (default: the graph's name, else ``"langgraph"``).
    """
    if not hasattr(graph, "invoke") or not hasattr(graph, "stream"):
        raise ConfigurationError(f"durable() takes a compiled LangGraph graph, not {type(graph).__name__}")
    found = None if runtime is None else getattr(runtime, "_runtime", runtime)
    if found is not None and not isinstance(found, Runtime):
        raise ConfigurationError(f"runtime must be a Runtime or an AgentRuntime, not {type(runtime).__name__}")
    return DurableGraph(graph, found, name)


class DurableGraph:
    """A compiled graph whose runs are durable executions; see :func:`durable`."""

    def __init__(self, graph: Any, runtime: Runtime | None, name: str | None) -> None:
        self.graph = graph
        """The compiled graph itself."""
        self._runtime = runtime
        self._fn = graph_function(graph, name)
        self._name = FunctionDefinition.of(self._fn).name

    def __getattr__(self, attribute: str) -> Any:
        return getattr(self.graph, attribute)

    def __repr__(self) -> str:
        return f"durable({self.graph!r})"

    @property
    def runtime(self) -> Runtime:
        """The runtime that keeps this graph's executions."""
        return self._runtime if self._runtime is not None else default_runtime()

    # --- invoke ------------------------------------------------------------------------------------------
    def invoke(self, input: Any, config: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Like the graph's ``invoke``: the final state (or the state at an ``interrupt()`` with
        ``__interrupt__``), LangChain messages as objects. Keyword arguments other than ``config`` are
        not supported (a durable run replays with the graph's defaults)."""
        _no_options(kwargs, "invoke")
        if isinstance(input, Command):
            handle, answered = self._resume(input, config)
        else:
            handle, answered = self._start(input, config), None
        return self._outcome(handle, config, answered)

    async def ainvoke(self, input: Any, config: dict[str, Any] | None = None, **kwargs: Any) -> Any:
        """Like the graph's ``ainvoke`` (see :meth:`invoke`)."""
        return await asyncio.to_thread(self.invoke, input, config, **kwargs)

    def _start(self, input: Any, config: dict[str, Any] | None) -> ExecutionHandle:
        runtime = self.runtime
        data = execution_input(input, config)
        execution = find_unfinished(runtime.client, self._name, data) or runtime.client.create_execution(
            self._name, data, framework="langgraph"
        )
        runtime.ensure_worker(self._fn)
        return ExecutionHandle(runtime.client, execution.id)

    def _resume(self, command: Command[Any], config: dict[str, Any] | None) -> tuple[ExecutionHandle, str]:
        """Answer the interrupt the thread's execution waits at with ``command.resume``."""
        if command.update is not None or command.goto:
            raise ConfigurationError(
                "a durable graph takes Command(resume=...) to answer an interrupt(); update and goto are not supported"
            )
        thread = _thread_id(config)
        if thread is None:
            raise ConfigurationError("Command(resume=...) needs the interrupted run's config with its thread_id")
        runtime = self.runtime
        waiting = self._waiting(runtime, thread)
        if waiting is None:
            raise ConflictError(f"no run of {self._name} on thread {thread!r} is waiting at an interrupt()")
        execution_handle = ExecutionHandle(runtime.client, waiting.id)
        handle = GraphHandle(execution_handle)
        pending = handle.pending_interrupt()
        if pending is None:
            raise ConflictError(f"execution {waiting.id} is not waiting at an interrupt()")
        answer = command.resume
        if (
            isinstance(answer, dict)
            and len(pending.values) > 1
            and set(answer) == set(_ids(pending.signal, pending.values))
        ):
            answer = [answer[i] for i in _ids(pending.signal, pending.values)]
        runtime.ensure_worker(self._fn)
        handle.resume(answer)
        return execution_handle, pending.signal

    def _waiting(self, runtime: Runtime, thread: str) -> Execution | None:
        cursor: str | None = None
        while True:
            page = runtime.client.list_executions(
                status=ExecutionStatus.WAITING, name=self._name, limit=100, cursor=cursor
            )
            for execution in page.items:
                configured = execution.input.get("config") if isinstance(execution.input, dict) else None
                if _thread_id(configured) == thread or execution.id == thread:
                    return execution
            if page.next_cursor is None:
                return None
            cursor = page.next_cursor

    def _outcome(self, handle: ExecutionHandle, config: dict[str, Any] | None, answered: str | None) -> Any:
        execution = _settle(handle, answered)
        if execution.status is not ExecutionStatus.WAITING:
            return decode_state(handle.result(timeout=0))
        pending = GraphHandle(handle).pending_interrupt()
        assert pending is not None
        thread = _thread_id(config) or execution.id
        snapshot = self.graph.get_state({"configurable": {"thread_id": thread}})
        values = dict(snapshot.values) if isinstance(snapshot.values, dict) else {}
        ids = _ids(pending.signal, pending.values)
        return {**values, _INTERRUPT: [Interrupt(value=v, id=i) for v, i in zip(pending.values, ids, strict=True)]}

    # --- stream ------------------------------------------------------------------------------------------
    def stream(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        stream_mode: str | Sequence[str] = "values",
        **kwargs: Any,
    ) -> Iterator[Any]:
        """Like the graph's ``stream``: its items, live, as the worker thread produces them."""
        _no_options(kwargs, "stream")
        if isinstance(input, Command):
            raise ConfigurationError("answer an interrupt() with invoke(Command(resume=...), config), not stream()")
        return start_stream(self.runtime, self._fn, input, config, stream_mode)

    async def astream(
        self,
        input: Any,
        config: dict[str, Any] | None = None,
        *,
        stream_mode: str | Sequence[str] = "values",
        **kwargs: Any,
    ) -> AsyncIterator[Any]:
        """Like the graph's ``astream`` (see :meth:`stream`)."""
        items = await asyncio.to_thread(self.stream, input, config, stream_mode=stream_mode, **kwargs)
        end = object()
        while (item := await asyncio.to_thread(next, items, end)) is not end:
            yield item


def start_stream(
    runtime: Runtime, fn: Any, input: Any, config: dict[str, Any] | None, stream_mode: str | Sequence[str]
) -> GraphStream:
    """Start an execution of graph function ``fn`` whose stream items are forwarded to the result."""
    sink = open_sink(stream_mode)
    try:
        data = execution_input(input, config, sink.token)
        execution = runtime.client.create_execution(FunctionDefinition.of(fn).name, data, framework="langgraph")
        runtime.ensure_worker(fn)
    except BaseException:
        sink.close()
        raise
    return GraphStream(GraphHandle(ExecutionHandle(runtime.client, execution.id)), sink)


def _settle(handle: ExecutionHandle, answered: str | None) -> Execution:
    """Wait until the execution ends or waits at an interrupt (other than the one just answered)."""
    after = 0
    while True:
        execution = handle.get()
        if execution.status.is_terminal:
            return execution
        signal = execution.wait.signal if execution.wait is not None else None
        if (
            execution.status is ExecutionStatus.WAITING
            and signal
            and signal.startswith("interrupt:")
            and signal != answered
        ):
            return execution
        events = handle.client.wait_events(handle.execution_id, after=after, timeout=30.0)
        after = events[-1].id if events else after


def _ids(signal: str, values: list[Any]) -> list[str]:
    return [f"{signal}#{i}" for i in range(1, len(values) + 1)]


def _thread_id(config: Any) -> str | None:
    configurable = config.get("configurable") if isinstance(config, dict) else None
    thread = configurable.get("thread_id") if isinstance(configurable, dict) else None
    return str(thread) if thread is not None else None


def _no_options(kwargs: dict[str, Any], method: str) -> None:
    if kwargs:
        raise ConfigurationError(
            f"durable graph {method}() does not take {', '.join(sorted(kwargs))}: a durable run replays with the"
            " graph's own settings (pass only input and config)"
        )

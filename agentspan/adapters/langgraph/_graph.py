"""A compiled graph as a durable function: LangGraph runs it, the hooks make its calls durable steps.

The execution input is ``{"input": <the graph input as JSON>, "config": {...}}``; the output is the
final state as JSON (messages in ``messages_to_dict`` form). A rerun after a crash runs the graph again
from its input; every completed model and tool call returns its recorded result without running.

With the graph's own checkpointer, the run needs a thread: ``config["configurable"]["thread_id"]``, by
default the execution id. The thread's checkpoint before the run is recorded as a step, and every
attempt runs from that checkpoint, so a rerun replays the same supersteps (instead of continuing from
the half-finished attempt's checkpoints, which would skip or repeat work) and leaves the thread's latest
checkpoint at the end of the completed run.
"""

from __future__ import annotations

import copy
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver

from ...durable import FunctionDefinition, run_step, run_step_async
from ...durable._codec import Codec, to_json
from ...durable._context import current_context
from ...durable._definitions import _check_name
from ._keys import RunState, TaskRecorder, reset_run, use_run
from ._patch import install
from ._serde import decode_state, input_to_json, state_to_json

__all__ = ["graph_function", "graph_input", "graph_name"]

DEFAULT_NAME = "langgraph"
_LANGGRAPH_DEFAULT_NAME = "LangGraph"
_functions: weakref.WeakKeyDictionary[Any, dict[str, Callable[..., Any]]] = weakref.WeakKeyDictionary()


def graph_name(graph: Any, name: str | None = None) -> str:
    """The name a graph runs under: ``name``, else the graph's own name unless it is LangGraph's
    default (``"LangGraph"``), else ``"langgraph"``."""
    if name:
        return name
    own = getattr(graph, "name", None)
    return own if isinstance(own, str) and own and own != _LANGGRAPH_DEFAULT_NAME else DEFAULT_NAME


def graph_input(value: Any) -> Any:
    """The graph input as JSON for an execution (``("user", "...")`` tuples become message dicts)."""
    return input_to_json(value)


def _is_async(graph: Any, seen: set[int] | None = None) -> bool:
    """Whether some node of the graph (or of a subgraph) is a coroutine function only."""
    seen = set() if seen is None else seen
    if id(graph) in seen:
        return False
    seen.add(id(graph))
    for node in getattr(graph, "nodes", {}).values():
        bound = getattr(node, "bound", None)
        if getattr(bound, "func", "missing") is None and getattr(bound, "afunc", None) is not None:
            return True
        if hasattr(bound, "nodes") and hasattr(bound, "ainvoke") and _is_async(bound, seen):
            return True
    return False


def _thread_config(graph: Any, config: dict[str, Any]) -> dict[str, Any] | None:
    """The ``configurable`` dict when the graph has a checkpointer (with a thread id), else ``None``."""
    if not isinstance(getattr(graph, "checkpointer", None), BaseCheckpointSaver):
        return None
    configurable: dict[str, Any] = config.setdefault("configurable", {})
    if "thread_id" not in configurable:
        found = current_context()
        configurable["thread_id"] = found[0].execution_id if found is not None else uuid.uuid4().hex
    return configurable


def _start_checkpoint(configurable: dict[str, Any], head: Any) -> None:
    # A checkpoint id that does not exist makes LangGraph start from an empty state, which is what the
    # thread held before the first attempt when it had no checkpoint yet.
    thread = configurable["thread_id"]
    configurable["checkpoint_id"] = head if isinstance(head, str) else f"agentspan-empty-{thread}"


def _head(snapshot: Any) -> str | None:
    checkpoint_id = (snapshot.config.get("configurable") or {}).get("checkpoint_id")
    return checkpoint_id if isinstance(checkpoint_id, str) else None


@contextmanager
def _run_scope(config: dict[str, Any]) -> Iterator[None]:
    state = RunState()
    config["callbacks"] = [TaskRecorder(state)]
    token = use_run(state)
    try:
        yield
    finally:
        reset_run(token)


def graph_function(graph: Any, name: str | None = None) -> Callable[..., Any]:
    """The durable function a worker runs for ``graph`` (the same object each time it is asked).

    Args:
        graph: A compiled graph (``StateGraph(...).compile()``, ``create_react_agent(...)``...).
        name: The name executions are created and claimed by (see :func:`graph_name`).
    """
    install()
    name = _check_name(graph_name(graph, name))
    known = _functions.setdefault(graph, {})
    if name in known:
        return known[name]

    if _is_async(graph):

        async def async_entry(input: Any = None, config: dict[str, Any] | None = None) -> Any:
            cfg = copy.deepcopy(config or {})
            configurable = _thread_config(graph, cfg)
            if configurable is not None:
                request = {"thread_id": configurable["thread_id"]}

                async def head() -> str | None:
                    return _head(await graph.aget_state({"configurable": dict(configurable)}))

                _start_checkpoint(configurable, await run_step_async("step", "langgraph.checkpoint", request, head))
            with _run_scope(cfg):
                state = await graph.ainvoke(decode_state(input), cfg)
            return state_to_json(state)

        entry: Callable[..., Any] = async_entry
    else:

        def sync_entry(input: Any = None, config: dict[str, Any] | None = None) -> Any:
            cfg = copy.deepcopy(config or {})
            configurable = _thread_config(graph, cfg)
            if configurable is not None:
                request = {"thread_id": configurable["thread_id"]}
                found = run_step(
                    "step", "langgraph.checkpoint", request,
                    lambda: _head(graph.get_state({"configurable": dict(configurable)})),
                )  # fmt: skip
                _start_checkpoint(configurable, found)
            with _run_scope(cfg):
                state = graph.invoke(decode_state(input), cfg)
            return state_to_json(state)

        entry = sync_entry
    entry.__agentspan_function__ = FunctionDefinition(  # type: ignore[attr-defined]
        name=name, fn=entry, strict=False, codec=Codec(None)
    )
    known[name] = entry
    return entry


def execution_input(value: Any, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The execution input for running a graph on ``value`` with ``config`` (JSON)."""
    return {"input": graph_input(value), "config": to_json(config or {}, "the graph config")}

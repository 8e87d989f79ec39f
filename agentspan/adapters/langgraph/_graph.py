"""A compiled graph as a durable function: LangGraph runs it, the hooks make its calls durable steps.

The execution input is ``{"input": <the graph input as JSON>, "config": {...}}``; the output is the
final state as JSON (messages in ``messages_to_dict`` form). A rerun after a crash runs the graph again
from its input; every completed model and tool call returns its recorded result without running.

With the graph's own checkpointer, the run needs a thread: ``config["configurable"]["thread_id"]``, by
default the execution id. The thread's checkpoint before the run is recorded as a step, and every
attempt runs from that checkpoint, so a rerun replays the same supersteps (instead of continuing from
the half-finished attempt's checkpoints, which would skip or repeat work) and leaves the thread's latest
checkpoint at the end of the completed run.

``interrupt()`` (with a checkpointer) becomes a durable wait: the run records what is asked as step
``langgraph.interrupt``, suspends the execution until the signal ``interrupt:<n>`` (the n-th interrupt of
the run) brings the answer, then resumes the graph with ``Command(resume=answer)`` from the thread's
latest checkpoint. A rerun replays every pass the same way: the graph from the recorded start checkpoint
to the first interrupt, the recorded answer, the next pass... LangGraph runs an interrupted node again
from its start when it resumes, so the calls that node made before ``interrupt()`` are made again (new
steps); calls made by earlier nodes are not.

With a stream token in the input (``AgentRuntime.stream``), each pass runs with ``stream`` instead of
``invoke`` and forwards LangGraph's items to the caller's sink in this process (see :mod:`._stream`).
"""

from __future__ import annotations

import asyncio
import copy
import uuid
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.types import Command

from ...durable import FunctionDefinition, run_step, run_step_async
from ...durable._codec import Codec, to_json
from ...durable._context import current_context
from ...durable._definitions import _check_name, _require
from ...errors import ConfigurationError
from .._guardrails import check_answer, check_answer_async, guarding_of
from ._guard import answer_text, check_prompt, feedback_input, guardable, with_answer
from ._keys import RunState, TaskRecorder, reset_run, use_run
from ._patch import install
from ._serde import decode_state, input_to_json, safe_json, state_to_json
from ._stream import Sink, find_sink, internal_modes

__all__ = ["INTERRUPT_STEP", "graph_function", "graph_input", "graph_name", "interrupt_signal", "retry_refusal"]

DEFAULT_NAME = "langgraph"
_LANGGRAPH_DEFAULT_NAME = "LangGraph"
INTERRUPT = "__interrupt__"
INTERRUPT_STEP = "langgraph.interrupt"
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


def _has_messages(graph: Any) -> bool:
    return "messages" in (getattr(graph, "channels", None) or {})


def _graph_value(graph: Any, input: Any, prompt: Any) -> Any:
    """What the graph is invoked with: a string means one user message for a graph with a ``messages``
    channel (as ``graph.invoke("...")`` would need), and an execution started by name (``{"prompt":
    ...}``, from ``start(name, prompt)`` or ``agentspan run NAME PROMPT``) is its prompt."""
    value = decode_state(prompt if input is None and prompt is not None else input)
    if isinstance(value, str) and _has_messages(graph):
        return {"messages": [HumanMessage(value)]}
    return value


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


# --- interrupts --------------------------------------------------------------------------------------------
def interrupt_signal(n: int) -> str:
    """The signal that answers the ``n``-th ``interrupt()`` of a run (1, 2, ...): ``interrupt:<n>``."""
    return f"interrupt:{n}"


def _interrupts(state: Any, configurable: dict[str, Any] | None) -> list[Any]:
    """The interrupts a run stopped at (``__interrupt__`` in its result), if any."""
    found = state.get(INTERRUPT) if isinstance(state, dict) else None
    if not found:
        return []
    if configurable is None:
        raise ConfigurationError(
            "the graph called interrupt() but has no checkpointer to resume from: compile it with one"
            " (for example InMemorySaver, or SqliteSaver to resume in another process)"
        )
    return list(found)


def _from_latest(configurable: dict[str, Any] | None) -> None:
    # The answer resumes the checkpoint this attempt's pass stopped at: the thread's latest.
    if configurable is not None:
        configurable.pop("checkpoint_id", None)


def _wait_for_answer(n: int, interrupts: list[Any]) -> Command[Any]:
    """Record what the ``n``-th interrupt asks, wait durably for its answer, and build the resume command.

    The question is the output of step ``langgraph.interrupt`` (input ``{"signal": "interrupt:<n>"}``),
    so the journal shows it while the execution waits for the signal. Interrupt ids change with every
    fresh run of the graph, so the signal is numbered instead. With several interrupts at once, a list
    answer of the same length answers each in order.
    """
    signal = interrupt_signal(n)
    question = run_step("step", INTERRUPT_STEP, {"signal": signal}, lambda: [safe_json(i.value) for i in interrupts])
    # A wait of kind "interrupt" recording the question and the framework, for the approvals inbox.
    answer = _require("interrupt").wait_for_signal(
        signal, kind="interrupt", details={"question": question, "framework": "langgraph"}
    )
    if len(interrupts) > 1 and isinstance(answer, list) and len(answer) == len(interrupts):
        return Command(resume={i.id: value for i, value in zip(interrupts, answer, strict=True)})
    return Command(resume=answer)


# --- one pass of the graph -------------------------------------------------------------------------------
class _Final:
    """The final state of a streamed pass, as ``invoke`` would return it."""

    def __init__(self) -> None:
        self.state: Any = None
        self.interrupts: list[Any] = []

    def add(self, mode: str, item: Any) -> None:
        if mode == "values":
            self.state = item
        elif mode == "updates" and isinstance(item, dict) and INTERRUPT in item:
            self.interrupts.extend(item[INTERRUPT])

    def result(self) -> Any:
        if self.interrupts and isinstance(self.state, dict):
            return {**self.state, INTERRUPT: self.interrupts}
        if self.interrupts:
            return {INTERRUPT: self.interrupts}
        return self.state


def _run(graph: Any, value: Any, cfg: dict[str, Any], sink: Sink | None) -> Any:
    if sink is None:
        return graph.invoke(value, cfg)
    final = _Final()
    for chunk in graph.stream(value, cfg, stream_mode=internal_modes(sink)):
        mode, item = chunk[0], chunk[-1]
        final.add(mode, item)
        sink.put(mode, item)
    return final.result()


async def _arun(graph: Any, value: Any, cfg: dict[str, Any], sink: Sink | None) -> Any:
    if sink is None:
        return await graph.ainvoke(value, cfg)
    final = _Final()
    async for chunk in graph.astream(value, cfg, stream_mode=internal_modes(sink)):
        mode, item = chunk[0], chunk[-1]
        final.add(mode, item)
        sink.put(mode, item)
    return final.result()


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

        async def async_entry(
            input: Any = None,
            config: dict[str, Any] | None = None,
            stream: str | None = None,
            prompt: Any = None,
            guardrails: list[str] | None = None,
        ) -> Any:
            guarding = guarding_of(name, guardrails, "langgraph")
            cfg = copy.deepcopy(config or {})
            configurable = _thread_config(graph, cfg)
            if configurable is not None:
                request = {"thread_id": configurable["thread_id"]}

                async def head() -> str | None:
                    return _head(await graph.aget_state({"configurable": dict(configurable)}))

                _start_checkpoint(configurable, await run_step_async("step", "langgraph.checkpoint", request, head))
            sink = find_sink(stream)
            count = 0

            async def run_pass(value: Any) -> Any:
                nonlocal count
                state = await _arun(graph, value, cfg, sink)
                while pending := _interrupts(state, configurable):
                    count += 1
                    command = _wait_for_answer(count, pending)
                    _from_latest(configurable)
                    state = await _arun(graph, command, cfg, sink)
                return state

            checked: str | None = None
            try:
                with _run_scope(cfg):
                    value = _graph_value(graph, input, prompt)
                    if guarding is not None:
                        value = await asyncio.to_thread(check_prompt, guarding, value)
                    state = await run_pass(value)
                    if guarding is not None:

                        async def again(previous: Any, feedback: str) -> Any:
                            _from_latest(configurable)
                            return await run_pass(feedback_input(value, previous, feedback, configurable is not None))

                        state, checked = await check_answer_async(guarding, state, answer_text, again)
            finally:
                if sink is not None:
                    sink.finish()
            output = state_to_json(state)
            return output if checked is None else with_answer(output, checked)

        entry: Callable[..., Any] = async_entry
    else:

        def sync_entry(
            input: Any = None,
            config: dict[str, Any] | None = None,
            stream: str | None = None,
            prompt: Any = None,
            guardrails: list[str] | None = None,
        ) -> Any:
            guarding = guarding_of(name, guardrails, "langgraph")
            cfg = copy.deepcopy(config or {})
            configurable = _thread_config(graph, cfg)
            if configurable is not None:
                request = {"thread_id": configurable["thread_id"]}
                found = run_step(
                    "step", "langgraph.checkpoint", request,
                    lambda: _head(graph.get_state({"configurable": dict(configurable)})),
                )  # fmt: skip
                _start_checkpoint(configurable, found)
            sink = find_sink(stream)
            count = 0

            def run_pass(value: Any) -> Any:
                nonlocal count
                state = _run(graph, value, cfg, sink)
                while pending := _interrupts(state, configurable):
                    count += 1
                    command = _wait_for_answer(count, pending)
                    _from_latest(configurable)
                    state = _run(graph, command, cfg, sink)
                return state

            checked: str | None = None
            try:
                with _run_scope(cfg):
                    value = _graph_value(graph, input, prompt)
                    if guarding is not None:
                        value = check_prompt(guarding, value)
                    state = run_pass(value)
                    if guarding is not None:

                        def again(previous: Any, feedback: str) -> Any:
                            _from_latest(configurable)  # asked again on the thread as the first pass left it
                            return run_pass(feedback_input(value, previous, feedback, configurable is not None))

                        state, checked = check_answer(guarding, state, answer_text, again)
            finally:
                if sink is not None:
                    sink.finish()
            output = state_to_json(state)
            return output if checked is None else with_answer(output, checked)

        entry = sync_entry
    entry.__agentspan_function__ = FunctionDefinition(  # type: ignore[attr-defined]
        name=name, fn=entry, strict=False, codec=Codec(None), framework="langgraph"
    )
    known[name] = entry
    return entry


def retry_refusal(graph: Any) -> str | None:
    """Why guardrails cannot ask ``graph`` again (never: a graph that can be guarded can be asked again);
    a clear error for a graph that cannot be guarded at all (see :func:`._guard.guardable`)."""
    guardable(graph)
    return None


def execution_input(value: Any, config: dict[str, Any] | None = None, stream: str | None = None) -> dict[str, Any]:
    """The execution input for running a graph on ``value`` with ``config`` (JSON); ``stream`` is the
    token of the sink its stream items go to (see :mod:`._stream`)."""
    data = {"input": graph_input(value), "config": to_json(config or {}, "the graph config")}
    if stream is not None:
        data["stream"] = stream
    return data

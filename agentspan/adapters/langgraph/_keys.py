"""Step identity inside a LangGraph run: where in the graph a call happens, stable across processes.

LangGraph tells every node, model call and tool call where it runs through
``langgraph.config.get_config()["metadata"]``: the node, the superstep (``langgraph_step``), the task
path (``("__pregel_pull", "agent")``, or ``("__pregel_push", i, False)`` for the i-th ``Send``) and the
checkpoint namespace (``"agent:<task id>"``, ``"outer:<id>|inner:<id>"`` in subgraphs). Task ids
change on every fresh run, so they are replaced: each namespace segment by the node, step and path of
the task it names (recorded by a callback handler as tasks start), or by its node name alone.

- A model call is identified by that scope, the node attempt (a ``RetryPolicy`` rerun is a new
  attempt, so its calls are new steps), the model's parameters, the tools and options it is called
  with, and the whole conversation it is sent (random message ids ignored): a changed prompt is a
  divergence. Identical calls in one scope are told apart by the durable context's occurrence count.
- A tool call is identified by its scope and the ``tool_call_id`` the model gave, which the replayed
  model step returns unchanged: keys do not depend on the order in which parallel calls finish.
"""

from __future__ import annotations

import contextvars
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage, messages_to_dict

from ...durable._codec import fingerprint
from ._serde import safe_json

__all__ = [
    "Request",
    "RunState",
    "TaskRecorder",
    "current_run",
    "model_request",
    "reset_run",
    "tool_request",
    "use_run",
]

_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_VOLATILE = ("id",)  # message ids are random (uuid4 from add_messages, lc_run--<uuid> from models)


@dataclass
class RunState:
    """What one Agentspan run of a graph knows while the graph runs."""

    tasks: dict[str, str] = field(default_factory=dict)
    """Checkpoint namespace (with task ids) → the task's stable name ``node@step@path``."""
    prompts: dict[str, tuple[int, str]] = field(default_factory=dict)
    """Per namespace: length and fingerprint of the last conversation sent to a model (for deltas)."""
    messages: dict[int, tuple[Any, dict[str, Any], str]] = field(default_factory=dict)
    """``id(message)`` → (the message, its JSON, its fingerprint). State messages are the same objects
    from one superstep to the next, so each is converted and hashed once, not at every model call."""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def encode(self, messages: Sequence[BaseMessage]) -> tuple[list[dict[str, Any]], list[str]]:
        """The messages as JSON and their fingerprints (ids ignored), from the cache when seen before."""
        dicts: list[dict[str, Any]] = []
        prints: list[str] = []
        for message in messages:
            cached = self.messages.get(id(message))
            if cached is None or cached[0] is not message:
                data = messages_to_dict([message])[0]
                cached = (message, data, fingerprint(data, _VOLATILE))
                self.messages[id(message)] = cached
            dicts.append(cached[1])
            prints.append(cached[2])
        return dicts, prints


_run: contextvars.ContextVar[RunState | None] = contextvars.ContextVar("agentspan_langgraph_run", default=None)


def current_run() -> RunState | None:
    """The Agentspan run of a graph that the calling code belongs to, if any."""
    return _run.get()


def use_run(state: RunState | None) -> contextvars.Token[RunState | None]:
    """Make ``state`` the current run (undo with ``reset_run``)."""
    return _run.set(state)


def reset_run(token: contextvars.Token[RunState | None]) -> None:
    """Undo :func:`use_run`."""
    _run.reset(token)


def _stable_path(path: Any) -> Any:
    data = safe_json(path)
    return _UUID.sub("-", data) if isinstance(data, str) else _strip_uuids(data)


def _strip_uuids(data: Any) -> Any:
    if isinstance(data, str):
        return _UUID.sub("-", data)
    if isinstance(data, list):
        return [_strip_uuids(item) for item in data]
    return data


def _task_name(metadata: dict[str, Any]) -> str:
    return f"{metadata.get('langgraph_node')}@{metadata.get('langgraph_step')}@{_stable_path(metadata.get('langgraph_path'))}"


class TaskRecorder(BaseCallbackHandler):
    """Learns each task's stable name from its metadata when it starts (for subgraph namespaces)."""

    def __init__(self, state: RunState) -> None:
        self.state = state

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        ns = (metadata or {}).get("langgraph_checkpoint_ns")
        if isinstance(ns, str) and ns and ns not in self.state.tasks:
            name = _task_name(metadata or {})
            with self.state.lock:
                self.state.tasks.setdefault(ns, name)


@dataclass(frozen=True)
class _Scope:
    identity: dict[str, Any]
    """Where the call happens: namespace, step, path, node attempt."""
    node: str | None
    """The node, for the recorded input."""
    bucket: str
    """The namespace without task ids or steps (groups a node's successive model calls)."""


def _scope(state: RunState) -> _Scope:
    try:
        from langgraph.config import get_config

        config = get_config()
    except RuntimeError:  # not inside a runnable: a call made by plain code during the run
        return _Scope({}, None, "")
    metadata = config.get("metadata") or {}
    ns = metadata.get("langgraph_checkpoint_ns") or ""
    parts = ns.split("|") if isinstance(ns, str) and ns else []
    stable: list[str] = []
    for index, part in enumerate(parts):
        stable.append(state.tasks.get("|".join(parts[: index + 1]), part.partition(":")[0]))
    attempt = 1
    runtime = (config.get("configurable") or {}).get("__pregel_runtime")
    info = getattr(runtime, "execution_info", None)
    if info is not None:
        attempt = int(getattr(info, "node_attempt", 1) or 1)
    identity = {
        "ns": stable,
        "step": metadata.get("langgraph_step"),
        "path": _stable_path(metadata.get("langgraph_path")),
        "attempt": attempt,
    }
    bucket = "|".join(part.partition(":")[0] for part in parts)
    node = metadata.get("langgraph_node")
    return _Scope(identity, node if isinstance(node, str) else None, bucket)


@dataclass(frozen=True)
class Request:
    """A step's name, recorded input and identity."""

    name: str
    input: dict[str, Any]
    identity: dict[str, Any]
    ordered: bool = True
    """False for a tool call named by its tool-call id: its start order among the calls of one model
    reply may change on a rerun, and one not on record is work still to do, not a divergence."""


def model_request(
    state: RunState, model: Any, messages: Sequence[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
) -> Request:
    """The step for a chat-model call with ``messages``."""
    scope = _scope(state)
    try:
        params = safe_json(dict(model._get_ls_params(stop=stop, **kwargs)))
    except Exception:  # a model that cannot describe itself: its class identifies it
        params = {}
    name = str(params.get("ls_model_name") or type(model).__name__)
    conversation, prints = state.encode(messages)
    whole = fingerprint(prints)
    identity = {
        "scope": scope.identity,
        "model": type(model).__name__,
        "params": params,
        "options": safe_json({k: v for k, v in kwargs.items() if k != "run_manager"}),
        "stop": stop,
        "messages": whole,
    }
    # The conversation grows by a few messages per call; record only what was added since the
    # previous call in the same place when that call's conversation is a prefix of this one.
    after = 0
    with state.lock:
        previous = state.prompts.get(scope.bucket)
        state.prompts[scope.bucket] = (len(conversation), whole)
    if (
        previous is not None
        and 0 < previous[0] <= len(conversation)
        and fingerprint(prints[: previous[0]]) == previous[1]
    ):
        after = previous[0]
    recorded: dict[str, Any] = {"node": scope.node, "messages": conversation[after:]}
    if after:
        recorded["after"] = after
    else:
        recorded["params"] = params
    return Request(name, recorded, identity)


def tool_request(state: RunState, tool: Any, tool_input: Any, tool_call_id: str | None) -> Request:
    """The step for a tool call: keyed by its ``tool_call_id`` when it has one, else by its input."""
    scope = _scope(state)
    name = str(getattr(tool, "name", None) or type(tool).__name__)
    arguments = safe_json(tool_input)
    identity: dict[str, Any] = {"scope": scope.identity, "tool": name}
    if tool_call_id is not None:
        identity["tool_call_id"] = tool_call_id
    else:
        identity["input"] = arguments
    recorded = {"node": scope.node, "tool_call_id": tool_call_id, "input": arguments}
    return Request(name, recorded, identity, ordered=tool_call_id is None)

"""``AgentRuntime``: run agents durably, embedded (SQLite in-process) or against a server."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..durable import ExecutionHandle, FunctionDefinition, Runtime
from ..durable._runtime import find_unfinished
from ..errors import ConfigurationError, NotFoundError
from ..runtime import Budget, Definition, Execution, StepStatus
from ..runtime._models import FRAMEWORK_PATTERN
from ..runtime.store._sqlite import Synchronous
from ._agent import Agent
from ._guardrail import Guardrail
from ._loop import agent_function
from ._result import AgentHandle, AgentResult

if TYPE_CHECKING:
    from ..adapters.langgraph._stream import GraphStream

__all__ = ["AgentRuntime"]

log = logging.getLogger("agentspan.agents")
DEFAULT_HTTP_PORT = 6767


class AgentRuntime:
    """Runs agents as durable executions. Use it as a context manager.

    With no server URL (argument or ``AGENTSPAN_SERVER_URL``) the runtime is embedded: the service
    runs in this process over SQLite (``db``, default ``$AGENTSPAN_DB`` or ``~/.agentspan``), and
    its HTTP API is served on ``127.0.0.1:6767`` when that port is free, so ``agentspan`` commands
    in another terminal see the executions. Agents passed to :meth:`run` and :meth:`start` are
    executed by a worker thread in this process either way.

    Args:
        server_url: A server's API URL, e.g. ``http://localhost:6767/api``.
        db: The SQLite file of the embedded runtime.
        serve_http: Serve the embedded runtime's HTTP API (when the port is free).
        http_port: The port for that.
        lease_seconds: Lease length of this process's workers.
        synchronous: The embedded store's commit mode (``"full"``, the default, or ``"normal"``; also
            ``AGENTSPAN_SYNCHRONOUS``).
    """

    def __init__(
        self,
        server_url: str | None = None,
        *,
        db: str | Path | None = None,
        serve_http: bool = True,
        http_port: int = DEFAULT_HTTP_PORT,
        lease_seconds: float = 30.0,
        synchronous: Synchronous | None = None,
    ) -> None:
        self._runtime = Runtime(server_url, db=db, lease_seconds=lease_seconds, synchronous=synchronous)
        self.client = self._runtime.client
        self.http_url: str | None = None
        self._http: Any = None
        if self._runtime.service is not None and serve_http:
            self._serve_http(http_port)

    def _serve_http(self, port: int) -> None:
        try:
            from ..runtime.server._thread import serve_in_thread
        except ImportError:
            return  # the server extra is not installed: embedded without an HTTP API
        assert self._runtime.service is not None
        try:
            self._http = serve_in_thread(self._runtime.service, port=port)
        except OSError:
            log.info("port %s is taken: the embedded runtime runs without its HTTP API", port)
            return
        self.http_url = self._http.url

    def __enter__(self) -> AgentRuntime:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop this process's workers (each finishes or releases its current step), then the API
        (which waits for its lease sweep), then close the store: in this order, so that nothing
        uses the store once it is closed."""
        self._runtime.stop_workers()
        if self._http is not None:
            self._http.stop()
            self._http = None
        self._runtime.close()

    # --- running -----------------------------------------------------------------------------
    def run(
        self,
        agent: Agent | str | Any,
        prompt: str | Any = None,
        *,
        inputs: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        timeout: float | None = None,
        name: str | None = None,
        config: dict[str, Any] | None = None,
        guardrails: Sequence[Guardrail] | None = None,
        budget: Budget | None = None,
    ) -> AgentResult:
        """Run ``agent`` on ``prompt`` (a crew or flow on ``inputs``) and return its result (see :meth:`start`)."""
        handle = self.start(
            agent, prompt, inputs=inputs, idempotency_key=idempotency_key, name=name, config=config,
            guardrails=guardrails, budget=budget,
        )  # fmt: skip
        return handle.wait(timeout)

    def start(
        self,
        agent: Agent | str | Any,
        prompt: str | Any = None,
        *,
        inputs: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        name: str | None = None,
        config: dict[str, Any] | None = None,
        guardrails: Sequence[Guardrail] | None = None,
        budget: Budget | None = None,
    ) -> AgentHandle:
        """Start a run and return its handle.

        ``budget`` limits the tokens and cost of the run's model calls, for any kind of ``agent``
        (default: an :class:`Agent`'s own ``budget``): see :class:`~agentspan.agents.Budget`.

        ``agent`` is an :class:`Agent` (run by a worker in this process) or the name of a deployed
        agent (run by whatever worker serves it). If an unfinished run of the same agent on the same
        prompt exists (its process died), it is resumed instead of starting over; an explicit
        ``idempotency_key`` makes that exact.

        ``agent`` may also be a compiled LangGraph graph (the ``langgraph`` extra):
        ``prompt`` is then the graph's own input (``{"messages": [("user", "...")]}``), ``config``
        its run config (JSON, e.g. a ``thread_id``), and ``name`` the name it runs under (default:
        the graph's name unless it is LangGraph's default, else ``"langgraph"``). Every model call
        and tool call inside the graph is a durable step. The result's ``output`` is the text of the
        last message of the final state, ``messages`` the state's messages and ``structured`` the
        whole final state as JSON.

        ``agent`` may also be an OpenAI Agents SDK ``Agent`` (the ``openai-agents`` extra):
        the SDK's ``Runner`` runs it on ``prompt`` (a string or a list of input items) under ``name``
        (default: the agent's name), every model call and function-tool call being a durable step. The
        result's ``output`` is the final output as text, ``structured`` the final output as JSON when
        it is not a string.

        ``agent`` may also be a CrewAI ``Crew`` or ``Flow`` instance (the ``crewai`` extra), kicked off
        by CrewAI's own ``kickoff(inputs=inputs)`` under ``name`` (default: the crew's name, the flow's
        class name), every model call, tool call, task and flow method being a durable step. The result
        is a ``CrewResult``: ``output`` is ``CrewOutput.raw`` (a flow's final value as text),
        ``structured`` the last task's JSON or pydantic output, ``crew_output`` the ``CrewOutput``.

        ``agent`` may also be a Google ADK agent (``LlmAgent``, ``SequentialAgent``...) or ``App`` (the
        ``google-adk`` extra): ADK's own ``Runner`` runs it on ``prompt`` (text) under ``name`` (default:
        its name), every model call and tool call being a durable step. The result's ``output`` is the
        text of the final response; the execution's output also holds the session's ``events`` and ``state``.

        ``guardrails`` (framework runs): output guardrails check the run's final answer (the result's
        ``output``) after the framework's runner finishes, input guardrails its prompt before it starts,
        each check a recorded step inside the execution. ``on_fail="retry"`` asks the framework again with
        the guardrail's message (not for CrewAI, and not for a LangGraph graph without ``messages``); the
        result's ``output`` is the checked, maybe fixed, text. The guardrails' names are part of the
        execution input: a run with other guardrails is another execution.
        """
        if guardrails and not is_framework_agent(agent):
            raise ConfigurationError(
                "guardrails= on run() and start() is for LangGraph graphs, OpenAI Agents SDK agents, CrewAI crews"
                " and flows and Google ADK agents; give a native Agent its guardrails with Agent(guardrails=[...])"
            )
        if budget is not None and not isinstance(budget, Budget):
            raise ConfigurationError("budget= takes a Budget(max_tokens=..., max_cost_usd=..., on_exhausted=...)")
        if is_graph(agent):
            return self._start_graph(agent, prompt, idempotency_key, name, config, guardrails, budget)
        if is_openai_agent(agent):
            return self._start_openai_agent(agent, prompt, idempotency_key, name, guardrails, budget)
        if is_google_adk(agent):
            return self._start_google_adk(agent, prompt, idempotency_key, name, guardrails, budget)
        if is_crewai(agent):
            return self._start_crewai(agent, _crew_inputs(prompt, inputs), idempotency_key, name, guardrails, budget)
        if inputs is not None and not isinstance(agent, str):
            raise ConfigurationError("inputs= is for CrewAI crews and flows; an agent takes a prompt")
        if not isinstance(agent, Agent | str):
            raise ConfigurationError(
                "start() takes an Agent, a deployed agent's name, a compiled LangGraph graph, an OpenAI Agents SDK"
                f" Agent, a CrewAI Crew or Flow instance, or a Google ADK agent or App, not {type(agent).__name__}"
            )
        data: dict[str, Any]
        if inputs is not None:  # a deployed crew or flow, by name
            if prompt is not None or not isinstance(inputs, dict):
                raise ConfigurationError(
                    "a deployed crew or flow is started with inputs= only (a JSON object of placeholder values),"
                    " not a prompt too"
                )
            data = {"inputs": inputs}
        elif not isinstance(prompt, str):
            raise ConfigurationError(f"prompt must be a string, not {type(prompt).__name__}")
        else:
            data = {"prompt": prompt}
        name = agent.name if isinstance(agent, Agent) else agent
        if budget is None and isinstance(agent, Agent):
            budget = agent.budget
        execution = None if idempotency_key else self._unfinished(name, data, budget)
        if execution is None:
            if not isinstance(agent, Agent):
                self._check_known(name)
            execution = self.client.create_execution(
                name, data, idempotency_key=idempotency_key, budget=budget, framework=self._framework_of(agent)
            )
        self._say_if_resuming(execution)
        if isinstance(agent, Agent):
            self._runtime.ensure_worker(agent_function(agent))
        output_type = agent.output_type if isinstance(agent, Agent) else None
        return AgentHandle(ExecutionHandle(self.client, execution.id), output_type)

    def _start_graph(
        self,
        graph: Any,
        value: Any,
        idempotency_key: str | None,
        name: str | None,
        config: dict[str, Any] | None,
        guardrails: Sequence[Guardrail] | None,
        budget: Budget | None,
    ) -> AgentHandle:
        from ..adapters.langgraph._graph import execution_input, graph_function, retry_refusal
        from ..adapters.langgraph._result import GraphHandle

        fn = graph_function(graph, name)
        data = execution_input(value, config)
        # Only guardrails need the graph's messages: a graph of any state runs without them.
        refusal = retry_refusal(graph) if guardrails else None
        return GraphHandle(self._start_function(fn, data, idempotency_key, guardrails, refusal, budget))

    def _start_openai_agent(
        self,
        agent: Any,
        value: Any,
        idempotency_key: str | None,
        name: str | None,
        guardrails: Sequence[Guardrail] | None,
        budget: Budget | None,
    ) -> AgentHandle:
        from ..adapters.openai_agents._agent import agent_function, execution_input

        fn = agent_function(agent, name)
        return AgentHandle(self._start_function(fn, execution_input(value), idempotency_key, guardrails, budget=budget))

    def _start_google_adk(
        self,
        target: Any,
        value: Any,
        idempotency_key: str | None,
        name: str | None,
        guardrails: Sequence[Guardrail] | None,
        budget: Budget | None,
    ) -> AgentHandle:
        from ..adapters.google_adk._entry import execution_input_of, function_of

        fn = function_of(target, name)
        data = execution_input_of(target, value)
        return AgentHandle(self._start_function(fn, data, idempotency_key, guardrails, budget=budget))

    def _start_crewai(
        self,
        target: Any,
        inputs: Any,
        idempotency_key: str | None,
        name: str | None,
        guardrails: Sequence[Guardrail] | None,
        budget: Budget | None,
    ) -> AgentHandle:
        from ..adapters.crewai._entry import RETRY_REFUSAL, execution_input_of, function_of
        from ..adapters.crewai._result import CrewHandle

        fn = function_of(target, name)
        data = execution_input_of(target, inputs)
        handle: AgentHandle = CrewHandle(
            self._start_function(fn, data, idempotency_key, guardrails, RETRY_REFUSAL, budget)
        )
        return handle

    def _start_function(
        self,
        fn: Callable[..., Any],
        data: dict[str, Any],
        idempotency_key: str | None,
        guardrails: Sequence[Guardrail] | None = None,
        retry_refusal: str | None = None,
        budget: Budget | None = None,
    ) -> ExecutionHandle:
        """Resume the unfinished execution of ``fn`` on ``data`` with ``budget`` (unless a key is given), else start one;
        served by a worker thread of this process. ``guardrails`` are registered for ``fn`` and named in
        the input (``retry_refusal``: why ``on_fail="retry"`` is refused for this target)."""
        function_name = FunctionDefinition.of(fn).name
        if guardrails:
            from ..adapters._guardrails import guarded_input

            data = guarded_input(data, guardrails, function_name=function_name, retry=retry_refusal)
        execution = None if idempotency_key else self._unfinished(function_name, data, budget)
        if execution is None:
            execution = self.client.create_execution(
                function_name, data, idempotency_key=idempotency_key, budget=budget,
                framework=FunctionDefinition.of(fn).framework,
            )  # fmt: skip
        self._say_if_resuming(execution)
        self._runtime.ensure_worker(fn)
        return ExecutionHandle(self.client, execution.id)

    def stream(
        self,
        graph: Any,
        input: Any,
        *,
        stream_mode: str | Sequence[str] = "values",
        config: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> GraphStream:
        """Run a compiled LangGraph graph durably and yield its stream items live.

        The items are what ``graph.stream(input, config, stream_mode=stream_mode)`` yields: the item
        itself for one mode (``"values"``, ``"updates"``, ``"messages"``...), ``(mode, item)`` pairs
        for a list of modes. The run is a durable execution like :meth:`start`'s (each model and tool
        call a step), executed by a worker thread of this process that forwards the items as LangGraph
        produces them. Iteration ends when the run finishes, or when it waits at an ``interrupt()``
        (answer it with ``.handle.resume(answer)``); a failed run raises after its last item. Each
        call starts a new execution (``.execution_id``); items are forwarded only while this
        process's worker runs it (a run resumed elsewhere after a crash streams nothing here).
        """
        from ..adapters.langgraph._dropin import start_stream
        from ..adapters.langgraph._graph import graph_function

        if not is_graph(graph):
            raise ConfigurationError(f"stream() runs compiled LangGraph graphs, not {type(graph).__name__}")
        return start_stream(self._runtime, graph_function(graph, name), input, config, stream_mode)

    def _framework_of(self, agent: Agent | str) -> str | None:
        """What runs ``agent``: ``native`` for an Agent; for a deployed name, what its definition says."""
        if isinstance(agent, Agent):
            return "native"
        try:
            definition = self.client.get_definition(agent)
        except NotFoundError:
            return None  # served by a worker, not deployed: its framework is not known here
        if definition.kind != "agent":
            return None
        found = definition.spec.get("framework", "native")  # a deployed Agent's spec does not say it
        return found if isinstance(found, str) and re.match(FRAMEWORK_PATTERN, found) else None

    def _check_known(self, name: str) -> None:
        """Refuse to queue a run of a name that is neither deployed nor served: nothing would run it."""
        if name in self._runtime.local_names:
            return
        if not self.client.agent_status(name).known:
            hint = ""
            if self._runtime.service is not None:
                hint = (
                    " (workers in other processes on the same database are not seen without a server:"
                    " deploy the agent, or run `agentspan server`)"
                )
            raise NotFoundError(
                f"no agent named {name!r} is deployed and no worker serves it; deploy it (runtime.deploy(agent))"
                f" or start a worker that serves it (agentspan worker module:agent){hint}"
            )

    def _unfinished(self, name: str, data: dict[str, Any], budget: Budget | None = None) -> Execution | None:
        return find_unfinished(self.client, name, data, budget=budget)

    def _say_if_resuming(self, execution: Execution) -> None:
        if execution.status.is_terminal:
            return
        journal = self.client.get_journal(execution.id)
        done = sum(step.status is StepStatus.COMPLETED for step in journal)
        if done:
            print(  # noqa: T201 - one line the user must see: their run continues, it does not restart
                f"agentspan: resuming execution {execution.id} of {execution.name} at step {done + 1}",
                file=sys.stderr,
            )

    def handle(self, execution_id: str, agent: Agent | Any | None = None) -> AgentHandle:
        """A handle on an existing run, from any process (pass the agent to rebuild structured output).

        Pass the compiled LangGraph graph for a graph run: the handle is then a ``GraphHandle``
        (its result read from the final state, ``pending_interrupt()`` and ``resume()``); pass the crew or
        flow for a CrewAI run: a ``CrewHandle`` (its result with the ``CrewOutput``).
        """
        if agent is not None and is_graph(agent):
            from ..adapters.langgraph._result import GraphHandle

            return GraphHandle(self._runtime.handle(execution_id))
        if agent is not None and is_crewai(agent):
            from ..adapters.crewai._result import CrewHandle

            crew_handle: AgentHandle = CrewHandle(self._runtime.handle(execution_id))
            return crew_handle
        output_type = agent.output_type if isinstance(agent, Agent) else None  # SDK agents: JSON, as start()
        return AgentHandle(self._runtime.handle(execution_id), output_type)

    def fork(
        self, execution_id: str, step: str, agent: Agent | Any | None = None, *, idempotency_key: str | None = None
    ) -> AgentHandle:
        """Fork a run from one of its steps and return the new run's handle.

        The new execution runs the same agent on the same input; the steps recorded before ``step`` (a
        key from the journal: ``agentspan executions show <id> --full``) are replayed, ``step`` and
        everything after it run again. Pass ``agent`` (the :class:`Agent`, graph, SDK agent, crew...)
        to have a worker of this process run the fork and to get the handle :meth:`handle` gives for
        it; without it, a worker serving the agent's name runs it. The same ``idempotency_key``
        returns the same fork.
        """
        source = self.client.get_execution(execution_id)
        fn: Callable[..., Any] | None = None
        if agent is None:
            self._check_known(source.name)
        elif is_framework_agent(agent):
            fn = durable_function(agent, source.name)  # under the name the run had (start(name=...))
        elif isinstance(agent, Agent):
            if agent.name != source.name:
                raise ConfigurationError(
                    f"execution {execution_id} ran {source.name!r}, not agent {agent.name!r}; pass the agent it"
                    " ran, or none to leave the fork to a worker serving that name"
                )
            fn = agent_function(agent)
        else:
            raise ConfigurationError(
                "fork() takes the Agent, compiled LangGraph graph, OpenAI Agents SDK agent, CrewAI Crew or Flow, or"
                f" Google ADK agent or App the run ran (or none), not {type(agent).__name__}"
            )
        fork = self.client.fork_execution(execution_id, step, idempotency_key=idempotency_key)
        if fn is not None:
            self._runtime.ensure_worker(fn)
        return self.handle(fork.id, agent)

    # --- deploying and serving ----------------------------------------------------------------------
    def deploy(self, agent: Agent | Any, *, name: str | None = None) -> Definition:
        """Register the agent's definition by name, so any process can start it by name.

        ``agent`` may also be a compiled LangGraph graph, an OpenAI Agents SDK agent or a CrewAI crew or
        flow (registered under ``name``, default the name it runs under, with a description of its
        nodes, tools, tasks or methods); a worker
        serving it (:meth:`serve`, ``agentspan worker``) runs the executions started by that name.
        """
        if is_framework_agent(agent):
            fn = durable_function(agent, name)
            return self.client.put_definition(
                FunctionDefinition.of(fn).name, describe_framework_agent(agent), kind="agent"
            )
        if not isinstance(agent, Agent):
            raise ConfigurationError(
                "deploy() takes an Agent, a compiled LangGraph graph, an OpenAI Agents SDK agent, a CrewAI Crew"
                f" or Flow instance, or a Google ADK agent or App, not {type(agent).__name__}"
            )
        return self.client.put_definition(name or agent.name, agent.describe(), kind="agent")

    def serve(self, *agents: Agent | Any, handle_signals: bool = True) -> None:
        """Run a worker for ``agents`` in this thread until stopped (SIGTERM: finish or release the step).

        Compiled LangGraph graphs, OpenAI Agents SDK agents and CrewAI crews and flows are served under
        their name (see :meth:`start`).
        """
        if not agents:
            raise ConfigurationError("serve() needs at least one agent")
        for agent in agents:
            if not (isinstance(agent, Agent) or is_framework_agent(agent)):
                raise ConfigurationError(
                    "serve() takes Agents, compiled LangGraph graphs, OpenAI Agents SDK agents, CrewAI crews"
                    f" and flows, and Google ADK agents and apps, not {type(agent).__name__}"
                )
        self._runtime.serve(*(durable_function(a) for a in agents), handle_signals=handle_signals)


def is_graph(obj: Any) -> bool:
    """Whether ``obj`` is a compiled LangGraph graph (by type name: the core never imports LangGraph)."""
    return any(cls.__name__ in ("CompiledStateGraph", "Pregel") for cls in type(obj).__mro__)


def is_openai_agent(obj: Any) -> bool:
    """Whether ``obj`` is an OpenAI Agents SDK ``Agent`` (by type: the core never imports the SDK)."""
    return any(cls.__name__ == "Agent" and cls.__module__.startswith("agents.") for cls in type(obj).__mro__)


def is_crewai(obj: Any) -> bool:
    """Whether ``obj`` is a CrewAI ``Crew`` or ``Flow`` instance (by type: the core never imports CrewAI)."""
    return any(cls.__name__ in ("Crew", "Flow") and cls.__module__.startswith("crewai.") for cls in type(obj).__mro__)


def is_google_adk(obj: Any) -> bool:
    """Whether ``obj`` is a Google ADK agent (a ``BaseAgent``) or ``App`` instance (by type: the core never
    imports ADK)."""
    return any(
        cls.__name__ in ("BaseAgent", "App") and cls.__module__.startswith("google.adk.") for cls in type(obj).__mro__
    )


def is_framework_agent(obj: Any) -> bool:
    """Whether ``obj`` is run by one of the framework adapters (a graph, an SDK agent, a crew or flow, an
    ADK agent or app)."""
    return is_graph(obj) or is_openai_agent(obj) or is_crewai(obj) or is_google_adk(obj)


def _crew_inputs(prompt: Any, inputs: Any) -> Any:
    """A crew's inputs are ``inputs=``, or the second argument when it is not a prompt."""
    if prompt is not None and inputs is not None:
        raise ConfigurationError(
            "a crew or flow takes inputs= only (a JSON object of placeholder values), not a prompt too"
        )
    if isinstance(prompt, str):
        raise ConfigurationError(
            'a crew or flow is kicked off with inputs (a JSON object of placeholder values, e.g. inputs={"topic": "AI"}),'
            " not a prompt"
        )
    return inputs if prompt is None else prompt


def durable_function(agent: Any, name: str | None = None) -> Callable[..., Any]:
    """The durable function a worker runs for an :class:`Agent`, a compiled LangGraph graph, an OpenAI
    Agents SDK agent or a CrewAI crew or flow (the latter under ``name`` when given)."""
    if is_graph(agent):
        from ..adapters.langgraph._graph import graph_function

        return graph_function(agent, name)
    if is_openai_agent(agent):
        from ..adapters.openai_agents._agent import agent_function as openai_agent_function

        return openai_agent_function(agent, name)
    if is_crewai(agent):
        from ..adapters.crewai._entry import function_of

        fn: Callable[..., Any] = function_of(agent, name)
        return fn
    if is_google_adk(agent):
        from ..adapters.google_adk._entry import function_of as adk_function_of

        adk_fn: Callable[..., Any] = adk_function_of(agent, name)
        return adk_fn
    return agent_function(agent)


def describe_framework_agent(agent: Any) -> dict[str, Any]:
    """What ``deploy`` registers for a LangGraph graph or an SDK agent: its framework and its parts."""
    if is_graph(agent):
        nodes = [node for node in getattr(agent, "nodes", {}) if not node.startswith("__")]
        return {"framework": "langgraph", "nodes": nodes}
    if is_crewai(agent):
        from ..adapters.crewai._entry import describe

        spec: dict[str, Any] = describe(agent)
        return spec
    if is_google_adk(agent):
        from ..adapters.google_adk._entry import describe as describe_adk

        adk_spec: dict[str, Any] = describe_adk(agent)
        return adk_spec
    model = getattr(agent, "model", None)
    instructions = getattr(agent, "instructions", None)
    return {
        "framework": "openai-agents",
        "model": model if isinstance(model, str) or model is None else type(model).__name__,
        "instructions": instructions if isinstance(instructions, str) else None,
        "tools": [getattr(tool, "name", type(tool).__name__) for tool in getattr(agent, "tools", [])],
        "handoffs": [getattr(h, "name", type(h).__name__) for h in getattr(agent, "handoffs", [])],
    }

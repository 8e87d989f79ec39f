"""``AgentRuntime``: run agents durably, embedded (SQLite in-process) or against a server."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from types import TracebackType
from typing import Any

from ..durable import ExecutionHandle, Runtime
from ..errors import ConfigurationError
from ..runtime import Definition, Execution, ExecutionStatus, StepStatus
from ._agent import Agent
from ._loop import agent_function
from ._result import AgentHandle, AgentResult

__all__ = ["AgentRuntime"]

log = logging.getLogger("agentspan.agents")
DEFAULT_HTTP_PORT = 6767
_UNFINISHED = (ExecutionStatus.QUEUED, ExecutionStatus.RUNNING, ExecutionStatus.WAITING)


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
    """

    def __init__(
        self,
        server_url: str | None = None,
        *,
        db: str | Path | None = None,
        serve_http: bool = True,
        http_port: int = DEFAULT_HTTP_PORT,
        lease_seconds: float = 30.0,
    ) -> None:
        self._runtime = Runtime(server_url, db=db, lease_seconds=lease_seconds)
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
        """Stop this process's workers (each finishes or releases its current step), then the API."""
        self._runtime.close()
        if self._http is not None:
            self._http.stop()

    # --- running -----------------------------------------------------------------------------
    def run(
        self, agent: Agent | str, prompt: str, *, idempotency_key: str | None = None, timeout: float | None = None
    ) -> AgentResult:
        """Run ``agent`` on ``prompt`` and return its result (see :meth:`start`)."""
        return self.start(agent, prompt, idempotency_key=idempotency_key).wait(timeout)

    def start(self, agent: Agent | str, prompt: str, *, idempotency_key: str | None = None) -> AgentHandle:
        """Start a run and return its handle.

        ``agent`` is an :class:`Agent` (run by a worker in this process) or the name of a deployed
        agent (run by whatever worker serves it). If an unfinished run of the same agent on the same
        prompt exists (its process died), it is resumed instead of starting over; an explicit
        ``idempotency_key`` makes that exact.
        """
        if not isinstance(prompt, str):
            raise ConfigurationError(f"prompt must be a string, not {type(prompt).__name__}")
        name = agent.name if isinstance(agent, Agent) else agent
        data = {"prompt": prompt}
        execution = None if idempotency_key else self._unfinished(name, data)
        if execution is None:
            execution = self.client.create_execution(name, data, idempotency_key=idempotency_key)
        self._say_if_resuming(execution)
        if isinstance(agent, Agent):
            self._runtime.ensure_worker(agent_function(agent))
        output_type = agent.output_type if isinstance(agent, Agent) else None
        return AgentHandle(ExecutionHandle(self.client, execution.id), output_type)

    def _unfinished(self, name: str, data: dict[str, Any]) -> Execution | None:
        for status in _UNFINISHED:
            for execution in self.client.list_executions(status=status, name=name, limit=100).items:
                if execution.input == data:
                    return execution
        return None

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

    def handle(self, execution_id: str, agent: Agent | None = None) -> AgentHandle:
        """A handle on an existing run, from any process (pass the agent to rebuild structured output)."""
        return AgentHandle(self._runtime.handle(execution_id), None if agent is None else agent.output_type)

    # --- deploying and serving ----------------------------------------------------------------------
    def deploy(self, agent: Agent) -> Definition:
        """Register the agent's definition by name, so any process can start it by name."""
        return self.client.put_definition(agent.name, agent.describe(), kind="agent")

    def serve(self, *agents: Agent, handle_signals: bool = True) -> None:
        """Run a worker for ``agents`` in this thread until stopped (SIGTERM: finish or release the step)."""
        if not agents:
            raise ConfigurationError("serve() needs at least one agent")
        self._runtime.serve(*(agent_function(a) for a in agents), handle_signals=handle_signals)

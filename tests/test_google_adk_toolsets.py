"""ADK's toolsets run durably: every call of an ``OpenAPIToolset`` tool (a REST request to a real local
HTTP server) and of an ``McpToolset`` tool (a real MCP server subprocess over stdio) is a step, and a
run resumed after a crash does not call them again for the calls it completed."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("google.adk")

from processes import TESTS

from agentspan.adapters.google_adk import agent_function, execution_input
from agentspan.agents import AgentRuntime
from agentspan.runtime import ExecutionStatus, Service, Step, StepStatus
from agentspan.testing import FakeOpenAIServer
from agentspan.worker import Worker
from agentspan.worker._aio import run_async

pytestmark = pytest.mark.filterwarnings(
    # google-genai's async client subclasses aiohttp's ClientSession, which aiohttp warns about.
    "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning",
    # ADK's REST tool passes cookies per request, which httpx deprecates.
    "ignore:Setting per-request cookies:DeprecationWarning",
)

NOTES = ["milk", "eggs", "bread"]


class Crash(BaseException):
    """Stands for the process dying after a tool call: nothing catches it."""


@contextmanager
def _gemini(monkeypatch: pytest.MonkeyPatch, script: list[Any]) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(script) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.gemini_base_url)
        monkeypatch.setenv("GOOGLE_API_KEY", "test")
        monkeypatch.setenv("GOOGLE_GENAI_USE_ENTERPRISE", "false")
        monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
        yield fake


def _script(tool: str) -> list[Any]:
    return FakeOpenAIServer.research_script(len(NOTES), tool, lambda i: {"text": NOTES[i]}, answer="Noted.")


@pytest.fixture
def agents() -> Iterator[list[Any]]:
    """Agents made by a test; their Gemini clients (on the workers' event loop) are closed after it."""
    made: list[Any] = []
    yield made
    for agent in made:
        run_async(agent.canonical_model.api_client.aio.aclose())


def _agent(agents: list[Any], toolset: Any, **options: Any) -> Any:
    from google.adk.agents import LlmAgent

    agent = LlmAgent(name="notes", model="gemini-2.5-flash", instruction="Keep notes.", tools=[toolset], **options)
    agents.append(agent)
    return agent


def _crash_after(call: int) -> Any:
    """An ``after_tool_callback`` that crashes the run, once, after its ``call``-th tool call."""
    seen: list[str] = []

    def after_tool(**_: Any) -> None:
        seen.append("call")
        if len(seen) == call:
            raise Crash(call)

    return after_tool


def _run_crashing(service: Service, agent: Any, prompt: str) -> str:
    """Run ``agent`` until it crashes (the worker dies with it), then resume it with a fresh worker."""
    fn = agent_function(agent)
    execution = service.create_execution(Worker(service, [fn]).names[0], execution_input(prompt))
    first = Worker(service, [fn], lease_seconds=30)
    with pytest.raises(Crash):
        first.run_once()
    assert service.expire_leases([first.worker_id]), "the dead worker's lease is expired"
    assert Worker(service, [fn], lease_seconds=30).run_once()
    return execution.id


def _tool_steps(journal: list[Step], tool: str) -> list[Step]:
    steps = [step for step in journal if step.kind == "tool"]
    assert [step.name for step in steps] == [tool] * len(NOTES), [(s.kind, s.name) for s in journal]
    assert all(step.status is StepStatus.COMPLETED for step in steps)
    assert [step.input["arguments"] for step in steps] == [{"text": note} for note in NOTES]
    return steps


# --- OpenAPI ---------------------------------------------------------------------------------------------
class _NotesApi(ThreadingHTTPServer):
    """A REST API on a free loopback port: ``POST /notes`` with ``{"text": ...}`` adds a note."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _NotesHandler)
        self.received: list[str] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def spec(self) -> str:
        return json.dumps({
            "openapi": "3.0.0",
            "info": {"title": "Notes", "version": "1"},
            "servers": [{"url": self.url}],
            "paths": {"/notes": {"post": {
                "operationId": "addNote",
                "summary": "Add a note.",
                "requestBody": {"required": True, "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"],
                }}}},
                "responses": {"200": {"description": "The note added.", "content": {"application/json": {
                    "schema": {"type": "object"},
                }}}},
            }}},
        })  # fmt: skip


class _NotesHandler(BaseHTTPRequestHandler):
    server: _NotesApi

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with self.server.lock:
            self.server.received.append(body["text"])
            number = len(self.server.received)
        data = json.dumps({"id": number, "text": body["text"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def notes_api() -> Iterator[_NotesApi]:
    api = _NotesApi()
    thread = threading.Thread(target=api.serve_forever, daemon=True)
    thread.start()
    yield api
    api.shutdown()
    api.server_close()
    thread.join()


def _openapi_toolset(api: _NotesApi) -> Any:
    from google.adk.tools.openapi_tool import OpenAPIToolset

    # The API is on loopback, which ADK's tools refuse unless allowed.
    return OpenAPIToolset(spec_str=api.spec(), spec_str_type="json", allow_private_network_access=True)


def test_each_rest_call_of_an_openapi_toolset_is_a_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, agents: list[Any], notes_api: _NotesApi
) -> None:
    with _gemini(monkeypatch, _script("add_note")):
        agent = _agent(agents, _openapi_toolset(notes_api))
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(agent, "Note milk, eggs and bread.")
            journal = runtime.client.get_journal(result.execution_id)
    assert result.is_success, result.error
    assert result.output == "Noted."
    assert notes_api.received == NOTES
    steps = _tool_steps(journal, "add_note")
    assert [step.output["value"] for step in steps] == [{"id": i + 1, "text": note} for i, note in enumerate(NOTES)]


def test_a_resumed_run_makes_no_second_rest_request_for_completed_calls(
    monkeypatch: pytest.MonkeyPatch, service: Service, agents: list[Any], notes_api: _NotesApi
) -> None:
    with _gemini(monkeypatch, _script("add_note")):
        agent = _agent(agents, _openapi_toolset(notes_api), after_tool_callback=_crash_after(2))
        execution_id = _run_crashing(service, agent, "Note milk, eggs and bread.")
    execution = service.get_execution(execution_id)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert execution.output["output"] == "Noted."
    assert notes_api.received == NOTES, "the two calls done before the crash were replayed, not requested again"
    _tool_steps(service.get_journal(execution_id), "add_note")


# --- MCP -------------------------------------------------------------------------------------------------
def _mcp_toolset(log: Path) -> Any:
    from google.adk.tools.mcp_tool import McpToolset, StdioConnectionParams
    from mcp import StdioServerParameters

    server = StdioServerParameters(command=sys.executable, args=[str(TESTS / "adk_mcp_server.py"), str(log)])
    return McpToolset(connection_params=StdioConnectionParams(server_params=server, timeout=60))


def _logged(log: Path) -> list[str]:
    return log.read_text(encoding="utf-8").splitlines() if log.exists() else []


@pytest.mark.slow
def test_each_call_of_an_mcp_toolset_tool_is_a_step(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, agents: list[Any]
) -> None:
    log = tmp_path / "notes.log"
    with _gemini(monkeypatch, _script("add_note")):
        agent = _agent(agents, _mcp_toolset(log))
        with AgentRuntime(db=tmp_path / "a.db", serve_http=False) as runtime:
            result = runtime.run(agent, "Note milk, eggs and bread.")
            journal = runtime.client.get_journal(result.execution_id)
    assert result.is_success, result.error
    assert result.output == "Noted."
    assert _logged(log) == NOTES
    steps = _tool_steps(journal, "add_note")
    assert [step.output["value"]["content"][0]["text"] for step in steps] == [f"noted {note}" for note in NOTES]


@pytest.mark.slow
def test_a_resumed_run_does_not_call_the_mcp_tool_again_for_completed_calls(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, service: Service, agents: list[Any]
) -> None:
    log = tmp_path / "notes.log"
    with _gemini(monkeypatch, _script("add_note")):
        agent = _agent(agents, _mcp_toolset(log), after_tool_callback=_crash_after(2))
        execution_id = _run_crashing(service, agent, "Note milk, eggs and bread.")
    execution = service.get_execution(execution_id)
    assert execution.status is ExecutionStatus.COMPLETED, execution.error
    assert execution.output["output"] == "Noted."
    assert _logged(log) == NOTES, "the two calls done before the crash were replayed, not made again"
    _tool_steps(service.get_journal(execution_id), "add_note")

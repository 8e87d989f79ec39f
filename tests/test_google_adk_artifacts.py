"""Artifacts a Google ADK tool saved survive a crash and resume: a later tool loads them as in an
uninterrupted run. The model is ADK's default Gemini model against the test's ``FakeOpenAIServer``."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip("google.adk")

from agentspan.adapters.google_adk import agent_function, execution_input
from agentspan.runtime import ExecutionStatus, Service
from agentspan.testing import FakeOpenAIServer
from agentspan.worker import Worker
from agentspan.worker._aio import run_async

pytestmark = pytest.mark.filterwarnings(
    # google-genai's async client subclasses aiohttp's ClientSession, which aiohttp warns about.
    "ignore:Inheritance class AiohttpClientSession from ClientSession:DeprecationWarning"
)

SCRIPT: list[Any] = [[("save_note", {"text": "final"})], [("flaky", {})], [("read_note", {})], "Done."]


class Crash(BaseException):
    """Stands for the process dying in a tool: nothing catches it, the step stays in doubt."""


@contextmanager
def _gemini(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(SCRIPT) as fake:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", fake.gemini_base_url)
        monkeypatch.setenv("GOOGLE_API_KEY", "test")
        monkeypatch.setenv("GOOGLE_GENAI_USE_ENTERPRISE", "false")
        monkeypatch.delenv("GOOGLE_GENAI_USE_VERTEXAI", raising=False)
        yield fake


@pytest.fixture
def agents() -> Iterator[list[Any]]:
    """Agents made by a test; their Gemini clients (on the workers' event loop) are closed after it."""
    made: list[Any] = []
    yield made
    for agent in made:
        run_async(agent.canonical_model.api_client.aio.aclose())


def _notes_agent(agents: list[Any], ran: list[str], seen: list[Any], *, crash: bool) -> Any:
    """Saves a note in two versions, then a tool that crashes on its first call, then one that reads the note."""
    from google.adk.agents import LlmAgent
    from google.adk.tools.tool_context import ToolContext
    from google.genai import types

    async def save_note(text: str, tool_context: ToolContext) -> dict[str, Any]:
        """Save a note."""
        ran.append("save_note")
        first = await tool_context.save_artifact("note.txt", types.Part.from_text(text="draft"))
        second = await tool_context.save_artifact("note.txt", types.Part.from_text(text=text))
        return {"versions": [first, second]}

    def flaky(tool_context: ToolContext) -> str:
        """Do something that may fail."""
        ran.append("flaky")
        if crash and ran.count("flaky") == 1:
            raise Crash("flaky")
        return "ok"

    async def read_note(tool_context: ToolContext) -> str:
        """Read the note."""
        ran.append("read_note")
        latest = await tool_context.load_artifact("note.txt")
        draft = await tool_context.load_artifact("note.txt", version=0)
        seen.append((latest and latest.text, draft and draft.text, await tool_context.list_artifacts()))
        text = f"{latest.text if latest else None}/{draft.text if draft else None}"
        tool_context.state["read"] = text
        return text

    agent = LlmAgent(name="notes", model="gemini-2.5-flash", instruction="Keep notes.",
                     tools=[save_note, flaky, read_note])  # fmt: skip
    agents.append(agent)
    return agent


def _comparable(output: dict[str, Any]) -> Any:
    """An execution's output without what differs between executions: its id tag, event timestamps."""
    found = re.match(r"e-(as[0-9a-f]{8})-\d+$", output["events"][0]["invocation_id"])
    assert found, output["events"][0]["invocation_id"]
    events = [{k: v for k, v in event.items() if k != "timestamp"} for event in output["events"]]
    return json.loads(json.dumps({**output, "events": events}).replace(found.group(1), "TAG"))


def test_an_artifact_a_tool_saved_before_a_crash_is_loaded_by_a_later_tool_after_the_resume(
    monkeypatch: pytest.MonkeyPatch, service: Service, agents: list[Any]
) -> None:
    ran: list[str] = []
    seen: list[Any] = []
    calm_ran: list[str] = []
    calm_seen: list[Any] = []
    with _gemini(monkeypatch):
        fn = agent_function(_notes_agent(agents, ran, seen, crash=True))
        execution = service.create_execution(Worker(service, [fn]).names[0], execution_input("Take a note."))
        first = Worker(service, [fn], lease_seconds=30)
        with pytest.raises(Crash):
            first.run_once()
        assert service.expire_leases([first.worker_id]), "the dead worker's lease is expired"
        assert Worker(service, [fn], lease_seconds=30).run_once()
        calm = agent_function(_notes_agent(agents, calm_ran, calm_seen, crash=False), "calm")
        calm_execution = service.create_execution("calm", execution_input("Take a note."))
        assert Worker(service, [calm]).run_once()
    crashed, uninterrupted = service.get_execution(execution.id), service.get_execution(calm_execution.id)
    assert crashed.status is ExecutionStatus.COMPLETED, crashed.error
    assert uninterrupted.status is ExecutionStatus.COMPLETED, uninterrupted.error
    assert ran == ["save_note", "flaky", "flaky", "read_note"], "the saving tool did not run again"
    assert calm_ran == ["save_note", "flaky", "read_note"]
    assert seen == calm_seen == [("final", "draft", ["note.txt"])], "both versions, in their order"
    assert crashed.output["state"] == uninterrupted.output["state"] == {"read": "final/draft"}
    assert crashed.output["output"] == uninterrupted.output["output"]
    assert _comparable(crashed.output) == _comparable(uninterrupted.output)

"""CrewAI and Google ADK executions in the web UI, in headless Chromium (the frameworks environment).

CrewAI pins openai<3, so these run where ``.ci/frameworks`` installs CrewAI and ADK; elsewhere they skip.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from browser import OfflinePage

from agentspan.agents import AgentRuntime
from agentspan.testing import FakeOpenAIServer, ServerHandle

pytest.importorskip("crewai")
pytest.importorskip("google.adk")
pytest.importorskip("playwright")
from playwright.sync_api import expect
from test_crewai import QUICKSTART, QUICKSTART_INPUTS, quickstart_crew
from test_ui_browser import graph_edges, graph_nodes, open_execution


def test_a_crew_shows_its_tasks_as_groups(
    page: OfflinePage,
    ui_runtime: AgentRuntime,
    ui_server: ServerHandle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)  # CrewAI writes the report task's output file here
    with FakeOpenAIServer(routes=QUICKSTART) as fake:
        result = ui_runtime.run(quickstart_crew(fake, "report.md"), QUICKSTART_INPUTS, timeout=60)
    assert result.is_success, result.error
    journal = ui_runtime.client.get_journal(result.execution_id)
    open_execution(page, ui_server, result.execution_id)
    nodes = {n["key"]: n for n in graph_nodes(page) if n["key"]}
    tasks = [s for s in journal if s.kind == "task"]
    assert len(tasks) == 2
    for step in journal:
        if step.kind in ("llm", "tool"):
            assert nodes[step.key]["parent"] == f"s{next(t.seq for t in tasks if t.key == step.parent)}"
    expect(page.locator("[data-testid=execution-head]")).to_contain_text("CrewAI")
    page.screenshot("graph-crewai")
    assert page.refused == []


@pytest.mark.filterwarnings("ignore:SequentialAgent is deprecated:DeprecationWarning")
def test_an_adk_sequential_agent_shows_each_agent_as_a_group(
    page: OfflinePage, ui_runtime: AgentRuntime, ui_server: ServerHandle
) -> None:
    from google.adk.agents import LlmAgent, SequentialAgent
    from google.adk.models.lite_llm import LiteLlm

    def get_weather(city: str) -> dict[str, Any]:
        """The weather in a city."""
        return {"city": city, "weather": "sunny"}

    routes = {
        "Find the weather.": [[("get_weather", {"city": "Paris"})], "Sunny in Paris."],
        "Write a forecast.": ["Forecast: sunny."],
    }
    with FakeOpenAIServer(["unused"], routes=routes) as fake:
        model = LiteLlm(model="openai/gpt-4o-mini", api_base=fake.base_url, api_key="test")
        scout = LlmAgent(name="scout", model=model, instruction="Find the weather.", tools=[get_weather])
        writer = LlmAgent(name="writer", model=model, instruction="Write a forecast.")
        result = ui_runtime.run(SequentialAgent(name="forecast", sub_agents=[scout, writer]), "Paris?", timeout=60)
    assert result.is_success, result.error
    journal = ui_runtime.client.get_journal(result.execution_id)
    open_execution(page, ui_server, result.execution_id)
    nodes = graph_nodes(page)
    groups = {n["id"]: n["part"] for n in nodes if n["partKind"] == "agent"}
    assert list(groups.values()) == ["scout", "writer"]
    by_key = {n["key"]: n for n in nodes if n["key"]}
    tool = next(s for s in journal if s.kind == "tool")
    assert groups[by_key[tool.key]["parent"]] == "scout", "a tool call belongs to the agent whose turn asked for it"
    assert not [e for e in graph_edges(page) if "handoff" in e["classes"]], "a sequence is not a handoff"
    expect(page.locator("[data-testid=execution-head]")).to_contain_text("Google ADK")
    page.screenshot("graph-google-adk")
    assert page.refused == []

"""Async executions share the process's one event loop, each in its own durable context.

The OpenAI Agents SDK keeps one HTTP connection pool for the whole process (its default client), bound
to the loop that opened its connections: a second ``AgentRuntime`` in the same process must find that
loop alive. And two async executions running at once in two workers of one process must each record
their steps in their own execution.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from agentspan.agents import AgentRuntime
from agentspan.durable import Runtime, function, step
from agentspan.runtime import ExecutionStatus
from agentspan.testing import FakeOpenAIServer


def test_a_second_agent_runtime_runs_sdk_agents_that_name_their_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from agents import Agent, set_default_openai_api
    from agents.models import _openai_shared

    with FakeOpenAIServer(["hello one", "hello two", "hello three"], by_turn=False) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "test")
        monkeypatch.setattr(_openai_shared, "_default_openai_client", None)  # the SDK builds its own client
        set_default_openai_api("chat_completions")
        try:
            agent = Agent(name="named-model", instructions="Answer.", model="gpt-4o-mini")
            outputs = []
            for i in range(3):  # each runtime starts and stops its own worker
                with AgentRuntime(db=tmp_path / f"{i}.db", serve_http=False) as runtime:
                    result = runtime.run(agent, f"question {i}", timeout=60)
                outputs.append((result.status, result.output))
        finally:
            set_default_openai_api("responses")
    assert outputs == [(ExecutionStatus.COMPLETED, f"hello {w}") for w in ("one", "two", "three")]


both_inside = threading.Barrier(2, timeout=30)


@step
async def stamp(label: str) -> str:
    return f"stamped {label}"


@function(name="loops-a")
async def flow_a() -> list[str]:
    await asyncio.to_thread(both_inside.wait)  # both executions are running at once from here on
    return [await stamp("a1"), await stamp("a2")]


@function(name="loops-b")
async def flow_b() -> list[str]:
    await asyncio.to_thread(both_inside.wait)
    return [await stamp("b1")]


def test_two_async_executions_at_once_record_their_steps_in_their_own_execution(tmp_path: Path) -> None:
    with Runtime(db=tmp_path / "loops.db") as runtime:
        a = runtime.start(flow_a)
        b = runtime.start(flow_b)  # a second worker thread of this process: both run together
        results: dict[str, Any] = {"a": a.result(timeout=60), "b": b.result(timeout=60)}
        journals = {k: [s.input for s in h.journal()] for k, h in (("a", a), ("b", b))}
    assert results == {"a": ["stamped a1", "stamped a2"], "b": ["stamped b1"]}
    assert journals == {"a": [{"label": "a1"}, {"label": "a2"}], "b": [{"label": "b1"}]}

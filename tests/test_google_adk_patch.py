"""The Google ADK adapter patches every model and tool class's call, undoes it, and names a point that is missing."""

from __future__ import annotations

import pytest

pytest.importorskip("google.adk")

import wrapt
from google.adk.agents.base_agent import BaseAgent
from google.adk.models.base_llm import BaseLlm
from google.adk.models.google_llm import Gemini
from google.adk.tools.agent_tool import AgentTool
from google.adk.tools.base_tool import BaseTool
from google.adk.tools.function_tool import FunctionTool
from patch_points import remove_point

from agentspan.adapters.google_adk import _patch

POINTS = [(Gemini, "generate_content_async"), (BaseTool, "run_async"), (FunctionTool, "run_async"),
          (AgentTool, "run_async"), (BaseAgent, "run_async")]  # fmt: skip


def _wrapped(cls: type, attribute: str) -> bool:
    return isinstance(vars(cls).get(attribute), wrapt.FunctionWrapper)


def test_install_wraps_every_model_and_tool_class_that_defines_the_call_and_unpatch_restores_them() -> None:
    _patch.install()
    assert all(_wrapped(cls, attribute) for cls, attribute in POINTS)
    assert not _wrapped(BaseLlm, "generate_content_async"), "the abstract method is left alone"
    original = vars(Gemini)["generate_content_async"].__wrapped__
    _patch.unpatch()
    try:
        assert not _patch.installed()
        assert not any(_wrapped(cls, attribute) for cls, attribute in POINTS)
        assert vars(Gemini)["generate_content_async"] is original
    finally:
        _patch.install()
    assert all(_wrapped(cls, attribute) for cls, attribute in POINTS)


def test_a_model_class_defined_after_install_is_patched_when_the_next_run_starts() -> None:
    _patch.install()

    class Mine(BaseLlm):  # type: ignore[misc]
        async def generate_content_async(self, llm_request: object, stream: bool = False) -> object:
            yield None

    assert not _wrapped(Mine, "generate_content_async")
    _patch.install()  # what each run's start does
    assert _wrapped(Mine, "generate_content_async")


def test_a_missing_required_point_is_named_and_nothing_is_patched(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch.unpatch()
    try:
        remove_point(monkeypatch, "google.adk.models.google_llm", "Gemini.generate_content_async")
        with pytest.raises(RuntimeError, match=r"Gemini.generate_content_async not found.*google-adk 2.13") as failure:
            _patch.install()
        assert "agentspan cannot make this Google ADK (google-adk 2." in str(failure.value)
        assert not _patch.installed()
        assert not any(_wrapped(cls, attribute) for cls, attribute in POINTS[1:])
    finally:
        monkeypatch.undo()
        _patch.install()

"""The LangGraph adapter patches exactly the points its patch module lists, and names one that is missing."""

from __future__ import annotations

import re

import pytest
from langchain_core.language_models.chat_models import BaseChatModel
from patch_points import documented_points, remove_point, wrapped_points

from agentspan.adapters.langgraph import _patch

PACKAGES = ("langchain_core", "langgraph", "langchain")
POINTS = [f"{module_name}.{path}" for module_name, path, _ in _patch._POINTS]


def test_the_documented_points_are_the_ones_install_patches() -> None:
    _patch.install()
    assert documented_points(_patch) == set(POINTS)
    assert wrapped_points(_patch, PACKAGES) == set(POINTS)


def test_unpatch_restores_the_originals_and_install_puts_the_hooks_back() -> None:
    _patch.install()
    wrapper = vars(BaseChatModel)["stream"]
    _patch.unpatch()
    try:
        assert not _patch.installed()
        assert wrapped_points(_patch, PACKAGES) == set()
        assert vars(BaseChatModel)["stream"] is wrapper.__wrapped__
    finally:
        _patch.install()
    assert wrapped_points(_patch, PACKAGES) == set(POINTS)


@pytest.mark.parametrize("point", POINTS)
def test_a_missing_point_is_a_clear_error_and_nothing_is_patched(point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module_name, path, _ = next(p for p in _patch._POINTS if f"{p[0]}.{p[1]}" == point)
    _patch.unpatch()
    try:
        remove_point(monkeypatch, module_name, path)
        with pytest.raises(RuntimeError, match=re.escape(f"{point} not found")) as error:
            _patch.install()
        assert "The adapter supports langchain-core" in str(error.value)
        assert not _patch.installed()
        assert wrapped_points(_patch, PACKAGES) == set(), "a point was patched before all were checked"
    finally:
        monkeypatch.undo()
        _patch.install()
    assert wrapped_points(_patch, PACKAGES) == set(POINTS)

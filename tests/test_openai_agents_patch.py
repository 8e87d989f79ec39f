"""The OpenAI Agents SDK adapter patches exactly the points its patch module lists, and names one that is wrong."""

from __future__ import annotations

import importlib
import importlib.util
import re
import sys
from types import ModuleType

import pytest
from agents.agent import Agent
from patch_points import documented_points, remove_point, wrapped_points

from agentspan.adapters.openai_agents import _patch

PACKAGES = ("agents",)
POINTS = [f"{module_name}.{path}" for module_name, path, _, _ in _patch._POINTS]
REQUIRED = [f"{module_name}.{path}" for module_name, path, _, required in _patch._POINTS if required]
HOME = "agents.run_internal.turn_preparation"
RUN_LOOP = "agents.run_internal.run_loop"


def present() -> set[str]:
    """The points this SDK version has: the required ones, and an optional one where its module has it."""
    return {
        f"{module_name}.{path}"
        for module_name, path, _, required in _patch._POINTS
        if required or (importlib.util.find_spec(module_name) and hasattr(importlib.import_module(module_name), path))
    }


def assert_nothing_patched() -> None:
    assert not _patch.installed()
    assert wrapped_points(_patch, PACKAGES) == set(), "a point was patched before all were checked"
    assert "get_all_tools" not in vars(Agent)


def test_the_documented_points_are_the_ones_install_patches() -> None:
    _patch.install()
    assert documented_points(_patch) == set(POINTS)
    assert set(REQUIRED) <= present() <= set(POINTS)
    assert wrapped_points(_patch, PACKAGES) == present()


def test_unpatch_restores_the_originals_and_install_puts_the_patches_back() -> None:
    _patch.install()
    home = importlib.import_module(HOME)
    wrapper = vars(home)["get_model"]
    _patch.unpatch()
    try:
        assert_nothing_patched()
        assert vars(home)["get_model"] is wrapper.__wrapped__
        assert vars(importlib.import_module(RUN_LOOP))["get_model"] is wrapper.__wrapped__
    finally:
        _patch.install()
    assert wrapped_points(_patch, PACKAGES) == present()


@pytest.mark.parametrize("point", REQUIRED)
def test_a_missing_point_is_a_clear_error_and_nothing_is_patched(point: str, monkeypatch: pytest.MonkeyPatch) -> None:
    module_name, path, _, _ = next(p for p in _patch._POINTS if f"{p[0]}.{p[1]}" == point)
    _patch.unpatch()
    try:
        remove_point(monkeypatch, module_name, path)
        with pytest.raises(RuntimeError, match=re.escape(f"{point} not found")) as error:
            _patch.install()
        assert "The adapter supports openai-agents 0.20 to 0.24" in str(error.value)
        assert_nothing_patched()
    finally:
        monkeypatch.undo()
        _patch.install()
    assert wrapped_points(_patch, PACKAGES) == present()


def test_a_module_resolving_models_another_way_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    _patch.unpatch()
    try:
        monkeypatch.setattr(importlib.import_module(RUN_LOOP), "get_model", lambda agent, run_config: None)
        with pytest.raises(RuntimeError, match=re.escape(f"{RUN_LOOP} does not resolve models with {HOME}.get_model")):
            _patch.install()
        assert_nothing_patched()
    finally:
        monkeypatch.undo()
        _patch.install()
    assert wrapped_points(_patch, PACKAGES) == present()


def test_a_module_of_the_sdk_binding_get_model_outside_the_table_is_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _patch.unpatch()
    try:
        scratch = ModuleType("agents.scratch")
        scratch.get_model = vars(importlib.import_module(HOME))["get_model"]  # type: ignore[attr-defined]
        monkeypatch.setitem(sys.modules, scratch.__name__, scratch)
        with pytest.raises(RuntimeError, match=re.escape(f"agents.scratch also resolves models with {HOME}.get_model")):
            _patch.install()
        assert_nothing_patched()
    finally:
        monkeypatch.undo()
        _patch.install()
    assert wrapped_points(_patch, PACKAGES) == present()

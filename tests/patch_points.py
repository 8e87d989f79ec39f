"""What an adapter's patch module documents, what it has actually wrapped, and how to take a point away."""

from __future__ import annotations

import importlib
import re
import sys
from types import ModuleType
from typing import Any

import pytest
import wrapt

_NAME = re.compile(r"``([\w.]+)``")


def documented_points(patch: ModuleType) -> set[str]:
    """``module.attribute.path`` of every point in the table of ``patch``'s docstring (module | point | why)."""
    points: set[str] = set()
    for row in (patch.__doc__ or "").splitlines():
        if not row.startswith("| ``"):
            continue
        module_cell, point_cell = row.split("|")[1:3]
        (module_name,) = _NAME.findall(module_cell)
        points |= {f"{module_name}.{path}" for path in _NAME.findall(point_cell)}
    assert points, f"{patch.__name__} documents no points"
    return points


def wrapped_points(patch: ModuleType, packages: tuple[str, ...]) -> set[str]:
    """Every function of ``packages`` (module globals and class attributes) that a wrapper of ``patch`` wraps."""
    found: set[str] = set()
    for name, module in list(sys.modules.items()):
        if name.partition(".")[0] not in packages or not isinstance(module, ModuleType):
            continue
        for attribute, value in list(vars(module).items()):
            candidates = [(f"{name}.{attribute}", value)]
            if isinstance(value, type) and value.__module__ == name:
                candidates += [(f"{name}.{value.__qualname__}.{a}", v) for a, v in list(vars(value).items())]
            for where, candidate in candidates:
                wrapper = candidate._self_wrapper if isinstance(candidate, wrapt.FunctionWrapper) else None
                if getattr(wrapper, "__module__", None) == patch.__name__:
                    found.add(where)
    return found


def remove_point(monkeypatch: pytest.MonkeyPatch, module_name: str, path: str) -> None:
    """Make ``module_name.path`` absent, also where its owner class inherits it from (undone by ``monkeypatch``)."""
    owner: Any = importlib.import_module(module_name)
    *parents, attribute = path.split(".")
    for part in parents:
        owner = getattr(owner, part)
    holders = [cls for cls in owner.__mro__ if attribute in vars(cls)] if isinstance(owner, type) else [owner]
    for holder in holders:
        monkeypatch.delattr(holder, attribute)
    assert not hasattr(owner, attribute)

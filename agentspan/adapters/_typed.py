"""Values recorded with their pydantic type, so that a replay hands back the same kind of object.

A pydantic model is recorded as ``{"model": "<module>:<qualname>", "value": <its JSON>}`` and rebuilt with
``model_validate`` (nothing is ever unpickled); anything else as ``{"value": <JSON>}``. A class defined
inside a function cannot be found again by its path: its value comes back as JSON.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel

from ..durable._codec import to_json

__all__ = ["decode_typed", "encode_typed", "model_class", "model_path"]


def model_path(cls: type[Any]) -> str:
    """Where ``cls`` is found again: ``<module>:<qualname>``."""
    return f"{cls.__module__}:{cls.__qualname__}"


def model_class(path: Any) -> type[BaseModel] | None:
    """The pydantic class at ``path`` (see :func:`model_path`), or ``None`` when it cannot be found."""
    if not isinstance(path, str) or "<locals>" in path:
        return None
    module_name, _, qualname = path.partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in qualname.split("."):
            found = getattr(found, part)
    except (ImportError, AttributeError):
        return None
    return found if isinstance(found, type) and issubclass(found, BaseModel) else None


def encode_typed(value: Any, what: str) -> dict[str, Any]:
    """``value`` as JSON, tagged with its pydantic class when it is a model (raises ``NotJSONError``)."""
    if isinstance(value, BaseModel):
        return {
            "model": model_path(type(value)),
            "value": to_json(value.model_dump(mode="json", by_alias=True), what),
        }
    return {"value": to_json(value, what)}


def decode_typed(data: Any) -> Any:
    """The value :func:`encode_typed` recorded."""
    if not isinstance(data, dict):
        return data
    cls = model_class(data.get("model"))
    value = data.get("value")
    return cls.model_validate(value) if cls is not None else value

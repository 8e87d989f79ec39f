"""JSON in and out of the journal: step inputs, outputs, fingerprints and recorded errors.

Nothing is ever unpickled. A value goes into the journal as JSON; on replay it comes back as JSON, or,
when the step function declares its return type, rebuilt as that type by pydantic.
"""

from __future__ import annotations

import builtins
import hashlib
import importlib
import inspect
import json
import traceback
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import PydanticSerializationError, to_jsonable_python

from ..errors import NotJSONError, StepFailedError
from ..runtime import ErrorInfo

__all__ = ["Codec", "error_info", "fingerprint", "rebuild_error", "return_codec", "to_json"]

_NATIVE = (str, int, float, bool, type(None))


def to_json(value: Any, what: str, *, check: bool = True) -> Any:
    """``value`` as plain JSON data (dicts, lists, str, numbers, bools, None).

    Pydantic models, dataclasses, enums, datetimes and tuples are converted the way pydantic
    serialises them; anything else raises :class:`NotJSONError` naming ``what``. ``check=False``
    leaves the NaN/Infinity check to a later ``json.dumps`` (the fingerprint does it for inputs).
    """
    if isinstance(value, _NATIVE) and not (check and isinstance(value, float) and value != value):
        return value
    try:
        data = to_jsonable_python(value)
        if check:
            json.dumps(data, allow_nan=False)
    except (PydanticSerializationError, TypeError, ValueError) as exc:
        raise NotJSONError(
            f"{what} is a {type(value).__qualname__}, which cannot be stored as JSON ({exc}); return or pass"
            " JSON data, a pydantic model or a dataclass (Agentspan never pickles)"
        ) from None
    return data


def _strip(value: Any, volatile: frozenset[str]) -> Any:
    if isinstance(value, dict):
        return {k: _strip(v, volatile) for k, v in value.items() if k not in volatile}
    if isinstance(value, list):
        return [_strip(v, volatile) for v in value]
    return value


def fingerprint(data: Any, volatile: Iterable[str] = ()) -> str:
    """A short stable hash of JSON ``data``, ignoring dict keys named in ``volatile`` at any depth.

    Volatile keys are the fields that change on every run (random ids, timestamps, trace ids): they
    must not change a step's identity.
    """
    frozen = frozenset(volatile)
    if frozen:
        data = _strip(data, frozen)
    try:
        text = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise NotJSONError(f"a step input is not JSON: {exc}") from None
    return hashlib.blake2b(text.encode(), digest_size=6).hexdigest()


class Codec:
    """Encodes a step's output to JSON and decodes it back, typed by the function's return annotation."""

    __slots__ = ("_adapter",)

    def __init__(self, return_type: Any) -> None:
        self._adapter: TypeAdapter[Any] | None = None
        if return_type not in (inspect.Signature.empty, Any, None, type(None)):
            self._adapter = _adapter(return_type)

    def encode(self, value: Any, what: str) -> Any:
        """The JSON form of ``value``."""
        if self._adapter is not None and not isinstance(value, _NATIVE):
            try:
                value = self._adapter.dump_python(value, mode="json")
            except (PydanticSerializationError, TypeError, ValueError):
                pass  # fall through to the generic conversion and its error
        return to_json(value, what)

    def decode(self, data: Any) -> Any:
        """Rebuild the value from its JSON form (the same on first run and on replay)."""
        if self._adapter is None:
            return data
        return self._adapter.validate_python(data)


@lru_cache(maxsize=512)
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def return_codec(fn: Callable[..., Any]) -> Codec:
    """A :class:`Codec` for ``fn``'s declared return type (JSON as-is when it declares none)."""
    try:
        hints = inspect.get_annotations(fn, eval_str=True)
    except Exception:  # an annotation that cannot be resolved: treat as undeclared
        hints = {}
    returned = hints.get("return", inspect.Signature.empty)
    try:
        return Codec(returned)
    except Exception:  # a type pydantic cannot handle: store plain JSON
        return Codec(inspect.Signature.empty)


_TRACEBACK_CHARS = 8000


def error_info(exc: BaseException) -> ErrorInfo:
    """The JSON record of an exception: its class path, message and traceback (the end of it)."""
    cls = type(exc)
    trace = "".join(traceback.format_exception(exc))
    if len(trace) > _TRACEBACK_CHARS:
        trace = "…" + trace[-_TRACEBACK_CHARS:]
    return ErrorInfo(type=f"{cls.__module__}.{cls.__qualname__}", message=str(exc), traceback=trace)


def rebuild_error(error: ErrorInfo, **context: Any) -> BaseException:
    """The recorded exception, as the same type with the same message when that type can be imported
    and built from a message; otherwise :class:`StepFailedError` naming the original type."""
    module_name, _, qualname = error.type.rpartition(".")
    cls: Any = None
    try:
        if module_name == "builtins":
            cls = getattr(builtins, qualname)
        elif module_name and "<locals>" not in qualname:
            cls = importlib.import_module(module_name)
            for part in qualname.split("."):
                cls = getattr(cls, part)
    except (ImportError, AttributeError):
        cls = None
    if isinstance(cls, type) and issubclass(cls, Exception):
        try:
            rebuilt: BaseException = cls(error.message)
            if str(rebuilt) == error.message:
                return rebuilt
        except Exception:
            pass
    return StepFailedError(f"step failed earlier with {error.type}: {error.message}", error_type=error.type, **context)

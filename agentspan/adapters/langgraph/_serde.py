"""LangChain objects as JSON and back, losslessly, with LangChain's own message serialisers.

Nothing is pickled and nothing goes through ``langchain_core.load``: messages use
``messages_to_dict``/``messages_from_dict`` (an ``AIMessage`` with tool calls, usage metadata,
response metadata and id comes back equal), everything else is plain JSON.

Step outputs use small tagged envelopes (``{"__lc__": "message", ...}``) so that a recorded value is
rebuilt as exactly the objects the framework returned (a ``ToolMessage``, a ``Command``, a string). The
final state of a graph, which people read, uses ``messages_to_dict`` without envelopes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from langchain_core.messages import (
    BaseMessage,
    BaseMessageChunk,
    convert_to_messages,
    message_to_dict,
    messages_from_dict,
    messages_to_dict,
)
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.types import Command, Send
from pydantic_core import to_jsonable_python

from ...durable._codec import Codec, to_json
from ...errors import NotJSONError

__all__ = [
    "CHAT_RESULT",
    "CHUNKS",
    "VALUE",
    "decode_state",
    "decode_value",
    "encode_value",
    "input_to_json",
    "safe_json",
    "state_to_json",
    "usage_of",
]

_TAG = "__lc__"


def _message(data: Any) -> BaseMessage:
    return messages_from_dict([data])[0]


def encode_value(value: Any, what: str) -> Any:
    """``value`` as JSON, with LangChain and LangGraph objects in tagged envelopes."""
    if value is None or isinstance(value, str | int | float | bool):
        return to_json(value, what)
    if isinstance(value, BaseMessage):
        return {_TAG: "message", "data": message_to_dict(value)}
    if isinstance(value, Command):
        return {
            _TAG: "command",
            "graph": value.graph,
            "update": encode_value(value.update, what),
            "resume": encode_value(value.resume, what),
            "goto": encode_value(value.goto, what),
        }
    if isinstance(value, Send):
        return {_TAG: "send", "node": value.node, "arg": encode_value(value.arg, what)}
    if isinstance(value, list | tuple):
        return [encode_value(item, what) for item in value]
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return {key: encode_value(item, what) for key, item in value.items()}
    return to_json(value, what)


def decode_value(data: Any) -> Any:
    """The value :func:`encode_value` encoded."""
    if isinstance(data, list):
        return [decode_value(item) for item in data]
    if not isinstance(data, dict):
        return data
    tag = data.get(_TAG)
    if tag == "message":
        return _message(data["data"])
    if tag == "command":
        return Command(
            graph=data["graph"],
            update=decode_value(data["update"]),
            resume=decode_value(data["resume"]),
            goto=decode_value(data["goto"]),
        )
    if tag == "send":
        return Send(data["node"], decode_value(data["arg"]))
    return {key: decode_value(item) for key, item in data.items()}


class _ValueCodec(Codec):
    """A tool's result: a ``ToolMessage``, a ``Command`` or plain JSON."""

    def encode(self, value: Any, what: str) -> Any:
        return encode_value(value, what)

    def decode(self, data: Any) -> Any:
        return decode_value(data)


class _ChatResultCodec(Codec):
    """A chat model's ``ChatResult``: its generations (messages and info) and ``llm_output``."""

    def encode(self, value: Any, what: str) -> Any:
        if not isinstance(value, ChatResult):
            raise NotJSONError(f"{what} is a {type(value).__qualname__}, not a ChatResult")
        return {
            "generations": [
                {
                    "message": message_to_dict(generation.message),
                    "generation_info": to_json(generation.generation_info, what),
                }
                for generation in value.generations
            ],
            "llm_output": to_json(value.llm_output, what),
        }

    def decode(self, data: Any) -> Any:
        generations = [
            ChatGeneration(message=_message(item["message"]), generation_info=item["generation_info"])
            for item in data["generations"]
        ]
        return ChatResult(generations=generations, llm_output=data["llm_output"])


class _ChunksCodec(Codec):
    """What ``stream()`` yielded: the list of message chunks, in order."""

    def encode(self, value: Any, what: str) -> Any:
        if not all(isinstance(chunk, BaseMessageChunk) for chunk in value):
            raise NotJSONError(f"{what} is not a list of message chunks")
        return messages_to_dict(value)

    def decode(self, data: Any) -> Any:
        return messages_from_dict(data)


VALUE: Codec = _ValueCodec(None)
CHAT_RESULT: Codec = _ChatResultCodec(None)
CHUNKS: Codec = _ChunksCodec(None)


def usage_of(result: Any) -> dict[str, int] | None:
    """Token usage of a ``ChatResult`` or a list of chunks, as the journal records it."""
    if isinstance(result, ChatResult):
        messages: list[Any] = [generation.message for generation in result.generations]
    else:
        messages = list(result)
    prompt = completion = total = 0
    found = False
    for message in messages:
        usage = getattr(message, "usage_metadata", None)
        if usage:
            found = True
            prompt += int(usage.get("input_tokens", 0))
            completion += int(usage.get("output_tokens", 0))
            total += int(usage.get("total_tokens", 0))
    if not found:
        return None
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}


def safe_json(value: Any) -> Any:
    """``value`` as JSON for display and fingerprints; what cannot be converted becomes ``"<TypeName>"``.

    Used for recorded step inputs, which may hold objects a tool receives by injection (a runtime, a
    store): the placeholder names the type without any per-process detail (no ``repr`` addresses).
    """
    if isinstance(value, BaseMessage):
        return message_to_dict(value)
    return to_jsonable_python(
        value, fallback=lambda obj: message_to_dict(obj) if isinstance(obj, BaseMessage) else f"<{type(obj).__name__}>"
    )


# --- graph input and final state ---------------------------------------------------------------------------
def _is_message_dict(item: Any) -> bool:
    return isinstance(item, dict) and set(item) == {"type", "data"} and isinstance(item["data"], dict)


def input_to_json(value: Any) -> Any:
    """A graph's input as JSON: messages (objects, ``("user", "...")`` tuples, dicts) under a
    ``messages`` key become ``messages_to_dict`` form; everything else must be JSON already."""
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if key == "messages" and isinstance(item, list | tuple):
                out[key] = messages_to_dict(convert_to_messages(item))
            else:
                out[key] = input_to_json(item)
        return out
    if isinstance(value, BaseMessage):
        return message_to_dict(value)
    if isinstance(value, list | tuple) and value and all(isinstance(item, BaseMessage) for item in value):
        return messages_to_dict(list(value))
    return to_json(value, "the graph input")


def state_to_json(value: Any) -> Any:
    """A graph state as JSON for people and for the result: messages in ``messages_to_dict`` form."""
    if isinstance(value, BaseMessage):
        return message_to_dict(value)
    if isinstance(value, list | tuple):
        if value and all(isinstance(item, BaseMessage) for item in value):
            return messages_to_dict(list(value))
        return [state_to_json(item) for item in value]
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        return {key: state_to_json(item) for key, item in value.items()}
    return to_json(value, "the final state of the graph")


def decode_state(data: Any) -> Any:
    """The objects :func:`input_to_json` or :func:`state_to_json` wrote (messages rebuilt)."""
    if isinstance(data, list):
        if data and all(_is_message_dict(item) for item in data):
            return messages_from_dict(data)
        return [decode_state(item) for item in data]
    if isinstance(data, dict):
        if _is_message_dict(data):
            return _message(data)
        return {key: decode_state(item) for key, item in data.items()}
    return data

"""Gemini's REST wire format for :class:`~agentspan.testing.FakeOpenAIServer`.

The fake answers Gemini requests from the same script as Chat Completions ones: a Gemini request is
turned into the Chat Completions form (``messages``), so turns are counted, replies chosen and requests
recorded by one mechanism, and the scripted :class:`ModelResponse` is turned back into a Gemini
``GenerateContentResponse``. Only plain JSON here: no Google package is imported.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..agents._types import ModelResponse

__all__ = ["GeminiRoute", "chat_request", "error_body", "response_body", "response_chunks", "route"]

# google-genai builds ``{base_url}/{api_version}/models/{model}:{method}``; ``alt=sse`` asks for SSE.
_PATH = re.compile(
    r"^/(?P<version>v1[a-z0-9]*)/(?P<model>(?:models|tunedModels)/[^/:?]+)"
    r":(?P<method>generateContent|streamGenerateContent)(?:\?(?P<query>.*))?$"
)

# google.rpc.Code names, as the Gemini API puts them in ``error.status``.
_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

_FINISH_REASON = {"stop": "STOP", "tool_calls": "STOP", "length": "MAX_TOKENS", "content_filter": "SAFETY"}


@dataclass(frozen=True)
class GeminiRoute:
    """A request path the fake answers in Gemini's format."""

    model: str
    """The model named in the path, without the ``models/`` prefix (``gemini-2.5-flash``)."""
    stream: bool
    """``streamGenerateContent`` rather than ``generateContent``."""
    sse: bool
    """``alt=sse`` was asked for (google-genai always asks for it when streaming)."""


def route(path: str) -> GeminiRoute | None:
    """The Gemini call ``path`` makes, or ``None`` when it is not a Gemini generate call."""
    match = _PATH.match(path)
    if match is None:
        return None
    query = match["query"] or ""
    return GeminiRoute(
        model=match["model"].split("/", 1)[1],
        stream=match["method"] == "streamGenerateContent",
        sse="alt=sse" in query.split("&"),
    )


def chat_request(body: Any, where: GeminiRoute) -> dict[str, Any]:
    """The Gemini request ``body`` as the fake records it: the body as sent, plus ``model`` (from the
    path), ``stream`` and ``messages`` (the ``systemInstruction`` and ``contents`` in Chat Completions
    form: one ``assistant`` message per ``model`` content, one ``tool`` message per ``functionResponse``).

    Raises:
        ValueError: ``body`` is not a Gemini request (the message says what is wrong).
    """
    if not isinstance(body, dict):
        raise ValueError("the request body is not a JSON object")
    contents = body.get("contents")
    if not isinstance(contents, list):
        raise ValueError("'contents' must be a list of {role, parts} objects")
    messages: list[dict[str, Any]] = []
    system = body.get("systemInstruction")
    if system is not None:
        messages.append({"role": "system", "content": _text(_parts(system, "systemInstruction"))})
    for index, content in enumerate(contents):
        parts = _parts(content, f"contents[{index}]")
        if content.get("role") == "model":
            messages.append(_assistant(parts))
        else:
            messages.extend(_user(parts))
    return {**body, "model": where.model, "stream": where.stream, "messages": messages}


def _parts(content: Any, where: str) -> list[Mapping[str, Any]]:
    parts = content.get("parts") if isinstance(content, dict) else None
    if not isinstance(parts, list) or not all(isinstance(part, dict) for part in parts):
        raise ValueError(f"'{where}' must be an object with a list of 'parts' objects")
    return parts


def _text(parts: list[Mapping[str, Any]]) -> str:
    # Thoughts are the model's scratchpad, not what it said.
    return "".join(str(part["text"]) for part in parts if "text" in part and not part.get("thought"))


def _assistant(parts: list[Mapping[str, Any]]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": _text(parts) or None}
    calls = [part["functionCall"] for part in parts if isinstance(part.get("functionCall"), dict)]
    if calls:
        message["tool_calls"] = [
            {
                "id": call.get("id"),
                "type": "function",
                "function": {"name": call.get("name"), "arguments": json.dumps(call.get("args") or {})},
            }
            for call in calls
        ]
    return message


def _user(parts: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for part in parts:
        result = part.get("functionResponse")
        if isinstance(result, dict):
            messages.append(
                {
                    "role": "tool",
                    "tool_call_id": result.get("id"),
                    "name": result.get("name"),
                    "content": json.dumps(result.get("response")),
                }
            )
    text = _text(parts)
    if text or not messages:
        messages.append({"role": "user", "content": text})
    return messages


# --- answers --------------------------------------------------------------------------------------------
def response_body(response: ModelResponse, number: int) -> dict[str, Any]:
    """``response`` as a Gemini ``GenerateContentResponse``: its text and tool calls as parts (tool calls
    as ``functionCall`` parts with the script's ids), usage, ``modelVersion`` and ``responseId``.

    Raises:
        ValueError: A tool call's arguments are not a JSON object, which Gemini cannot carry.
    """
    parts: list[dict[str, Any]] = []
    if response.message.content:
        parts.append({"text": response.message.content})
    parts += _function_calls(response)
    return _body([_candidate(parts or [{"text": ""}], response)], response, number, usage=True)


def response_chunks(response: ModelResponse, number: int) -> Iterator[dict[str, Any]]:
    """``response`` as the chunks of a streamed answer: the text in a few pieces, each tool call whole,
    and ``finishReason`` and usage on the last chunk (as Gemini sends them).

    Raises:
        ValueError: A tool call's arguments are not a JSON object, which Gemini cannot carry.
    """
    words = re.findall(r"\s*\S+\s*", response.message.content or "")
    size = max(1, -(-len(words) // 3))
    pieces: list[list[dict[str, Any]]] = [
        [{"text": "".join(words[start : start + size])}] for start in range(0, len(words), size)
    ]
    pieces += [[call] for call in _function_calls(response)]
    if not pieces:
        pieces = [[{"text": ""}]]
    for index, parts in enumerate(pieces):
        last = index == len(pieces) - 1
        candidate = _candidate(parts, response) if last else {"content": {"role": "model", "parts": parts}, "index": 0}
        yield _body([candidate], response, number, usage=last)


def error_body(status: int, message: str) -> dict[str, Any]:
    """A Gemini error body: ``{"error": {"code", "message", "status"}}``."""
    name = _STATUS.get(status) or ("INTERNAL" if status >= 500 else "FAILED_PRECONDITION")
    return {"error": {"code": status, "message": message, "status": name}}


def _function_calls(response: ModelResponse) -> list[dict[str, Any]]:
    parts = []
    for call in response.message.tool_calls:
        try:
            args = json.loads(call.arguments) if call.arguments.strip() else {}
        except ValueError:
            args = None
        if not isinstance(args, dict):
            raise ValueError(
                f"the scripted arguments of tool call {call.id} ({call.name}) are not a JSON object, and a "
                f"Gemini functionCall can only carry an object: {call.arguments[:200]!r}"
            )
        parts.append({"functionCall": {"id": call.id, "name": call.name, "args": args}})
    return parts


def _candidate(parts: list[dict[str, Any]], response: ModelResponse) -> dict[str, Any]:
    reason = _FINISH_REASON.get(response.finish_reason or "stop", "OTHER")
    return {"content": {"role": "model", "parts": parts}, "finishReason": reason, "index": 0}


def _body(candidates: list[dict[str, Any]], response: ModelResponse, number: int, *, usage: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"candidates": candidates}
    if usage:
        body["usageMetadata"] = {
            "promptTokenCount": response.usage.prompt_tokens,
            "candidatesTokenCount": response.usage.completion_tokens,
            "totalTokenCount": response.usage.total_tokens,
        }
    body["modelVersion"] = response.model
    body["responseId"] = f"fake-{number}"
    return body

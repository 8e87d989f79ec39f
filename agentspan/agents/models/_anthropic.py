"""Anthropic Messages API over httpx, translating from and to the Chat Completions message shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from pydantic import ValidationError

from .._types import Message, ModelRequest, ModelResponse, ToolCall, Usage
from ._errors import ModelServerError
from ._http import excerpt, provider_transport

__all__ = ["AnthropicModel", "anthropic_request_body"]

ANTHROPIC_BASE_URL = "https://api.anthropic.com"
ANTHROPIC_VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096
"""Anthropic requires ``max_tokens``; this is sent when the settings leave it unset."""

# Anthropic's stop reasons in the Chat Completions vocabulary the agent loop reads; others pass as is.
_FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "tool_use": "tool_calls", "max_tokens": "length"}


class AnthropicModel:
    """A Claude model behind the Anthropic Messages API (``POST {base_url}/v1/messages``).

    System messages become the top-level ``system``; tool calls and results become ``tool_use`` and
    ``tool_result`` blocks (consecutive results share one user message, as the API requires). The
    API has no JSON-schema response format, so an ``output_schema`` is asked for in the system prompt.

    Args:
        name: The model name without the provider prefix (``claude-sonnet-4-5``).
        base_url: The API root; default ``ANTHROPIC_BASE_URL``, else ``https://api.anthropic.com``.
        api_key: Sent as ``x-api-key``; default ``ANTHROPIC_API_KEY``. Calls to ``api.anthropic.com``
            without one raise :class:`~agentspan.errors.ConfigurationError` (on the call, not here).
        timeout: Seconds allowed for each attempt.
        max_retries: Retries of rate-limited, overloaded (529), failed (5xx) or timed-out calls.
    """

    def __init__(
        self,
        name: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        timeout: float = 60,
        max_retries: int = 4,
    ) -> None:
        self.provider = "anthropic"
        self.name = name
        self._http = provider_transport(
            provider=self.provider, model=name, base_url=base_url, api_key=api_key,
            default_url=ANTHROPIC_BASE_URL, url_env="ANTHROPIC_BASE_URL", key_env="ANTHROPIC_API_KEY",
            auth=lambda key: {"x-api-key": key}, headers={"anthropic-version": ANTHROPIC_VERSION},
            timeout=timeout, max_retries=max_retries,
        )  # fmt: skip

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._http.base_url

    def complete(self, request: ModelRequest) -> ModelResponse:
        """Answer ``request`` with one Messages call."""
        data = self._http.post_json("/v1/messages", anthropic_request_body(request, self.name))
        content = data.get("content")
        if not isinstance(content, list):
            self._http.malformed(f"the response has no content list: {excerpt(data)}")
        try:
            text = "".join(block["text"] for block in content if block.get("type") == "text")
            tool_calls = [
                ToolCall(id=block["id"], name=block["name"], arguments=json.dumps(block.get("input") or {}))
                for block in content
                if block.get("type") == "tool_use"
            ]
            return ModelResponse(
                message=Message(role="assistant", content=text or None, tool_calls=tool_calls),
                usage=_usage(data.get("usage") or {}),
                finish_reason=_finish_reason(data.get("stop_reason")),
                model=data.get("model"),
            )
        except (KeyError, TypeError, AttributeError, ValueError, ValidationError) as exc:
            self._http.malformed(f"unexpected response ({type(exc).__name__}: {exc}): {excerpt(data)}")

    def stream(self, request: ModelRequest) -> Iterator[str | ModelResponse]:
        """Answer ``request`` with a streamed call: text deltas as they arrive, then the full response."""
        body = anthropic_request_body(request, self.name)
        body["stream"] = True
        blocks: dict[int, dict[str, str]] = {}
        counts: dict[str, int] = {}
        stop_reason: str | None = None
        model: str | None = None
        for event, data in self._http.post_sse("/v1/messages", body):
            try:
                payload = json.loads(data)
                kind = payload.get("type", event)
                if kind == "error":
                    error = payload.get("error") or {}
                    raise ModelServerError(
                        f"{self._http.label}: the stream reported {error.get('type', 'an error')}: "
                        f"{error.get('message', data)}",
                        provider=self.provider,
                        model=self.name,
                    )
                if kind == "message_start":
                    message = payload["message"]
                    model = message.get("model")
                    counts.update(_counts(message.get("usage") or {}))
                elif kind == "content_block_start":
                    block = payload["content_block"]
                    blocks[payload["index"]] = {
                        "type": block["type"],
                        "id": block.get("id", ""),
                        "name": block.get("name", ""),
                        "text": block.get("text", ""),
                    }
                    if block.get("text"):
                        yield block["text"]
                elif kind == "content_block_delta":
                    slot, delta = blocks[payload["index"]], payload["delta"]
                    if delta["type"] == "text_delta":
                        slot["text"] += delta["text"]
                        yield delta["text"]
                    elif delta["type"] == "input_json_delta":
                        slot["text"] += delta["partial_json"]
                elif kind == "message_delta":
                    stop_reason = (payload.get("delta") or {}).get("stop_reason") or stop_reason
                    counts.update(_counts(payload.get("usage") or {}))
            except (KeyError, TypeError, AttributeError, ValueError) as exc:
                self._http.malformed(f"unexpected stream event ({type(exc).__name__}: {exc}): {data[:500]!r}")
        ordered = [blocks[index] for index in sorted(blocks)]
        text = "".join(block["text"] for block in ordered if block["type"] == "text")
        tool_calls = [
            ToolCall(id=block["id"], name=block["name"], arguments=_normalised_json(block["text"]))
            for block in ordered
            if block["type"] == "tool_use"
        ]
        yield ModelResponse(
            message=Message(role="assistant", content=text or None, tool_calls=tool_calls),
            usage=_usage(counts),
            finish_reason=_finish_reason(stop_reason),
            model=model,
        )

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> AnthropicModel:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AnthropicModel({self.name!r}, base_url={self.base_url!r})"


def anthropic_request_body(request: ModelRequest, default_model: str) -> dict[str, Any]:
    """The Messages API JSON body for ``request``."""
    system = [message.content for message in request.messages if message.role == "system" and message.content]
    if request.output_schema is not None:
        system.append(
            "Give your final answer as one JSON value, and nothing else, that matches this JSON schema:\n"
            + json.dumps(request.output_schema)
        )
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "system":
            continue
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        # The API wants roles to alternate and all results of one turn's tool calls in one user message.
        if messages and messages[-1]["role"] == role:
            messages[-1]["content"].extend(blocks)
        else:
            messages.append({"role": role, "content": blocks})
    for entry in messages:
        if len(entry["content"]) == 1 and entry["content"][0]["type"] == "text":
            entry["content"] = entry["content"][0]["text"]

    settings = request.settings
    body: dict[str, Any] = {
        "model": request.model or default_model,
        "max_tokens": settings.max_tokens or DEFAULT_MAX_TOKENS,
        "messages": messages,
    }
    if system:
        body["system"] = "\n\n".join(system)
    if settings.temperature is not None:
        body["temperature"] = settings.temperature
    if settings.top_p is not None:
        body["top_p"] = settings.top_p
    if request.tools:
        body["tools"] = [
            {"name": tool.name, "description": tool.description, "input_schema": tool.parameters}
            for tool in request.tools
        ]
        if settings.parallel_tool_calls is False:
            body["tool_choice"] = {"type": "auto", "disable_parallel_tool_use": True}
    return body


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        return [{"type": "tool_result", "tool_use_id": message.tool_call_id, "content": message.content or ""}]
    blocks: list[dict[str, Any]] = []
    if message.content or not message.tool_calls:
        blocks.append({"type": "text", "text": message.content or ""})
    for call in message.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": _input(call.arguments)})
    return blocks


def _input(arguments: str) -> dict[str, Any]:
    # ``input`` must be an object; arguments that are not a JSON object (a model's malformed JSON,
    # recorded as is) are sent as an empty one rather than failing the whole conversation.
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _counts(usage: dict[str, Any]) -> dict[str, int]:
    return {key: value for key, value in usage.items() if isinstance(value, int)}


def _usage(usage: dict[str, Any]) -> Usage:
    # Cached prompt tokens are reported apart from input_tokens, but they are still prompt tokens.
    prompt = sum(
        int(usage.get(key) or 0) for key in ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    )
    completion = int(usage.get("output_tokens") or 0)
    return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)


def _finish_reason(stop_reason: Any) -> str | None:
    if stop_reason is None:
        return None
    return _FINISH_REASONS.get(str(stop_reason), str(stop_reason))


def _normalised_json(text: str) -> str:
    """Streamed tool input as :meth:`AnthropicModel.complete` writes it (``json.dumps`` of the object)."""
    try:
        return json.dumps(json.loads(text)) if text.strip() else "{}"
    except ValueError:
        return text

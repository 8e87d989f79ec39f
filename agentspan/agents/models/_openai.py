"""OpenAI Chat Completions over httpx, for OpenAI and every OpenAI-compatible endpoint."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from types import TracebackType
from typing import Any

from pydantic import ValidationError

from .._types import Message, ModelRequest, ModelResponse, ToolCall, Usage
from ._errors import ModelServerError
from ._http import excerpt, provider_transport

__all__ = ["OpenAIModel", "openai_request_body"]

OPENAI_BASE_URL = "https://api.openai.com/v1"


class OpenAIModel:
    """A chat model behind the OpenAI Chat Completions API (``POST {base_url}/chat/completions``).

    Any OpenAI-compatible server works (vLLM, Ollama, LM Studio, LiteLLM, Together...): point
    ``base_url`` (or ``OPENAI_BASE_URL``) at it. Such a server may need no key; then no
    ``Authorization`` header is sent. Retries follow :mod:`agentspan.agents.models._http`.

    Args:
        name: The model name without the provider prefix (``gpt-4o-mini``).
        base_url: The API root; default ``OPENAI_BASE_URL``, else ``https://api.openai.com/v1``.
        api_key: The bearer token; default ``OPENAI_API_KEY``. Calls to ``api.openai.com`` without one
            raise :class:`~agentspan.errors.ConfigurationError` (on the call, not here, so agents can be
            defined where no key is set).
        timeout: Seconds allowed for each attempt.
        max_retries: Retries of rate-limited, failed (5xx) or timed-out calls before giving up.
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
        self.provider = "openai"
        self.name = name
        self._http = provider_transport(
            provider=self.provider, model=name, base_url=base_url, api_key=api_key,
            default_url=OPENAI_BASE_URL, url_env="OPENAI_BASE_URL", key_env="OPENAI_API_KEY",
            auth=lambda key: {"Authorization": f"Bearer {key}"}, timeout=timeout, max_retries=max_retries,
            no_key_hint=", or point OPENAI_BASE_URL at an OpenAI-compatible server that needs none",
        )  # fmt: skip

    @property
    def base_url(self) -> str:
        """The API root requests go to."""
        return self._http.base_url

    def complete(self, request: ModelRequest) -> ModelResponse:
        """Answer ``request`` with one Chat Completions call."""
        data = self._http.post_json("/chat/completions", openai_request_body(request, self.name))
        return self._parse(data)

    def stream(self, request: ModelRequest) -> Iterator[str | ModelResponse]:
        """Answer ``request`` with a streamed call: text deltas as they arrive, then the full response.

        Tool-call fragments are assembled by their index; usage comes from the final chunk
        (``stream_options.include_usage``).
        """
        body = openai_request_body(request, self.name)
        body["stream"] = True
        body["stream_options"] = {"include_usage": True}
        text: list[str] = []
        calls: dict[int, dict[str, str]] = {}
        usage = Usage()
        finish_reason: str | None = None
        model: str | None = None
        for _event, data in self._http.post_sse("/chat/completions", body):
            if data.strip() == "[DONE]":
                break
            chunk = self._chunk(data)
            model = chunk.get("model") or model
            if isinstance(chunk.get("usage"), dict):
                usage = self._usage(chunk["usage"])
            try:
                for choice in chunk.get("choices") or []:
                    if choice.get("index", 0) != 0:
                        continue
                    delta = choice.get("delta") or {}
                    if isinstance(piece := delta.get("content"), str) and piece:
                        text.append(piece)
                        yield piece
                    for fragment in delta.get("tool_calls") or []:
                        slot = calls.setdefault(
                            fragment.get("index", len(calls)), {"id": "", "name": "", "arguments": ""}
                        )
                        if fragment.get("id"):
                            slot["id"] = fragment["id"]
                        function = fragment.get("function") or {}
                        slot["name"] += function.get("name") or ""
                        slot["arguments"] += function.get("arguments") or ""
                    finish_reason = choice.get("finish_reason") or finish_reason
            except (AttributeError, TypeError) as exc:
                self._http.malformed(f"unexpected stream chunk ({type(exc).__name__}: {exc}): {data[:500]!r}")
        tool_calls = []
        for index in sorted(calls):
            slot = calls[index]
            if not slot["name"]:
                self._http.malformed(f"the stream sent tool call {index} without a function name")
            tool_calls.append(ToolCall(id=slot["id"] or _new_call_id(), name=slot["name"], arguments=slot["arguments"]))
        message = Message(role="assistant", content="".join(text) or None, tool_calls=tool_calls)
        yield ModelResponse(message=message, usage=usage, finish_reason=finish_reason, model=model)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> OpenAIModel:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"OpenAIModel({self.name!r}, base_url={self.base_url!r})"

    def _parse(self, data: dict[str, Any]) -> ModelResponse:
        choices = data.get("choices")
        if not isinstance(choices, list) or not choices:
            self._http.malformed(f"the response has no choices: {excerpt(data)}")
        try:
            choice = choices[0]
            message = choice["message"]
            tool_calls = [
                ToolCall(
                    id=call.get("id") or _new_call_id(),
                    name=call["function"]["name"],
                    arguments=_arguments(call["function"].get("arguments")),
                )
                for call in message.get("tool_calls") or []
            ]
            return ModelResponse(
                message=Message(role="assistant", content=_text(message.get("content")), tool_calls=tool_calls),
                usage=self._usage(data.get("usage") or {}),
                finish_reason=choice.get("finish_reason"),
                model=data.get("model"),
            )
        except (KeyError, IndexError, TypeError, AttributeError, ValidationError) as exc:
            self._http.malformed(f"unexpected response ({type(exc).__name__}: {exc}): {excerpt(data)}")

    def _usage(self, usage: Any) -> Usage:
        try:
            prompt = int(usage.get("prompt_tokens") or 0)
            completion = int(usage.get("completion_tokens") or 0)
            total = int(usage.get("total_tokens") or prompt + completion)
        except (AttributeError, TypeError, ValueError):
            self._http.malformed(f"unexpected usage: {excerpt(usage)}")
        return Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=total)

    def _chunk(self, data: str) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except ValueError:
            self._http.malformed(f"a stream event is not JSON: {data[:500]!r}")
        if not isinstance(chunk, dict):
            self._http.malformed(f"a stream event is not a JSON object: {data[:500]!r}")
        if (error := chunk.get("error")) is not None:
            detail = error.get("message") if isinstance(error, dict) else error
            raise ModelServerError(
                f"{self._http.label}: the stream reported an error: {detail}", provider=self.provider, model=self.name
            )
        return chunk


def openai_request_body(request: ModelRequest, default_model: str) -> dict[str, Any]:
    """The Chat Completions JSON body for ``request`` (settings only when set)."""
    body: dict[str, Any] = {
        "model": request.model or default_model,
        "messages": [_message(message) for message in request.messages],
    }
    if request.tools:
        body["tools"] = [
            {
                "type": "function",
                "function": {"name": tool.name, "description": tool.description, "parameters": tool.parameters},
            }
            for tool in request.tools
        ]
    settings = request.settings
    for key in ("temperature", "max_tokens", "top_p"):
        if (value := getattr(settings, key)) is not None:
            body[key] = value
    # OpenAI rejects parallel_tool_calls in a request without tools.
    if settings.parallel_tool_calls is not None and request.tools:
        body["parallel_tool_calls"] = settings.parallel_tool_calls
    if request.output_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": request.output_schema, "strict": False},
        }
    return body


def _message(message: Message) -> dict[str, Any]:
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id, "content": message.content or ""}
    if message.role == "assistant" and message.tool_calls:
        return {
            "role": "assistant",
            "content": message.content,
            "tool_calls": [
                {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}
                for call in message.tool_calls
            ],
        }
    return {"role": message.role, "content": message.content or ""}


def _text(content: Any) -> str | None:
    """Message content as text; some compatible servers answer a list of ``{"type": "text"}`` parts."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text") or "" for part in content if isinstance(part, dict)) or None
    raise TypeError(f"content is a {type(content).__name__}")


def _arguments(arguments: Any) -> str:
    # Some compatible servers send the arguments as an object rather than JSON text.
    if arguments is None:
        return "{}"
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _new_call_id() -> str:
    # Only for servers that send a tool call without an id; the response is recorded, so replays
    # see the same id.
    return f"call_{uuid.uuid4().hex[:24]}"

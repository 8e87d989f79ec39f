"""What flows between the agent loop and model providers: messages, tool calls, responses, usage.

Messages use the OpenAI Chat Completions shape (role, content, tool_calls, tool_call_id) because it
is the lingua franca of model APIs; providers with another wire format (Anthropic) translate at
their boundary. Everything here is JSON, so it is recorded in the journal as is.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["Message", "ModelRequest", "ModelResponse", "ModelSettings", "ToolCall", "ToolSpec", "Usage"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ToolCall(_Frozen):
    """A tool call the model asked for."""

    id: str
    """The provider's id for the call; the tool's result refers to it, and the step key uses it."""
    name: str
    arguments: str
    """The arguments as the model wrote them: a JSON text (it may be invalid; the tool says so)."""


class Message(_Frozen):
    """One chat message."""

    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    tool_calls: list[ToolCall] = Field(default_factory=list)
    """For ``assistant`` messages: the tool calls requested."""
    tool_call_id: str | None = None
    """For ``tool`` messages: the call this result answers."""
    name: str | None = None
    """For ``tool`` messages: the tool's name."""


class Usage(_Frozen):
    """Tokens a model call used."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            completion_tokens=self.completion_tokens + other.completion_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
        )


class ToolSpec(_Frozen):
    """A tool as a model sees it."""

    name: str
    description: str
    parameters: dict[str, Any]
    """JSON schema of the arguments object."""


class ModelSettings(_Frozen):
    """Sampling settings sent with every model call."""

    temperature: float | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    top_p: float | None = None
    parallel_tool_calls: bool | None = None


class ModelRequest(_Frozen):
    """One model call: the whole input, recorded as the step's input."""

    model: str
    """The model name without the provider prefix (``gpt-4o-mini``)."""
    messages: list[Message]
    tools: list[ToolSpec] = Field(default_factory=list)
    settings: ModelSettings = Field(default_factory=ModelSettings)
    output_schema: dict[str, Any] | None = None
    """JSON schema of a structured final answer, when the agent has an ``output_type``."""


class ModelResponse(_Frozen):
    """What a model call returned, recorded as the step's output."""

    message: Message
    """The assistant message (text and/or tool calls)."""
    usage: Usage = Field(default_factory=Usage)
    finish_reason: str | None = None
    """``stop``, ``tool_calls``, ``length``... as the provider said."""
    model: str | None = None
    """The model that answered, as the provider named it."""

"""Guardrails on a graph run: the last user message of its input, the last message of its final state.

A retry asks the graph again with the guardrail's message as a user message: on the same thread (from
its latest checkpoint) when the graph has a checkpointer, else on the previous run's messages plus that
one (so the model sees what it answered and why it must answer again).
"""

from __future__ import annotations

from typing import Any

from langchain_core.messages import BaseMessage, HumanMessage

from ...agents._guarding import Guarding
from ...errors import ConfigurationError

__all__ = ["answer_text", "check_prompt", "content_text", "feedback_input", "guardable", "with_answer"]


def content_text(content: Any) -> str:
    """The text of a message's content (a string, or a list of parts whose text parts are joined)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            part if isinstance(part, str) else str(part.get("text", ""))
            for part in content
            if isinstance(part, str) or (isinstance(part, dict) and part.get("type", "text") == "text")
        )
    return ""


def guardable(graph: Any) -> None:
    """Refuse guardrails on a graph whose state has no ``messages``: it has no final answer to check."""
    if "messages" not in (getattr(graph, "channels", None) or {}):
        raise ConfigurationError(
            "guardrails check a graph's final answer, the last message of its state; this graph's state has no"
            " messages channel (use MessagesState, or check the answer in a node of the graph)"
        )


def answer_text(state: Any) -> str:
    """The final answer of a pass: the text of the last message of its state."""
    found = state.get("messages") if isinstance(state, dict) else None
    if not found or not isinstance(found[-1], BaseMessage):
        return ""
    return content_text(found[-1].content)


def check_prompt(guarding: Guarding, value: Any) -> Any:
    """``value`` with its last user message checked (maybe fixed) by the input guardrails."""
    if not guarding.of("input"):
        return value
    messages = value.get("messages") if isinstance(value, dict) else None
    for index in range(len(messages or []) - 1, -1, -1):
        assert messages is not None
        message = messages[index]
        if isinstance(message, HumanMessage) and isinstance(message.content, str):
            verdict = guarding.check("input", message.content, subject="prompt", can_retry=False)
            if verdict.text == message.content:
                return value
            fixed = message.model_copy(update={"content": verdict.text})
            return {**value, "messages": [*messages[:index], fixed, *messages[index + 1 :]]}
    raise ConfigurationError("input guardrails check the run's last user message; this input has none")


def feedback_input(value: Any, state: Any, feedback: str, checkpointed: bool) -> Any:
    """What the graph is run on to ask again, told ``feedback``."""
    message = HumanMessage(feedback)
    if checkpointed:
        return {"messages": [message]}  # the thread holds the rest
    previous = state.get("messages") if isinstance(state, dict) else None
    base = value if isinstance(value, dict) else {}
    return {**base, "messages": [*(previous or []), message]}


def with_answer(output: Any, text: str) -> Any:
    """The final state as JSON with the last message's content replaced by the checked ``text``."""
    found = output.get("messages") if isinstance(output, dict) else None
    if not found or not isinstance(found[-1], dict):
        return output
    last = found[-1]
    data = dict(last.get("data") or {})
    if content_text(data.get("content")) == text:
        return output
    data["content"] = text
    return {**output, "messages": [*found[:-1], {**last, "data": data}]}

"""A scripted in-process model: agent tests without a network, a key or a bill."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeAlias

from ..agents._types import Message, ModelRequest, ModelResponse, ToolCall, Usage
from ..agents.models._errors import ModelError

__all__ = ["ScriptedModel", "ScriptedReply", "estimate_tokens", "research_script", "scripted_responses"]

ScriptedReply: TypeAlias = ModelResponse | str | Sequence[tuple[str, Mapping[str, Any]]]
"""One scripted model answer: a :class:`ModelResponse` as is, a ``str`` (a final text answer), or a list
of ``(tool_name, arguments)`` pairs (one assistant message asking for those tool calls)."""


def scripted_responses(replies: Iterable[ScriptedReply], *, first_id: int = 1) -> list[ModelResponse]:
    """The replies as :class:`ModelResponse` objects.

    Tool calls written as ``(tool_name, arguments)`` get the ids ``call_1``, ``call_2``... (from
    ``call_<first_id>``) numbered across the whole script, so the same script always produces the same
    ids (in any process).
    """
    responses: list[ModelResponse] = []
    numbered = first_id - 1
    for position, reply in enumerate(replies):
        if isinstance(reply, ModelResponse):
            responses.append(reply)
        elif isinstance(reply, str):
            responses.append(
                ModelResponse(message=Message(role="assistant", content=reply), finish_reason="stop"),
            )
        elif isinstance(reply, Sequence) and reply:
            calls = []
            for item in reply:
                if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                    raise TypeError(f"scripted reply {position}: expected (tool_name, arguments) pairs, got {item!r}")
                numbered += 1
                calls.append(ToolCall(id=f"call_{numbered}", name=item[0], arguments=json.dumps(dict(item[1]))))
            responses.append(
                ModelResponse(message=Message(role="assistant", tool_calls=calls), finish_reason="tool_calls"),
            )
        else:
            raise TypeError(
                f"scripted reply {position}: expected a ModelResponse, a str or a non-empty list of "
                f"(tool_name, arguments) pairs, got {reply!r}"
            )
    return responses


def research_script(
    n_tool_calls: int,
    tool_name: str,
    make_args: Callable[[int], Mapping[str, Any]] | None = None,
    *,
    answer: str = "Done.",
) -> list[ScriptedReply]:
    """A script of ``n_tool_calls`` turns that each call ``tool_name`` once, then the final ``answer``.

    Args:
        n_tool_calls: How many tool-calling turns come before the answer.
        tool_name: The tool every turn calls.
        make_args: The arguments of turn ``i`` (0-based); ``{}`` when omitted.
        answer: The final text answer.
    """
    turns: list[ScriptedReply] = [[(tool_name, make_args(turn) if make_args else {})] for turn in range(n_tool_calls)]
    turns.append(answer)
    return turns


def estimate_tokens(text: str) -> int:
    """A deterministic stand-in for a tokenizer: one token per four characters, at least one."""
    return max(1, (len(text) + 3) // 4)


def with_usage(response: ModelResponse, prompt_text: str, model: str) -> ModelResponse:
    """``response`` with the model name and, when the script set no usage, an estimated one."""
    update: dict[str, Any] = {}
    if "usage" not in response.model_fields_set:
        completion_text = (response.message.content or "") + "".join(
            call.name + call.arguments for call in response.message.tool_calls
        )
        prompt, completion = estimate_tokens(prompt_text), estimate_tokens(completion_text)
        update["usage"] = Usage(prompt_tokens=prompt, completion_tokens=completion, total_tokens=prompt + completion)
    if response.model is None:
        update["model"] = model
    return response.model_copy(update=update) if update else response


class ScriptedModel:
    """A :class:`~agentspan.agents.models.Model` that answers from a script, in order.

    Pass it wherever a model spec is expected. Every request is kept in :attr:`requests` (the exact
    input the agent loop sent), so tests can assert on prompts, tools and tool results::

        model = ScriptedModel([[("search", {"q": "durable"})], "Found it."])
        model = ScriptedModel.research(3, "search", lambda i: {"q": f"query {i}"})

    A reply whose usage the script does not set reports an estimate (four characters a token) so
    that token budgets can be tested.

    Args:
        responses: The replies, one per call (see :data:`ScriptedReply`).
        name: The model name used in step names.
        provider: The provider prefix used in step names.

    Attributes:
        requests: Every request received, in order.
        responses: The script, as :class:`ModelResponse` objects.
    """

    research_script = staticmethod(research_script)

    def __init__(
        self, responses: Iterable[ScriptedReply], *, name: str = "scripted", provider: str = "scripted"
    ) -> None:
        self.provider = provider
        self.name = name
        self.responses = scripted_responses(responses)
        self.requests: list[ModelRequest] = []
        self._lock = threading.Lock()

    @classmethod
    def research(
        cls,
        n_tool_calls: int,
        tool_name: str,
        make_args: Callable[[int], Mapping[str, Any]] | None = None,
        *,
        answer: str = "Done.",
        name: str = "scripted",
        provider: str = "scripted",
    ) -> ScriptedModel:
        """A model that calls ``tool_name`` once in each of ``n_tool_calls`` turns, then answers
        (see :func:`research_script`)."""
        return cls(research_script(n_tool_calls, tool_name, make_args, answer=answer), name=name, provider=provider)

    def complete(self, request: ModelRequest) -> ModelResponse:
        """The next scripted reply.

        Raises:
            ModelError: The script has no reply left.
        """
        with self._lock:
            index = len(self.requests)
            self.requests.append(request)
        if index >= len(self.responses):
            last = request.messages[-1] if request.messages else None
            asked = f"; the last message was {last.role}: {(last.content or '')[:200]!r}" if last else ""
            raise ModelError(
                f"{self.provider}/{self.name}: the script has {len(self.responses)} replies and this is call "
                f"{index + 1}{asked}",
                provider=self.provider,
                model=self.name,
            )
        prompt = "".join((message.content or "") for message in request.messages)
        return with_usage(self.responses[index], prompt, self.name)

    def stream(self, request: ModelRequest) -> Iterator[str | ModelResponse]:
        """The next scripted reply's text word by word, then the reply."""
        response = self.complete(request)
        yield from re.findall(r"\s*\S+\s*", response.message.content or "")
        yield response

    def __repr__(self) -> str:
        return f"ScriptedModel({len(self.responses)} replies, {len(self.requests)} requests)"

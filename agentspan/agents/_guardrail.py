"""Guardrails: checks on what goes into and comes out of a model, each one a recorded step.

A guardrail is a function of the text it checks that says whether the text passes. What happens when
it does not is the guardrail's ``on_fail``:

- ``retry``: the model is told why and asked again, inside the same execution (at most
  ``max_retries`` times for this guardrail, then the run fails as with ``raise``);
- ``fix``: the guardrail's ``fixed_output`` replaces the text;
- ``raise``: the run ends failed, ``finish_reason="guardrail"``;
- ``human``: the run waits (holding no process) for a person to approve the text as it is, reject it,
  or replace it (an approval with edited arguments ``{"output": "..."}``).

Every check runs as a durable step (kind ``guardrail``): after a crash its verdict is replayed, never
computed again, so an LLM guardrail is not paid for twice and a flaky check cannot change its mind.
"""

from __future__ import annotations

import asyncio
import enum
import inspect
import json
import re
from collections.abc import Callable, Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from ..errors import ConfigurationError
from ._types import Message, ModelRequest, ModelSettings

__all__ = ["Guardrail", "GuardrailResult", "LLMGuardrail", "OnFail", "Position", "RegexGuardrail", "guardrail"]


class OnFail(enum.StrEnum):
    """What a failed check does (plain strings work too: ``on_fail="retry"``)."""

    RETRY = "retry"
    """Tell the model why and ask again, in the same execution (at most ``max_retries`` times)."""
    RAISE = "raise"
    """End the run failed, ``finish_reason="guardrail"``."""
    FIX = "fix"
    """Use the guardrail's ``fixed_output`` instead of the text."""
    HUMAN = "human"
    """Wait for a person to approve, reject or replace the text (outputs only)."""


class Position(enum.StrEnum):
    """What a guardrail checks (plain strings work too: ``position="output"``)."""

    INPUT = "input"
    """The prompt; a tool's arguments (as JSON text)."""
    OUTPUT = "output"
    """The final answer; a tool's result."""


_ON_FAIL = tuple(m.value for m in OnFail)
_POSITIONS = tuple(m.value for m in Position)
F = TypeVar("F", bound=Callable[..., Any])
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


class GuardrailResult(BaseModel):
    """A guardrail's verdict on one text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    passed: bool
    """Whether the text passes."""
    message: str = ""
    """Why it does not: what the model is told when it is asked again (``on_fail="retry"``)."""
    fixed_output: str | None = None
    """The text to use instead (``on_fail="fix"``)."""


def _verdict(name: str, value: Any) -> GuardrailResult:
    """A check's return value as a verdict: a ``GuardrailResult``, or a bool."""
    if isinstance(value, GuardrailResult):
        return value
    if isinstance(value, bool):
        return GuardrailResult(passed=value, message="" if value else f"the {name} guardrail failed")
    raise ConfigurationError(
        f"guardrail {name} returned {type(value).__name__}; a guardrail function returns a GuardrailResult or a bool"
    )


class Guardrail:
    """A check on an agent's input or output (or a tool's), with what to do when it fails.

    Args:
        func: Takes the text (``str``) and returns a :class:`GuardrailResult` (or a bool); may be async.
        position: ``"output"`` (the final answer; a tool's result) or ``"input"`` (the prompt; a tool's
            arguments as JSON text).
        on_fail: ``"retry"``, ``"raise"``, ``"fix"`` or ``"human"`` (see the module's documentation).
        name: Identifies the guardrail in the journal and in errors (default: the function's name).
        max_retries: How many times ``retry`` asks the model again before the run fails.
    """

    def __init__(
        self,
        func: Callable[[str], Any],
        position: Position | str = Position.OUTPUT,
        on_fail: OnFail | str = OnFail.RETRY,
        name: str | None = None,
        max_retries: int = 3,
    ) -> None:
        if not callable(func):
            raise ConfigurationError(f"a guardrail takes a function of the text to check, not {func!r}")
        label = name or getattr(func, "__agentspan_guardrail__", None) or getattr(func, "__name__", "") or "guardrail"
        if label == "<lambda>":
            label = "guardrail"
        if not _NAME.match(label):
            raise ConfigurationError(f"guardrail name {label!r} is not valid: use 1 to 64 letters, digits, _ . and -")
        if position not in _POSITIONS:
            raise ConfigurationError(f"guardrail {label}: position must be 'input' or 'output', not {position!r}")
        if on_fail not in _ON_FAIL:
            raise ConfigurationError(
                f"guardrail {label}: on_fail must be one of {', '.join(_ON_FAIL)}, not {on_fail!r}"
            )
        if on_fail == "human" and position == "input":
            raise ConfigurationError(
                f"guardrail {label}: on_fail='human' checks outputs only (a person reviews what the model wrote)"
            )
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigurationError(f"guardrail {label}: max_retries must be a non-negative integer")
        self.func = func
        self.position = Position(position)
        self.on_fail = OnFail(on_fail)
        self.name = label
        self.max_retries = max_retries

    def check(self, content: str) -> GuardrailResult:
        """Run the check (outside any step): the verdict on ``content``."""
        value = self.func(content)
        if inspect.isawaitable(value):
            value = asyncio.run(_await(value))
        return _verdict(self.name, value)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, position={self.position.value!r},"
            f" on_fail={self.on_fail.value!r})"
        )


async def _await(value: Any) -> Any:
    return await value


def guardrail(func: F | None = None, /, *, name: str | None = None) -> Any:
    """Mark a function as a guardrail check (optional): ``Guardrail(func)`` then takes its ``name``.

    The function is returned unchanged, so it stays directly callable in tests.
    """

    def decorate(fn: F) -> F:
        label = name or fn.__name__
        if not _NAME.match(label):
            raise ConfigurationError(f"guardrail name {label!r} is not valid: use 1 to 64 letters, digits, _ . and -")
        fn.__agentspan_guardrail__ = label  # type: ignore[attr-defined]
        return fn

    return decorate if func is None else decorate(func)


class RegexGuardrail(Guardrail):
    """A guardrail that matches regular expressions.

    With ``mode="block"`` (the default) a text fails when any pattern matches it; with ``"allow"``, when
    none does. With ``on_fail="fix"`` a blocked text is kept with every match replaced by ``redaction``.

    Args:
        patterns: One pattern or several (Python ``re`` syntax).
        mode: ``"block"`` or ``"allow"``.
        message: What the model is told on failure (default: says which rule it broke).
        redaction: What replaces a blocked match when ``on_fail="fix"``.
        position, on_fail, name, max_retries: As for :class:`Guardrail`.
    """

    def __init__(
        self,
        patterns: str | Sequence[str],
        *,
        mode: Literal["block", "allow"] = "block",
        position: Position | str = Position.OUTPUT,
        on_fail: OnFail | str = OnFail.RETRY,
        name: str | None = None,
        message: str | None = None,
        redaction: str = "[REDACTED]",
        max_retries: int = 3,
    ) -> None:
        label = name or "regex"
        if mode not in ("block", "allow"):
            raise ConfigurationError(f"guardrail {label}: mode must be 'block' or 'allow', not {mode!r}")
        sources = [patterns] if isinstance(patterns, str) else list(patterns)
        if not sources:
            raise ConfigurationError(f"guardrail {label}: give at least one pattern")
        try:
            self.patterns = [re.compile(p) for p in sources]
        except re.error as exc:
            raise ConfigurationError(f"guardrail {label}: invalid pattern ({exc})") from None
        if on_fail == "fix" and mode == "allow":
            raise ConfigurationError(f"guardrail {label}: on_fail='fix' redacts blocked text; it needs mode='block'")
        self.mode = mode
        self.redaction = redaction
        default = (
            "The answer contains text that is not allowed; write it again without it."
            if mode == "block"
            else "The answer does not have the required form; write it again in that form."
        )
        self.message = message or default
        super().__init__(self._match, position=position, on_fail=on_fail, name=label, max_retries=max_retries)

    def _match(self, content: str) -> GuardrailResult:
        matched = any(p.search(content) for p in self.patterns)
        if matched == (self.mode == "allow"):
            return GuardrailResult(passed=True)
        fixed = None
        if self.mode == "block":
            fixed = content
            for pattern in self.patterns:
                fixed = pattern.sub(self.redaction, fixed)
        return GuardrailResult(passed=False, message=self.message, fixed_output=fixed)


_JUDGE = (
    "You check text against a policy. Answer with only a JSON object: "
    '{"passed": true} when the text follows the policy, or {"passed": false, "reason": "..."} when it does not.'
)


class LLMGuardrail(Guardrail):
    """A guardrail that asks a model whether the text follows a policy.

    The judge's call is a model step of its own inside the guardrail's step (its tokens count in the
    run's usage and budget). An answer that is not the JSON verdict fails the check, saying so.

    Args:
        model: ``"provider/model"`` or a :class:`~agentspan.agents.models.Model`.
        policy: What the text must (not) do, in words.
        max_tokens: The judge's answer limit.
        position, on_fail, name, max_retries: As for :class:`Guardrail`.
    """

    def __init__(
        self,
        model: Any,
        policy: str,
        *,
        position: Position | str = Position.OUTPUT,
        on_fail: OnFail | str = OnFail.RETRY,
        name: str | None = None,
        max_tokens: int | None = 200,
        max_retries: int = 3,
    ) -> None:
        if not isinstance(policy, str) or not policy.strip():
            raise ConfigurationError(f"guardrail {name or 'llm'}: the policy is the text the judge applies; give one")
        from .models import Model

        if isinstance(model, str):
            provider, _, model_name = model.partition("/")
            if not provider or not model_name:
                raise ConfigurationError(f"guardrail {name or 'llm'}: model {model!r} must be 'provider/model'")
        elif not isinstance(model, Model):
            raise ConfigurationError(f"guardrail {name or 'llm'}: model must be 'provider/model' or a Model")
        self.model = model
        self.policy = policy
        self.max_tokens = max_tokens
        super().__init__(self._judge, position=position, on_fail=on_fail, name=name or "llm", max_retries=max_retries)

    @property
    def model_name(self) -> str:
        """``provider/model`` of the judge."""
        if isinstance(self.model, str):
            return self.model
        return f"{self.model.provider}/{self.model.name}"

    def _judge(self, content: str) -> GuardrailResult:
        from ..durable import run_step
        from ..durable._codec import Codec
        from ._types import ModelResponse
        from .models import Model, get_model

        model = self.model if isinstance(self.model, Model) else get_model(self.model)
        request = ModelRequest(
            model=model.name,
            messages=[
                Message(role="system", content=_JUDGE),
                Message(role="user", content=f"POLICY:\n{self.policy}\n\nTEXT:\n{content}"),
            ],
            settings=ModelSettings(temperature=0, max_tokens=self.max_tokens),
        )
        try:
            response = run_step(
                "llm", self.model_name, request.model_dump(mode="json", exclude_defaults=True),
                lambda: model.complete(request), codec=Codec(ModelResponse),
                usage_of=lambda r: r.usage.model_dump(),
            )  # fmt: skip
        finally:
            if model is not self.model:  # made here from the spec: its connection pool is ours to close
                close = getattr(model, "close", None)
                if callable(close):
                    close()
        return _parse_judgement(self.name, response.message.content or "")


def _parse_judgement(name: str, text: str) -> GuardrailResult:
    match = re.search(r"\{.*\}", text, re.DOTALL)
    try:
        data = json.loads(match.group(0) if match else text)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict) or not isinstance(data.get("passed"), bool):
        return GuardrailResult(passed=False, message=f"the {name} guardrail's judge gave no verdict: {text[:200]!r}")
    reason = data.get("reason")
    return GuardrailResult(passed=data["passed"], message=str(reason) if reason else "")

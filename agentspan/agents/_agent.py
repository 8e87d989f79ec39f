"""``Agent``: what the user writes. Immutable, validated when it is built."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import BaseModel

from ..errors import ConfigurationError
from ..runtime import Budget
from ._guarding import check_guardrails
from ._guardrail import Guardrail
from ._tool import ToolDefinition
from ._types import ModelSettings
from .models import Model

__all__ = ["Agent"]

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


@dataclasses.dataclass(frozen=True, eq=False)
class Agent:
    """An agent: a model, instructions and tools, run as a durable loop.

    Every model call and every tool call of a run is a durable step: a run whose process died
    continues where it stopped, without repeating completed calls.

    Args:
        name: Identifies the agent (executions are started and claimed by it): letters, digits,
            ``_`` and ``-``, starting with a letter or ``_``.
        model: ``"provider/model"`` (``"openai/gpt-4o-mini"``, ``"anthropic/claude-..."``) or a
            :class:`~agentspan.agents.models.Model` instance.
        instructions: The system prompt.
        tools: ``@tool`` functions (plain functions are made into tools).
        agents: Sub-agents, each offered to the model as a tool taking a ``request`` string.
        max_turns: Model calls allowed in one run before it stops with ``finish_reason="max_turns"``.
        settings: Temperature, max tokens and the like, sent with every model call.
        output_type: A pydantic model: the final answer is requested as, and parsed into, it.
        guardrails: Checks on the prompt (``position="input"``) and on each final answer
            (``"output"``), each a recorded step; see :class:`~agentspan.agents.Guardrail`.
        budget: The token and cost :class:`~agentspan.agents.Budget` of each run (its sub-agents'
            model calls included), unless the run is given its own.
    """

    name: str
    model: str | Model
    instructions: str = ""
    tools: Sequence[Callable[..., Any]] = ()
    agents: Sequence[Agent] = ()
    max_turns: int = 25
    settings: ModelSettings = dataclasses.field(default_factory=ModelSettings)
    output_type: type[BaseModel] | None = None
    guardrails: Sequence[Guardrail] = ()
    budget: Budget | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise ConfigurationError(
                f"agent name {self.name!r} is not valid: use up to 64 letters, digits, _ and -, starting"
                " with a letter or _"
            )
        if isinstance(self.model, str):
            provider, _, model_name = self.model.partition("/")
            if not provider or not model_name:
                raise ConfigurationError(
                    f"agent {self.name}: model {self.model!r} must be 'provider/model', e.g. 'openai/gpt-4o-mini'"
                )
        elif not isinstance(self.model, Model):
            raise ConfigurationError(f"agent {self.name}: model must be 'provider/model' or a Model instance")
        if not isinstance(self.max_turns, int) or self.max_turns < 1:
            raise ConfigurationError(f"agent {self.name}: max_turns must be a positive integer")
        if self.output_type is not None and not (
            isinstance(self.output_type, type) and issubclass(self.output_type, BaseModel)
        ):
            raise ConfigurationError(f"agent {self.name}: output_type must be a pydantic model class")
        try:
            object.__setattr__(self, "guardrails", check_guardrails(self.guardrails))
        except ConfigurationError as exc:
            raise ConfigurationError(f"agent {self.name}: {exc}") from None
        if self.budget is not None and not isinstance(self.budget, Budget):
            raise ConfigurationError(f"agent {self.name}: budget must be a Budget(max_tokens=..., max_cost_usd=...)")
        object.__setattr__(self, "tools", tuple(self.tools))
        object.__setattr__(self, "agents", tuple(self.agents))
        names: set[str] = set()
        for definition in self.tool_definitions:
            if definition.name in names:
                raise ConfigurationError(f"agent {self.name}: two tools are named {definition.name!r}")
            names.add(definition.name)
        for sub in self.agents:
            if not isinstance(sub, Agent):
                raise ConfigurationError(f"agent {self.name}: agents= takes Agent objects, not {sub!r}")
            if sub.name in names:
                raise ConfigurationError(f"agent {self.name}: sub-agent {sub.name!r} clashes with a tool name")
            names.add(sub.name)

    @property
    def tool_definitions(self) -> list[ToolDefinition]:
        """The tools' definitions, in order."""
        return [ToolDefinition.of(t) for t in self.tools]

    @property
    def model_name(self) -> str:
        """``provider/model`` as shown in step names."""
        if isinstance(self.model, str):
            return self.model
        return f"{self.model.provider}/{self.model.name}"

    def describe(self) -> dict[str, Any]:
        """The definition as JSON (what ``deploy`` registers)."""
        return {
            "name": self.name,
            "model": self.model_name,
            "instructions": self.instructions,
            "tools": [d.spec().model_dump() for d in self.tool_definitions],
            "agents": [a.describe() for a in self.agents],
            "max_turns": self.max_turns,
            "settings": self.settings.model_dump(exclude_none=True),
            "output_schema": None if self.output_type is None else self.output_type.model_json_schema(),
            "guardrails": [{"name": g.name, "position": g.position, "on_fail": g.on_fail} for g in self.guardrails],
            "budget": None if self.budget is None else self.budget.model_dump(mode="json"),
        }

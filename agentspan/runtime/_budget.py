"""Token and cost budgets: the limits stored with an execution, the raises that extend them, and the
spend counted from the usage recorded on its model (``llm``) steps.

A budget is enforced by the durable context before each model call starts (see
:mod:`agentspan.durable._budget`); this module is the arithmetic both it and the readers (results,
``agentspan budget show``) share, so they always agree.

A raise is the payload of a ``budget:<n>`` signal, ``{"tokens": N}`` and/or ``{"cost_usd": X}``
(positive increments), delivered to the execution's n-th budget wait; recorded as that wait's output,
it counts from then on.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from ..errors import ConfigurationError, InvalidInputError
from ._prices import price_of

if TYPE_CHECKING:  # _models stores a Budget with each execution: it imports this module
    from ._models import Step

__all__ = [
    "BUDGET_PREFIX",
    "TOKENS",
    "USD",
    "Budget",
    "BudgetRaise",
    "Price",
    "Spend",
    "budget_raises",
    "effective_budget",
    "raise_of",
    "spend_of",
]

BUDGET_PREFIX = "budget:"
log = logging.getLogger("agentspan.budget")


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


def _number(value: Any) -> Any:
    """Refuse what pydantic's lax mode would turn into a number but JSON Schema does not call one."""
    if isinstance(value, bool | str):
        raise ValueError("Input should be a JSON number")
    return value


_Dollars = Annotated[float, Field(ge=0, allow_inf_nan=False), BeforeValidator(_number)]
_Tokens = Annotated[int, Field(gt=0), BeforeValidator(_number)]
_Limit = Annotated[float, Field(gt=0, allow_inf_nan=False), BeforeValidator(_number)]
TOKENS = _Tokens
"""A positive number of tokens (a JSON integer)."""
USD = _Limit
"""A positive amount of USD (a JSON number)."""


class _BudgetError(ConfigurationError, ValueError):
    """A budget that cannot work. A ``ValueError`` too, so that pydantic reports a bad budget inside
    a request body as a validation error of that field (a 400), not as a server error."""


class Price(_Frozen):
    """What a model costs, in USD per million tokens."""

    input: _Dollars
    """USD per million input (prompt) tokens."""
    output: _Dollars
    """USD per million output (completion) tokens."""


class Budget(_Frozen):
    """Limits on what one execution may spend on model calls.

    Checked before each model call starts, from the usage recorded on the execution's model steps
    (each counted once, also across crashes and workers): a call that would start with the budget
    spent does not start. Model calls already running side by side (parallel sub-agents) finish, so
    the spend may exceed the limit by those.

    Raises:
        ConfigurationError: no limit, a limit that is not positive, an unknown ``on_exhausted``, a
            negative price.
    """

    # At least one limit, as JSON Schema says it (the validator below says it to Python).
    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            "anyOf": [
                {"required": ["max_tokens"], "properties": {"max_tokens": {"type": "integer"}}},
                {"required": ["max_cost_usd"], "properties": {"max_cost_usd": {"type": "number"}}},
            ]
        },
    )

    max_tokens: _Tokens | None = None
    """Total tokens (input plus output) of all model calls."""
    max_cost_usd: _Limit | None = None
    """Cost of all model calls in USD, from the price table and ``prices`` (unpriced models count 0)."""
    on_exhausted: Literal["fail", "wait"] = "fail"
    """``fail``: the execution fails with :class:`~agentspan.errors.BudgetExceededError`; ``wait``: it
    waits, holding no process, until the budget is raised (``agentspan budget raise``) or it is cancelled."""
    prices: dict[str, Price] = Field(default_factory=dict)
    """Prices by model name (``gpt-4o`` or ``openai/gpt-4o``) that replace or extend the built-in table."""

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as exc:
            from ._models import describe

            raise _BudgetError(
                describe(exc).replace("invalid request", "invalid Budget", 1)
                + " (limits are positive numbers, on_exhausted is 'fail' or 'wait', prices are"
                " {'model': Price(input=..., output=...)} in USD per million tokens, not negative)"
            ) from None

    @model_validator(mode="after")
    def _one_limit(self) -> Budget:
        if self.max_tokens is None and self.max_cost_usd is None:
            raise ValueError("a budget needs max_tokens, max_cost_usd or both")
        return self

    def price_table(self) -> dict[str, tuple[float, float]]:
        """The user's prices as ``(input, output)`` pairs."""
        return {name: (p.input, p.output) for name, p in self.prices.items()}

    def raised_by(self, raises: Iterable[BudgetRaise]) -> Budget:
        """This budget with ``raises`` added to its limits (a raise of a limit it lacks is ignored)."""
        tokens, cost = self.max_tokens, self.max_cost_usd
        for found in raises:
            if tokens is not None and found.tokens is not None:
                tokens += found.tokens
            if cost is not None and found.cost_usd is not None:
                cost += found.cost_usd
        return self.model_copy(update={"max_tokens": tokens, "max_cost_usd": cost})


@dataclasses.dataclass(frozen=True)
class BudgetRaise:
    """A raise of a waiting execution's budget (positive increments)."""

    tokens: int | None = None
    cost_usd: float | None = None

    def payload(self) -> dict[str, Any]:
        """The raise as a ``budget:<n>`` signal's payload."""
        return {k: v for k, v in (("tokens", self.tokens), ("cost_usd", self.cost_usd)) if v is not None}


def raise_of(payload: Any) -> BudgetRaise:
    """The raise a signal payload carries; :class:`InvalidInputError` for anything else."""
    shown = json.dumps(payload)[:200] if _is_json(payload) else repr(payload)[:200]
    hint = f'a budget raise is {{"tokens": N}} and/or {{"cost_usd": X}} with positive numbers, not {shown}'
    if not isinstance(payload, dict) or not payload or set(payload) - {"tokens", "cost_usd"}:
        raise InvalidInputError(hint)
    tokens, cost = payload.get("tokens"), payload.get("cost_usd")
    if tokens is not None and (isinstance(tokens, bool) or not isinstance(tokens, int) or tokens <= 0):
        raise InvalidInputError(hint)
    if cost is not None and (
        isinstance(cost, bool) or not isinstance(cost, int | float) or not 0 < cost < float("inf")
    ):
        raise InvalidInputError(hint)
    if tokens is None and cost is None:
        raise InvalidInputError(hint)
    return BudgetRaise(tokens, None if cost is None else float(cost))


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _tokens(usage: dict[str, int]) -> int:
    total = int(usage.get("total_tokens", 0) or 0)
    return total or int(usage.get("prompt_tokens", 0) or 0) + int(usage.get("completion_tokens", 0) or 0)


@dataclasses.dataclass
class Spend:
    """What model calls have spent: tokens, and cost of the priced models."""

    tokens: int = 0
    """Total tokens of all model calls."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0
    """Model calls counted."""
    cost_usd: float = 0.0
    """Cost of the calls to priced models."""
    unpriced: set[str] = dataclasses.field(default_factory=set)
    """Models with no price: their tokens count, their cost is unknown."""

    def add(self, model: str, usage: dict[str, int] | None, prices: dict[str, tuple[float, float]]) -> bool:
        """Count one model call; returns whether its model is newly found unpriced."""
        usage = usage or {}
        prompt = int(usage.get("prompt_tokens", 0) or 0)
        completion = int(usage.get("completion_tokens", 0) or 0)
        return self.add_calls(model, 1, prompt, completion, _tokens(usage), prices)

    def add_calls(
        self, model: str, calls: int, prompt: int, completion: int, tokens: int, prices: dict[str, tuple[float, float]]
    ) -> bool:
        """Count ``calls`` model calls of ``model`` at once, their usage summed (as a store sums it);
        returns whether the model is newly found unpriced."""
        self.calls += calls
        self.tokens += tokens
        self.prompt_tokens += prompt
        self.completion_tokens += completion
        price = price_of(model, prices)
        if price is None:
            new = model not in self.unpriced
            self.unpriced.add(model)
            return new
        self.cost_usd += (prompt * price[0] + completion * price[1]) / 1_000_000
        return False

    @property
    def known_cost_usd(self) -> float | None:
        """The cost, or ``None`` when a model call's model is unpriced."""
        return None if self.unpriced else round(self.cost_usd, 10)

    @property
    def cost_note(self) -> str | None:
        """Why :attr:`known_cost_usd` is ``None``, if it is."""
        if not self.unpriced:
            return None
        return f"no price for {', '.join(sorted(self.unpriced))}: their tokens are counted, their cost is not"

    def exhausts(self, budget: Budget) -> bool:
        """Whether this spend reaches one of ``budget``'s limits."""
        if budget.max_tokens is not None and self.tokens >= budget.max_tokens:
            return True
        return budget.max_cost_usd is not None and self.cost_usd >= budget.max_cost_usd


def spend_of(steps: Iterable[Step], budget: Budget | None = None) -> Spend:
    """The spend of the model steps among ``steps`` (a journal), priced with ``budget``'s prices."""
    spend = Spend()
    prices = {} if budget is None else budget.price_table()
    for step in steps:
        if step.kind == "llm" and step.status == "completed" and not step.superseded:
            spend.add(step.name, step.usage, prices)
    return spend


def budget_raises(steps: Iterable[Step]) -> list[BudgetRaise]:
    """The raises recorded as outputs of completed budget waits."""
    found = []
    for step in steps:
        if step.kind == "budget" and step.status == "completed" and not step.superseded:
            try:
                found.append(raise_of(step.output))
            except InvalidInputError:
                log.warning("budget wait %s of execution %s has no valid raise", step.key, step.execution_id)
    return found


def effective_budget(budget: Budget, steps: Iterable[Step]) -> Budget:
    """``budget`` plus the raises recorded in the journal ``steps``."""
    return budget.raised_by(budget_raises(steps))

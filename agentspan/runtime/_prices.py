"""Model prices: USD per million input and output tokens, for the cost a budget counts.

The figures are the list prices as published by the providers for their standard (non-batch,
non-cached) tier; they change, so override them with ``Budget(prices={...})``. A model is matched by
its name without a provider prefix (``openai/gpt-4o-mini`` is ``gpt-4o-mini``), exactly or else by
the longest listed name it starts with (``gpt-4o-2024-08-06`` is priced as ``gpt-4o``).
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["PRICES", "bare_model_name", "price_of"]

PRICES: dict[str, tuple[float, float]] = {
    # OpenAI
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "o1": (15.00, 60.00),
    "o1-mini": (1.10, 4.40),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    # Anthropic
    "claude-opus-4": (15.00, 75.00),
    "claude-sonnet-4": (3.00, 15.00),
    "claude-3-7-sonnet": (3.00, 15.00),
    "claude-3-5-sonnet": (3.00, 15.00),
    "claude-3-5-haiku": (0.80, 4.00),
    "claude-3-haiku": (0.25, 1.25),
    # Google
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.0-flash": (0.10, 0.40),
    "gemini-1.5-pro": (1.25, 5.00),
    "gemini-1.5-flash": (0.075, 0.30),
}
"""Model name → (USD per million input tokens, USD per million output tokens)."""


def bare_model_name(model: str) -> str:
    """``model`` without a provider prefix (``openai/gpt-4o`` → ``gpt-4o``, ``models/gemini-2.5-flash``
    → ``gemini-2.5-flash``)."""
    return model.rsplit("/", 1)[-1]


def _match(name: str, table: Mapping[str, tuple[float, float]]) -> tuple[float, float] | None:
    if name in table:
        return table[name]
    prefixes = [listed for listed in table if name.startswith(listed + "-")]
    return table[max(prefixes, key=len)] if prefixes else None


def price_of(model: str, overrides: Mapping[str, tuple[float, float]] = {}) -> tuple[float, float] | None:
    """``(input, output)`` USD per million tokens for ``model``, the user's ``overrides`` first (by the
    full name, then the bare one); ``None`` when it is not priced."""
    if model in overrides:
        return overrides[model]
    bare = bare_model_name(model)
    return _match(bare, overrides) or _match(bare, PRICES)

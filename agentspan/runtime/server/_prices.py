"""``GET /api/prices``: the model price table, so the UI prices each model call as budgets do."""

from __future__ import annotations

from fastapi import APIRouter

from .._prices import PRICES

__all__ = ["prices_router"]

prices_router = APIRouter()


@prices_router.get("/prices", response_model=dict[str, list[float]], tags=["executions"])
async def list_prices() -> dict[str, list[float]]:
    """``[input, output]``: USD per million input and output tokens by model name (without a provider prefix); a model is
    priced by an exact name or else the longest listed name it starts with. An execution's budget may
    carry its own prices, which take precedence."""
    return {name: [price[0], price[1]] for name, price in PRICES.items()}

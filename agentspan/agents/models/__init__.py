"""Model providers for native agents: OpenAI Chat Completions (and compatible servers) and Anthropic.

``get_model("openai/gpt-4o-mini")`` turns a spec into a :class:`Model`; providers speak HTTP with
httpx (no provider SDKs), retry rate limits and server errors, and raise :class:`ModelError`
subclasses that name the provider, the model and what to fix.
"""

from ._anthropic import AnthropicModel
from ._base import Model
from ._errors import (
    ModelAuthError,
    ModelError,
    ModelRateLimitError,
    ModelRequestError,
    ModelResponseError,
    ModelServerError,
)
from ._openai import OpenAIModel
from ._registry import get_model

__all__ = [
    "AnthropicModel",
    "Model",
    "ModelAuthError",
    "ModelError",
    "ModelRateLimitError",
    "ModelRequestError",
    "ModelResponseError",
    "ModelServerError",
    "OpenAIModel",
    "get_model",
]

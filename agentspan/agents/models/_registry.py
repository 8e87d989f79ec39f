"""Model specs (``openai/gpt-4o-mini``) to model providers."""

from __future__ import annotations

from collections.abc import Callable

from ...errors import ConfigurationError
from ._anthropic import AnthropicModel
from ._base import Model
from ._openai import OpenAIModel

__all__ = ["get_model"]

_PROVIDERS: dict[str, Callable[..., Model]] = {"anthropic": AnthropicModel, "openai": OpenAIModel}


def get_model(spec: str | Model, *, base_url: str | None = None, api_key: str | None = None) -> Model:
    """The model a spec names: ``openai/<model>`` or ``anthropic/<model>``.

    Any OpenAI-compatible server (vLLM, Ollama, LiteLLM...) is ``openai/<its model name>`` with
    ``base_url`` (or ``OPENAI_BASE_URL``) pointing at it. The model name may itself contain ``/``
    (``openai/meta-llama/Llama-3.1-8B-Instruct``). A :class:`Model` instance (a
    :class:`~agentspan.testing.ScriptedModel`, a provider built by hand) is returned as is.

    Args:
        spec: ``provider/model``, or a model.
        base_url: The provider's API root, instead of its environment variable or default.
        api_key: The API key, instead of the provider's environment variable.

    Raises:
        ConfigurationError: The spec names no supported provider or no model.
    """
    if not isinstance(spec, str):
        if isinstance(spec, Model):
            return spec
        raise ConfigurationError(f"a model is a 'provider/model' string or a Model, not {type(spec).__name__}")
    provider, _, name = spec.partition("/")
    factory = _PROVIDERS.get(provider)
    if factory is None or not name.strip():
        supported = ", ".join(f"'{prefix}/<model>'" for prefix in sorted(_PROVIDERS))
        raise ConfigurationError(
            f"unsupported model {spec!r}: use {supported}; for an OpenAI-compatible endpoint (vLLM, Ollama, "
            "LiteLLM...) use 'openai/<model>' with base_url=... or OPENAI_BASE_URL"
        )
    return factory(name, base_url=base_url, api_key=api_key)

"""Registers the OpenAI-compatible providers on the public ``register_models`` hook.

The presets (``openai``, ``deepseek``, ``dashscope``, ``vllm``, ``ollama``) are registered like
any third-party provider would be.

All of them share one factory, ``openai_compatible_factory``, which the runtime also uses for
providers that exist only in the settings (``[providers.mine] base_url = ...``).
"""

from __future__ import annotations

from collections.abc import Callable

from graft.config import PROVIDER_PRESETS, Settings, split_model_id
from graft.errors import ModelUnavailable
from graft.hookspecs import hookimpl
from graft.models.openai import OpenAIModel

__all__ = ["openai_compatible_factory", "register_models"]


def openai_compatible_factory(model_id: str, settings: Settings) -> OpenAIModel:
    """Build the model ``provider:name`` from the provider's settings merged over its preset."""
    try:
        prefix, _ = split_model_id(model_id)
    except ValueError as exc:
        raise ModelUnavailable(str(exc)) from None
    provider = settings.provider(prefix)
    if provider is None:
        raise ModelUnavailable(
            f"no provider {prefix!r} is configured for model {model_id!r}; "
            f"add [providers.{prefix}] with a base_url to the settings"
        )
    return OpenAIModel(model_id, provider, network=settings.network.policy())


@hookimpl
def register_models(register: Callable[..., None]) -> None:
    """Register every preset provider with the OpenAI-compatible factory."""
    for name in PROVIDER_PRESETS:
        register(name, openai_compatible_factory)

"""Registers the embedded offline model (``local:smollm2``) on the public ``register_models`` hook.

The provider prefix ``local`` runs a GGUF file in-process through llama.cpp; see
``graft.models.local``. Registering it costs nothing: llama.cpp is imported and the weights
are loaded only when a ``local:`` model first answers, and a missing extra is reported then
as ``ModelUnavailable`` with the command that installs it. ``local:NAME@ADAPTER`` serves the
model with a fine-tuned LoRA adapter on it (``graft.models.local_adapters``).
"""

from __future__ import annotations

from collections.abc import Callable

from graft.config import Settings
from graft.hookspecs import hookimpl
from graft.models.local import LocalModel
from graft.models.local_adapters import resolve_adapter

__all__ = ["local_model_factory", "register_models"]


def local_model_factory(model_id: str, settings: Settings) -> LocalModel:
    """Build ``local:NAME``: SmolLM2 for ``local:smollm2``, or ``settings.local_model_path``.

    ``local:NAME@ADAPTER`` is the same model with a saved LoRA adapter applied.
    """
    base_id, adapter = resolve_adapter(model_id, settings)
    model = LocalModel(base_id, settings)
    if adapter is not None:
        model.id, model.adapter = model_id, adapter
    return model


@hookimpl
def register_models(register: Callable[..., None]) -> None:
    """Register the ``local`` provider."""
    register("local", local_model_factory)

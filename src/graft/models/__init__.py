"""Chat models: the ``Model`` protocol and the providers that implement it.

``graft.models.base`` defines what a model is; ``openai`` talks to any OpenAI-compatible
endpoint; ``local`` runs the embedded GGUF model through llama.cpp.
"""

from graft.models.base import (
    FinishChunk,
    Model,
    ModelChunk,
    ModelFactory,
    ModelRequest,
    TextChunk,
    ToolCallChunk,
    UsageChunk,
)

__all__ = [
    "FinishChunk",
    "Model",
    "ModelChunk",
    "ModelFactory",
    "ModelRequest",
    "TextChunk",
    "ToolCallChunk",
    "UsageChunk",
]

"""``[embeddings]``: which model turns text into vectors for search (``graft.embeddings``).

Apart from ``graft.embeddings`` so that ``graft.config`` can hold it without importing the
embedders (and they, in turn, read ``graft.config.Settings``). docs/configuration.md
("Embeddings") describes each field.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

from graft.netguard import AllowHosts

__all__ = ["EmbeddingsSettings"]


class EmbeddingsSettings(BaseModel):
    """``[embeddings]``: the model that turns text into vectors for search."""

    model_config = ConfigDict(extra="forbid")

    model: str = Field(
        default="e5",
        description="`e5` (offline multilingual-e5-small) or `provider:name`: an "
        "OpenAI-compatible `/embeddings` endpoint with that provider's `base_url` and key.",
    )
    batch_size: int = Field(default=64, ge=1, le=2048, description="Texts per request.")
    timeout: float = Field(default=30.0, gt=0, description="Seconds per request.")
    max_retries: int = Field(
        default=2, ge=0, le=10, description="Retries on connection errors, 408, 409, 429, 5xx."
    )
    dimensions: int | None = Field(
        default=None,
        ge=1,
        description="Vector length to ask the endpoint for (text-embedding-3 models can "
        "shorten theirs); None: the model's own.",
    )
    allow_hosts: AllowHosts = Field(
        default_factory=list,
        description="Intranet host names or CIDRs the endpoint may resolve to, besides "
        "`network.allow_hosts` and the provider's own.",
    )

    @field_validator("model")
    @classmethod
    def _is_e5_or_a_model_id(cls, value: str) -> str:
        provider, sep, name = value.partition(":")
        if value != "e5" and not (sep and provider and name):
            raise ValueError(f"{value!r} is neither 'e5' nor 'provider:name'")
        return value

"""The model registry's settings: aliases for model ids, and an assistant's canary.

An **alias** is a short name for a model id (``provider:name``), so that moving every
assistant to another model is one line of the settings file::

    [models.aliases]
    prod = "openai:gpt-4o-mini"
    fast = "prod"                 # an alias may name another alias

    [assistants.support]
    model = "prod"                # resolved to openai:gpt-4o-mini

An assistant may keep aliases of its own in ``models`` (alias → model id or alias); they win
over ``[models.aliases]`` for that assistant. A name with a colon is a model id and is used
as it is; a name without one must be an alias. An unknown alias, or aliases that name each
other in a loop, is a ``ConfigError`` when the settings are loaded or a stored assistant is
put, never in the middle of a chat.

A **canary** sends a share of an assistant's conversations to a candidate model
(``graft.model_routing`` routes them)::

    [assistants.support.canary]
    model = "local:smollm2@tuned-v1"   # a model id or an alias
    share = 0.1                        # 10% of conversations

An assistant's ``fallbacks`` (``graft.model_routing``) name model ids or aliases too, and
are checked the same way.

This module is plain data and one pure function, so that ``graft.config`` can check aliases
without importing the runtime.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from graft.errors import ConfigError

__all__ = [
    "ALIAS_PATTERN",
    "CanarySettings",
    "ModelsSettings",
    "resolve_model_id",
]

ALIAS_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""An alias: letters, digits, ``.``, ``_`` and ``-``, no colon (a model id has one)."""

_MAX_HOPS: Final = 16

Alias = Annotated[str, StringConstraints(pattern=ALIAS_PATTERN)]
Target = Annotated[str, StringConstraints(min_length=1, max_length=255)]


class CanarySettings(BaseModel):
    """A candidate model that gets ``share`` of an assistant's conversations."""

    model_config = ConfigDict(extra="forbid")

    model: Target = Field(description="The candidate: a model id or an alias.")
    share: float = Field(
        ge=0,
        le=1,
        description="The share of conversations routed to it, 0 to 1 (0.1: one in ten); "
        "a conversation keeps its model from turn to turn.",
    )


class ModelsSettings(BaseModel):
    """``[models]``: aliases shared by every assistant."""

    model_config = ConfigDict(extra="forbid")

    aliases: dict[Alias, Target] = Field(
        default_factory=dict,
        description="Alias → model id (`provider:name`) or another alias.",
    )


def resolve_model_id(
    name: str, own: Mapping[str, str] | None = None, shared: Mapping[str, str] | None = None
) -> str:
    """The model id ``name`` stands for: ``name`` itself if it has a colon, else its alias.

    ``own`` are an assistant's aliases, looked up before the ``shared`` ones.

    Raises:
        ConfigError: ``name`` (or an alias on the way) is no model id and no alias, or
            aliases name each other in a loop (``param`` is ``model``).
    """
    own, shared = own or {}, shared or {}
    seen = [name]
    while ":" not in name:
        target = own.get(name, shared.get(name))
        if target is None:
            known = ", ".join(sorted({*own, *shared})) or "none"
            via = f" (via {' → '.join(seen)})" if len(seen) > 1 else ""
            raise ConfigError(
                f"{name!r}{via} is no model alias and no model id (a model id looks like "
                f"'provider:name', e.g. 'openai:gpt-4o-mini'); known aliases: {known}",
                param="model",
            )
        if target in seen or len(seen) > _MAX_HOPS:
            raise ConfigError(f"model aliases loop: {' → '.join([*seen, target])}", param="model")
        seen.append(target)
        name = target
    return name

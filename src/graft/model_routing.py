"""Which model answers a turn: aliases resolved, and a canary's share of conversations.

``route_turn`` decides once per turn, before the model is called:

- the assistant's ``model`` (or the settings' ``model``) is resolved through the aliases
  (``graft.model_settings``): that is the **primary** model;
- if the assistant has a ``canary`` with a ``share`` above 0, the conversation's routing key
  is hashed (SHA-256) to a number in [0, 1); below ``share`` the turn goes to the
  **canary** model.

**Sticky per conversation.** The routing key is the assistant, the tenant and user, and the
first user message of the conversation as the store keeps it (the history's, or the new
messages' after the ``store`` middleware). Every turn of a stored conversation, and every call
of a client that keeps its own history and sends it whole (a stateless OpenAI-style call), has
the same key, so a conversation never switches models half-way. Nothing of the key is kept.

**Fallback.** A turn's models are tried in order through ``FallbackModel``: the canary (on a
canary turn), the primary, then the assistant's ``fallbacks`` (model ids or aliases). When
one fails before its first chunk (an upstream error after its own retries, a timeout, a
missing key), the next answers instead, for the rest of the turn, and the turn's route
becomes ``fallback``. A failure after the first chunk ends the turn as any model failure
does: nothing is retried once the client has seen text. ``CanaryModel`` is the canary with
the primary (and the fallbacks) behind it.

What answered is on the turn's ``TurnDone`` (``model``, ``route``) and in its stored record
(``graft.store``: ``model``, ``route``, ``first_token_ms``), which per-model metrics and
``graft models stats`` read. A turn of an assistant without a canary has the route
``primary`` and pays for none of this but one dictionary lookup.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Literal

from graft.config import AssistantSettings, Settings
from graft.context import Principal
from graft.errors import ConfigError, GraftError
from graft.messages import Message
from graft.model_settings import resolve_model_id
from graft.models.base import Model, ModelChunk, ModelRequest

if TYPE_CHECKING:
    from graft.runtime import Graft

__all__ = [
    "ROUTES",
    "answered",
    "CanaryModel",
    "FallbackModel",
    "Route",
    "RouteName",
    "bucket",
    "registry_listing",
    "canary_model_id",
    "fallback_model_ids",
    "primary_model_id",
    "route_turn",
    "routed_model",
    "routing_key",
]

log = logging.getLogger(__name__)

RouteName = Literal["primary", "canary", "fallback"]
ROUTES: Final[tuple[RouteName, ...]] = ("primary", "canary", "fallback")


@dataclass(frozen=True, slots=True)
class Route:
    """Where one turn goes: the model it calls first, and the primary behind it."""

    model: str
    """The model id the turn is routed to (the canary's on a canary turn)."""
    primary: str
    """The assistant's primary model id."""
    route: RouteName
    fallbacks: tuple[str, ...] = ()
    """Model ids tried in order after ``model`` (and the primary) fail before a chunk."""


def primary_model_id(settings: Settings, assistant: AssistantSettings) -> str:
    """The assistant's model id, aliases resolved (``ConfigError`` for an unknown alias)."""
    wanted = assistant.model or settings.model
    return resolve_model_id(wanted, assistant.models, settings.models.aliases)


def canary_model_id(settings: Settings, assistant: AssistantSettings) -> str | None:
    """The assistant's canary model id, aliases resolved; ``None`` without a canary."""
    if assistant.canary is None:
        return None
    return resolve_model_id(assistant.canary.model, assistant.models, settings.models.aliases)


def registry_listing(
    settings: Settings, assistants: Iterable[tuple[str, AssistantSettings]]
) -> dict[str, Any]:
    """The shared aliases, and each assistant's model and canary as configured and resolved.

    What ``graft models list`` prints and ``GET /v1/admin/models/stats`` returns beside its
    numbers. An alias that no longer resolves shows its error instead of a model id.
    """
    listed = []
    for name, assistant in assistants:
        entry: dict[str, Any] = {
            "assistant": name,
            "model": assistant.model or settings.model,
            "aliases": dict(assistant.models),
        }
        try:
            entry["resolved"] = primary_model_id(settings, assistant)
            if assistant.canary is not None:
                entry["canary"] = {
                    "model": assistant.canary.model,
                    "resolved": canary_model_id(settings, assistant),
                    "share": assistant.canary.share,
                }
        except ConfigError as exc:
            entry["error"] = exc.message
        listed.append(entry)
    return {"aliases": dict(settings.models.aliases), "assistants": listed}


def routing_key(assistant: str, principal: Principal, messages: Sequence[Message]) -> str:
    """What identifies a conversation for routing (see the module docstring)."""
    first = next((m.content or "" for m in messages if m.role == "user"), "")
    return "\x00".join((assistant, principal.tenant, principal.user_id, first))


def bucket(key: str) -> float:
    """``key`` hashed to a number in [0, 1), the same in every process and release."""
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def route_turn(
    settings: Settings,
    name: str,
    assistant: AssistantSettings,
    principal: Principal,
    messages: Sequence[Message],
    fixed: str | None = None,
) -> Route:
    """The route of a turn of the assistant ``name`` whose conversation holds ``messages``.

    ``messages`` are the history followed by the new messages, as the store keeps them.
    ``fixed`` is a model id the caller chose instead of the assistant's (an eval comparing
    models): it answers alone, no canary.
    """
    if fixed:
        return Route(fixed, fixed, "primary")
    primary = primary_model_id(settings, assistant)
    behind = fallback_model_ids(settings, name, assistant, primary)
    canary = assistant.canary
    if canary is None or canary.share <= 0:
        return Route(primary, primary, "primary", behind)
    if bucket(routing_key(name, principal, messages)) >= canary.share:
        return Route(primary, primary, "primary", behind)
    try:
        candidate = canary_model_id(settings, assistant)
    except ConfigError as exc:  # a stored assistant's alias that the settings dropped since
        log.warning("assistant %r: canary left out: %s", name, exc.message)
        return Route(primary, primary, "primary", behind)
    if candidate is None or candidate == primary:
        return Route(primary, primary, "primary", behind)
    return Route(candidate, primary, "canary", tuple(f for f in behind if f != candidate))


def fallback_model_ids(
    settings: Settings, name: str, assistant: AssistantSettings, primary: str
) -> tuple[str, ...]:
    """The assistant's ``fallbacks``, aliases resolved, without repeats or the primary."""
    found: list[str] = []
    for wanted in assistant.fallbacks:
        try:
            model_id = resolve_model_id(wanted, assistant.models, settings.models.aliases)
        except ConfigError as exc:  # a stored assistant's alias the settings dropped since
            log.warning("assistant %r: fallback left out: %s", name, exc.message)
            continue
        if model_id != primary and model_id not in found:
            found.append(model_id)
    return tuple(found)


def routed_model(graft: Graft, route: Route) -> Model:
    """The model to call for ``route``: the first, with the others of its chain behind.

    A fallback whose provider cannot be built (no such provider) is left out with a warning:
    the turn still has its own model.
    """
    first = graft.get_model(route.model)
    behind: list[Model] = []
    for model_id in route.fallbacks:
        try:
            behind.append(graft.get_model(model_id))
        except GraftError as exc:
            log.warning("fallback %s left out: %s", model_id, exc.message)
    if route.route == "primary":
        return FallbackModel([first, *behind]) if behind else first
    return CanaryModel(first, graft.get_model(route.primary), behind)


def answered(model: Model, route: Route) -> tuple[str, RouteName]:
    """The model id that answers a turn routed by ``route`` through ``model``, and its route."""
    if isinstance(model, FallbackModel) and model.fell_back is not None:
        return model.answered, "fallback"
    return route.model, route.route


class FallbackModel:
    """Models tried in order: the next answers when one fails before its first chunk.

    Once one was left, every further call of the turn goes to the one that answers (a turn
    with tool calls calls its model several times). The last model's failure is the turn's.
    """

    def __init__(self, models: Sequence[Model]) -> None:
        if not models:
            raise ValueError("FallbackModel needs at least one model")
        self.models = list(models)
        self._at = 0
        self.id = self.models[0].id
        self.fell_back: str | None = None
        """Why the first model was left (its error), once it was."""

    @property
    def answered(self) -> str:
        """The id of the model that answers now."""
        return self.models[self._at].id

    async def stream(self, request: ModelRequest) -> AsyncIterator[ModelChunk]:
        """Stream from the current model, or from the next ones if it fails before a chunk."""
        while True:
            model = self.models[self._at]
            async with _closing(model.stream(request)) as chunks:
                if self._at == len(self.models) - 1:
                    async for chunk in chunks:
                        yield chunk
                    return
                try:
                    first = await anext(chunks, None)
                except GraftError as exc:
                    self._leave(model, exc)
                    continue
                if first is not None:
                    yield first
                    async for chunk in chunks:
                        yield chunk
                return

    def _leave(self, model: Model, exc: GraftError) -> None:
        if self.fell_back is None:
            self.fell_back = exc.message
        self._at += 1
        self.id = self.models[self._at].id
        log.warning(
            "%s failed before its first chunk (%s: %s): %s answers",
            model.id,
            exc.code or type(exc).__name__,
            exc.message,
            self.id,
        )


@asynccontextmanager
async def _closing(chunks: AsyncIterator[ModelChunk]) -> AsyncIterator[AsyncIterator[ModelChunk]]:
    """``chunks``, closed on the way out (its upstream request with it) if it can be."""
    try:
        yield chunks
    finally:
        close = getattr(chunks, "aclose", None)
        if close is not None:
            await close()


class CanaryModel(FallbackModel):
    """The canary, with the primary (and the assistant's fallbacks) behind it."""

    def __init__(self, canary: Model, primary: Model, fallbacks: Sequence[Model] = ()) -> None:
        super().__init__([canary, primary, *fallbacks])
        self.canary = canary
        self.primary = primary

"""Assistants created at run time ("custom GPTs"): checking, storing and finding them.

Two kinds of assistant answer to a request's ``model``:

- **config**: ``[assistants.NAME]`` in the settings file (and ``default``), the operator's,
  open to every tenant their rules let in;
- **stored**: made by a ``builder`` or an ``admin`` through ``PUT /v1/assistants/{name}`` or
  ``graft assistants create``, kept by the store for one tenant (``Store.put_assistant``).

``AssistantCatalog.resolve`` finds a name for a principal: the settings first, then the
stored assistants of the principal's tenant. A stored assistant may never take a name the
settings use, an assistant's or one that source grants or MCP servers list (it would get
their rights): creating one is refused with ``Conflict`` (409).

A definition is checked before it is stored, so a stored assistant fails no later than a
configured one would at start: the fields (``AssistantSettings``), its model's provider and
its middleware (``Graft.check_assistant``), its data sources (they must exist), the tools it
names (each must be one the builder could call through it, or a ``prefix_*`` pattern), and
the builder's own right to use its collections and sources. ``retention_days`` is refused:
retention purges by assistant name across every tenant (``graft.retention``), which is right
for a configured assistant only. Secret references are refused in ``plugins``: a builder
must not be able to read the server's environment into a plugin's settings.

**The cache.** A turn resolves its assistant once. A configured name never reaches the
store; a stored one is read once and then kept ``CACHE_SECONDS`` (misses too, so a stream of
unknown names costs no query each). This process's own writes update it at once; another
worker's show within ``CACHE_SECONDS``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final, Literal

from pydantic import ValidationError

from graft import audit
from graft.config import AssistantSettings
from graft.context import Context, Principal
from graft.errors import (
    ConfigError,
    Conflict,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    UnknownAssistant,
)
from graft.policy import ADMIN_ROLE, allows, authorize
from graft.secrets import is_reference

if TYPE_CHECKING:
    from graft.runtime import Graft

__all__ = [
    "BUILDER_ROLES",
    "CACHE_SECONDS",
    "NAME_PATTERN",
    "AssistantCatalog",
    "AssistantChange",
    "AssistantEntry",
    "Source",
    "may_manage",
    "not_found",
]

log = logging.getLogger(__name__)

NAME_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""A stored assistant's name: what fits a URL path and a ``model`` field as it is."""

BUILDER_ROLES: Final = frozenset({"builder", ADMIN_ROLE})
"""Who may create, replace and delete their tenant's assistants."""

CACHE_SECONDS: Final = 5.0
"""How long a stored assistant (or its absence) is remembered between reads."""

_CACHE_ENTRIES: Final = 4096
_NAME = re.compile(NAME_PATTERN)

Source = Literal["config", "stored"]


@dataclass(frozen=True, slots=True)
class AssistantEntry:
    """One assistant as a listing shows it: where it comes from and its settings."""

    name: str
    source: Source
    settings: AssistantSettings
    definition: dict[str, Any] | None = None
    """A stored assistant's definition, as its builder set it; ``None`` for a configured one."""
    created_by: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class AssistantChange:
    """What a put or a delete did."""

    name: str
    tenant: str
    definition: dict[str, Any] | None
    """What is stored now; ``None`` after a delete."""
    created: bool
    """Whether the put made a new assistant (rather than replacing one)."""
    recorded: bool
    """Whether the audit log has it (``graft.audit.record`` never raises)."""


def may_manage(principal: Principal) -> bool:
    """Whether ``principal`` may create, replace and delete their tenant's assistants."""
    return principal.has_any_role(BUILDER_ROLES)


class AssistantCatalog:
    """The assistants of one ``Graft``: the configured ones and the tenants' stored ones."""

    def __init__(self, graft: Graft, *, ttl: float = CACHE_SECONDS) -> None:
        """Find assistants in ``graft``'s settings and store."""
        self._graft = graft
        self._ttl = ttl
        self._cache: dict[tuple[str, str], tuple[float, AssistantSettings | None]] = {}

    # --- finding ------------------------------------------------------------------------

    async def resolve(self, name: str, principal: Principal) -> AssistantSettings:
        """The assistant ``name`` as ``principal`` sees it, or ``UnknownAssistant``.

        Whether the principal may use it is the caller's question (``graft.policy``).
        """
        found = self._graft.settings.assistant(name)
        if found is None:
            found = await self._stored(principal.tenant, name)
        if found is None:
            raise UnknownAssistant(
                f"the model {name!r} does not exist; GET /v1/models lists the assistants",
                param="model",
            )
        return found

    async def find(self, name: str, principal: Principal) -> AssistantEntry | None:
        """The assistant ``name`` if ``principal`` may see it: use it, or manage it."""
        configured = self._graft.settings.assistant(name)
        if configured is not None:
            visible = allows(configured, principal)
            return AssistantEntry(name, "config", configured) if visible else None
        if not _NAME.fullmatch(name):
            return None
        definition = await self._graft.store.get_assistant(principal.tenant, name)
        if definition is None:
            self._remember(principal.tenant, name, None)
            return None
        settings = _load(name, definition)
        self._remember(principal.tenant, name, settings)
        if not (allows(settings, principal) or may_manage(principal)):
            return None
        return AssistantEntry(name, "stored", settings, definition)

    async def entries(self, principal: Principal, *, managed: bool = False) -> list[AssistantEntry]:
        """The assistants ``principal`` may use: the configured ones, then the tenant's.

        With ``managed``, a builder or admin also gets the tenant's stored assistants they
        may not use themselves (they manage them). A stored assistant that a configured one
        shadows (the settings took its name later) is left out: it cannot be reached.
        """
        settings = self._graft.settings
        found = []
        for name in settings.assistant_names():
            configured = settings.assistant(name)
            if configured is not None and allows(configured, principal):
                found.append(AssistantEntry(name, "config", configured))
        manager = managed and may_manage(principal)
        for stored in await self._graft.store.list_assistants(principal.tenant):
            if settings.assistant(stored.name) is not None:
                continue
            try:
                assistant = _load(stored.name, stored.definition)
            except ConfigError as exc:
                log.warning("%s", exc.message)
                continue
            self._remember(principal.tenant, stored.name, assistant)
            if manager or allows(assistant, principal):
                found.append(
                    AssistantEntry(
                        stored.name,
                        "stored",
                        assistant,
                        stored.definition,
                        stored.created_by,
                        stored.created_at,
                        stored.updated_at,
                    )
                )
        return found

    async def _stored(self, tenant: str, name: str) -> AssistantSettings | None:
        """The tenant's stored assistant ``name``, from the cache while it is fresh."""
        hit = self._cache.get((tenant, name))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        if not _NAME.fullmatch(name):
            return None  # no stored assistant has such a name: no query
        definition = await self._graft.store.get_assistant(tenant, name)
        found = None if definition is None else _load(name, definition)
        self._remember(tenant, name, found)
        return found

    def _remember(self, tenant: str, name: str, assistant: AssistantSettings | None) -> None:
        now = time.monotonic()
        if len(self._cache) >= _CACHE_ENTRIES:
            self._cache = {k: v for k, v in self._cache.items() if v[0] > now}
            while len(self._cache) >= _CACHE_ENTRIES:  # all fresh: the oldest go
                del self._cache[next(iter(self._cache))]
        self._cache.pop((tenant, name), None)  # re-inserted last: the newest
        self._cache[tenant, name] = (now + self._ttl, assistant)

    # --- changing -----------------------------------------------------------------------

    async def require_manager(self, actor: Principal, name: str) -> None:
        """Raise ``PermissionDenied`` (and record it) unless ``actor`` is a builder or admin."""
        if may_manage(actor):
            return
        denied = PermissionDenied("only a builder or an admin may change assistants")
        # Cut to fit the audit log's target column (a refused name may be anything).
        await audit.record_denied(self._graft.store, actor, f"assistant:{name[:200]}", denied)
        raise denied

    async def put(
        self, name: str, definition: Mapping[str, Any], actor: Principal
    ) -> AssistantChange:
        """Create or replace the assistant ``name`` of the actor's tenant, and audit it.

        Raises:
            PermissionDenied: The actor is no builder or admin, or may not use one of the
                assistant's collections or data sources.
            InvalidRequest: The name or the definition is invalid (``param`` names the field).
            Conflict: The settings use the name.
        """
        await self.require_manager(actor, name)
        self.check_name(name)
        assistant = await self.check(name, definition, actor)
        stored = assistant.model_dump(mode="json", exclude_unset=True)
        store, tenant = self._graft.store, actor.tenant
        created = await store.get_assistant(tenant, name) is None
        await store.put_assistant(tenant, name, stored, actor.user_id)
        self._remember(tenant, name, assistant)
        details = {
            "created": created,
            "model": assistant.model,
            "tools": assistant.tools,
            "sources": assistant.sources,
            "collections": assistant.collections,
            "definition_sha256": _digest(stored),
        }
        event = audit.AuditEvent("assistant.put", actor.user_id, tenant, name, "ok", details)
        record = await audit.record(store, event)
        return AssistantChange(name, tenant, stored, created, record is not None)

    async def delete(self, name: str, actor: Principal) -> AssistantChange:
        """Delete the stored assistant ``name`` of the actor's tenant, and audit it.

        Raises:
            PermissionDenied: The actor is no builder or admin.
            Conflict: ``name`` is a configured assistant (the settings file defines it).
            NotFound: The tenant has no stored assistant of that name.
        """
        await self.require_manager(actor, name)
        if self._graft.settings.assistant(name) is not None:
            raise Conflict(
                f"the assistant {name!r} is defined in the settings file; remove it there",
                param="name",
                code="assistant_in_settings",
            )
        store, tenant = self._graft.store, actor.tenant
        if not await store.delete_assistant(tenant, name):
            raise not_found(name)
        self._remember(tenant, name, None)
        event = audit.AuditEvent("assistant.delete", actor.user_id, tenant, name, "ok", {})
        record = await audit.record(store, event)
        return AssistantChange(name, tenant, None, False, record is not None)

    # --- checking -----------------------------------------------------------------------

    def check_name(self, name: str) -> None:
        """Refuse a name that is malformed (400) or that the settings use (409)."""
        if not _NAME.fullmatch(name):
            raise InvalidRequest(
                f"assistant names have 1 to 64 letters, digits, '.', '_' or '-', and start "
                f"with a letter or a digit: {name!r}",
                param="name",
            )
        where = self.reserved_names().get(name)
        if where is not None:
            raise Conflict(
                f"the name {name!r} is taken by the settings ({where}); pick another",
                param="name",
                code="assistant_in_settings",
            )

    def reserved_names(self) -> dict[str, str]:
        """Names a stored assistant may not take, with the setting that uses each."""
        settings = self._graft.settings
        taken: dict[str, str] = {}
        for server, mcp in settings.mcp_servers.items():
            for name in mcp.assistants or ():
                taken[name] = f"mcp_servers.{server}.assistants"
        for source, config in settings.sources.items():
            for grant in config.grants:
                for name in grant.assistants:
                    taken[name] = f"sources.{source}.grants"
        for name in settings.assistant_names():
            taken[name] = f"assistants.{name}"
        return taken

    async def check(
        self, name: str, definition: Mapping[str, Any], actor: Principal
    ) -> AssistantSettings:
        """``definition`` as settings, if the actor may store it as the assistant ``name``.

        Raises:
            InvalidRequest: A field is invalid; ``param`` names it.
            PermissionDenied: The actor may not use one of its collections or data sources.
        """
        try:
            assistant = AssistantSettings.model_validate(definition)
        except ValidationError as exc:
            raise _invalid(exc) from None
        _check_own_fields(assistant, actor.tenant)
        try:
            self._graft.check_assistant(name, assistant)
        except ConfigError as exc:
            raise InvalidRequest(exc.message, param=exc.param or "model") from None
        settings = self._graft.settings
        for source in assistant.sources or ():
            if source not in settings.sources:
                known = _listing(settings.sources)
                raise InvalidRequest(
                    f"sources: no data source named {source!r} (known: {known})",
                    param="sources",
                )
            authorize(settings, actor, "data_sources", source)
        for collection in assistant.collections:
            if not collection.strip() or len(collection) > 255:
                raise InvalidRequest(
                    f"collections: {collection!r} is not a collection name", param="collections"
                )
            authorize(settings, actor, "collections", collection)
        await self._check_tools(name, assistant, actor)
        return assistant

    async def _check_tools(self, name: str, assistant: AssistantSettings, actor: Principal) -> None:
        """Refuse a tool name that no toolset offers this assistant and the actor."""
        wanted = [entry for entry in assistant.tools or () if not entry.endswith("*")]
        if not wanted:
            return
        graft = self._graft
        # Every tool, as its own toolsets would offer it to this assistant and this actor.
        probe = assistant.model_copy(update={"tools": None})
        ctx = Context(
            actor, graft.settings, name, probe, store=graft.store, get_model=graft.get_model
        )
        known = {definition.name for definition in (await graft.tools.resolve(ctx)).definitions}
        for tool in wanted:
            if tool not in known:
                raise InvalidRequest(
                    f"tools: no tool named {tool!r} that you may give this assistant "
                    f"(known: {_listing(known)})",
                    param="tools",
                )


def not_found(name: str) -> NotFound:
    """The error for an assistant that does not exist (or is not the caller's to see)."""
    return NotFound(f"no assistant {name!r}", param="name", code="assistant_not_found")


def _load(name: str, definition: Mapping[str, Any]) -> AssistantSettings:
    """A stored definition as settings; ``ConfigError`` if it no longer validates."""
    try:
        return AssistantSettings.model_validate(definition)
    except ValidationError as exc:
        problem = _invalid(exc).message
        raise ConfigError(f"the stored assistant {name!r} is no longer valid: {problem}") from None


def _invalid(exc: ValidationError) -> InvalidRequest:
    """The first problem of a definition, naming its field."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    field = ".".join(str(part) for part in first["loc"]) or None
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more problems)" if len(errors) > 1 else ""
    return InvalidRequest(f"{field}: {message}{more}" if field else message + more, param=field)


def _check_own_fields(assistant: AssistantSettings, tenant: str) -> None:
    """Refuse what a stored assistant may not set, whatever a configured one may."""
    if assistant.retention_days is not None:
        raise InvalidRequest(
            "retention_days: only configured assistants may set it (retention purges by "
            "assistant name across every tenant); set it in the settings file",
            param="retention_days",
        )
    others = [t for t in assistant.tenants if t != tenant]
    if others:
        raise InvalidRequest(
            f"tenants: a stored assistant belongs to its tenant {tenant!r} alone, "
            f"not {others[0]!r}",
            param="tenants",
        )
    if _has_reference(assistant.plugins):
        raise InvalidRequest(
            'plugins: secret references ({"$env": ...}, {"$file": ...}) belong in the settings '
            "file, not in a stored assistant",
            param="plugins",
        )


def _has_reference(value: Any) -> bool:
    if is_reference(value):
        return True
    if isinstance(value, Mapping):
        return any(_has_reference(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_reference(item) for item in value)
    return False


def _listing(names: Any, most: int = 20) -> str:
    ordered = sorted(names)
    shown = ", ".join(ordered[:most]) or "none"
    return f"{shown}, …" if len(ordered) > most else shown


def _digest(definition: dict[str, Any]) -> str:
    """SHA-256 of a definition as canonical JSON: tells two versions apart in the audit log."""
    text = json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()

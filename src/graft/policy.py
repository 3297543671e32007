"""Who may use what: assistants, tools, document collections and data sources.

Every entry point goes through these checks: a model's tool call, ``graft tools call``, the
HTTP routes, and (for collections and data sources) every retrieval and every query. A tool
is checked twice: when the turn lists the tools it may offer the model, and again when a
call runs, so a call can never reach a tool that the list left out (a model naming a tool it
was not given, a client-sent tool list, a rule changed mid-turn).

Rules (``graft.config.AccessRule``) name users, groups and roles; the ``admin`` role passes
every rule of its own tenants. ``tenants`` is a hard boundary: not even an admin of another
tenant passes. A thing with no rule is open to every principal, and an assistant's rule sits
in its own settings (``roles``, ``users``, ``groups``, ``tenants``).
"""

from __future__ import annotations

from typing import Literal

from graft.config import AccessRule, AssistantSettings, Settings
from graft.context import Context, Principal
from graft.errors import PermissionDenied

__all__ = [
    "ADMIN_ROLE",
    "Kind",
    "allows",
    "authorize",
    "authorize_assistant",
    "tool_allowed",
]

ADMIN_ROLE = "admin"

Kind = Literal["tools", "collections", "data_sources"]
_NOUN = {"tools": "tool", "collections": "collection", "data_sources": "data source"}


def allows(rule: AccessRule | AssistantSettings, principal: Principal) -> bool:
    """Whether ``principal`` passes ``rule`` (an assistant carries its rule's fields)."""
    if rule.tenants and principal.tenant not in rule.tenants:
        return False
    if not (rule.users or rule.groups or rule.roles):
        return True
    return (
        principal.user_id in rule.users
        or not principal.groups.isdisjoint(rule.groups)
        or principal.has_any_role([*rule.roles, ADMIN_ROLE])
    )


def authorize_assistant(principal: Principal, name: str, assistant: AssistantSettings) -> None:
    """Raise ``PermissionDenied`` unless ``principal`` may talk to the assistant."""
    if not allows(assistant, principal):
        raise PermissionDenied(f"you may not use assistant {name!r}")


def authorize(settings: Settings, principal: Principal, kind: Kind, name: str) -> None:
    """Raise ``PermissionDenied`` unless ``principal`` may use the ``kind`` called ``name``."""
    rule = getattr(settings.access, kind).get(name)
    if rule is not None and not allows(rule, principal):
        raise PermissionDenied(f"you may not use the {_NOUN[kind]} {name!r}")


def _matches(entry: str, name: str) -> bool:
    """An assistant's ``tools`` entry: a tool's name, or a prefix ending in ``*`` (``wiki_*``)."""
    return entry == name or (entry.endswith("*") and name.startswith(entry[:-1]))


def tool_allowed(ctx: Context, name: str) -> bool:
    """True when the context's assistant may call the tool ``name``, and its principal too."""
    allowed = ctx.assistant.tools
    if allowed is not None and not any(_matches(entry, name) for entry in allowed):
        return False
    rule = ctx.settings.access.tools.get(name)
    return rule is None or allows(rule, ctx.principal)

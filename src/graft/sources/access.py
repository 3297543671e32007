"""Who may read what in a data source: from the settings and the principal to an ``SQLPolicy``.

Three layers decide, each able only to narrow what the one before allowed:

1. the assistant's ``sources`` list and ``[access.data_sources.NAME]`` (``graft.policy``):
   whether the source is offered to this principal through this assistant at all;
2. the source's ``tables`` and ``columns``: what may ever be read;
3. its ``grants``: what this principal, through this assistant, may read of that.

``row_filters`` then hold for everyone, admins too: they are the data's own boundary (a
tenant's rows), not a permission.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from graft.config import AccessRule
from graft.context import Context
from graft.errors import PermissionDenied
from graft.policy import allows, authorize
from graft.sources.settings import SourceSettings, TableGrant
from graft.sqlguard import Dialect, SQLPolicy

__all__ = ["filter_values", "readable_tables", "sql_policy", "visible_sources"]

Columns = frozenset[str] | None
"""The readable columns of a table, lower case; ``None``: every column."""


def visible_sources(ctx: Context) -> list[str]:
    """The sources this context's assistant offers and its principal may use, sorted."""
    wanted = ctx.assistant.sources
    names = sorted(
        ctx.settings.sources if wanted is None else set(wanted) & set(ctx.settings.sources)
    )
    visible = []
    for name in names:
        try:
            authorize(ctx.settings, ctx.principal, "data_sources", name)
        except PermissionDenied:
            continue
        visible.append(name)
    return visible


def _grant_matches(grant: TableGrant, ctx: Context) -> bool:
    if grant.assistants and ctx.assistant_name not in grant.assistants:
        return False
    rule = AccessRule(users=grant.users, groups=grant.groups, roles=grant.roles)
    return allows(rule, ctx.principal)


def _columns(names: Sequence[str] | None) -> Columns:
    if names is None or "*" in names:
        return None
    return frozenset(name.lower() for name in names)


def _narrow(outer: Columns, inner: Columns) -> Columns:
    if outer is None:
        return inner
    return outer if inner is None else outer & inner


def _widen(one: Columns, other: Columns) -> Columns:
    return None if one is None or other is None else one | other


def readable_tables(
    source: SourceSettings, ctx: Context, existing: Sequence[str]
) -> dict[str, Columns]:
    """Table (lower case) to readable columns, for this principal and assistant.

    ``existing`` are the tables the database has: a source without a ``tables`` list offers
    all of them, one with a list offers those of them it names.
    """
    have = {name.lower() for name in existing}
    listed = have if source.tables is None else {t.lower() for t in source.tables} & have
    base = {table: _columns(_lookup(source.columns, table)) for table in listed}
    if not source.grants:
        return base
    granted: dict[str, Columns] = {}
    for grant in source.grants:
        if not _grant_matches(grant, ctx):
            continue
        tables = listed if "*" in grant.tables else {t.lower() for t in grant.tables} & listed
        for table in tables:
            own = _lookup(grant.columns, table)
            columns = base[table] if own is None else _columns(own)
            granted[table] = _widen(granted[table], columns) if table in granted else columns
    return granted


def _lookup(mapping: Mapping[str, Any], table: str) -> Any:
    for key, value in mapping.items():
        if key.lower() == table:
            return value
    return None


def filter_values(ctx: Context) -> dict[str, Any]:
    """What a row filter's ``:user`` and ``:tenant`` are bound to."""
    return {"user": ctx.principal.user_id, "tenant": ctx.principal.tenant}


def sql_policy(
    source: SourceSettings,
    dialect: Dialect,
    readable: Mapping[str, Columns],
    schema: Mapping[str, Sequence[str]],
) -> SQLPolicy:
    """The guard's policy for one query of this principal."""
    filters = {table.lower(): condition for table, condition in source.row_filters.items()}
    return SQLPolicy(
        dialect=dialect,
        tables=dict(readable),
        row_filters={t: c for t, c in filters.items() if t in readable},
        schema={t.lower(): list(cols) for t, cols in schema.items()},
    )

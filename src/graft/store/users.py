"""The SQL side of users and API keys: one function per transaction, run by ``SQLStore``.

Each function takes the connection of a transaction that ``SQLStore`` began (a write or a
read, as its name says) and does the whole operation in it. Roles and groups are stored as
JSON lists; a key row holds the digest of the whole key, never the key.

A user's roles and groups can change (``set_user_roles``, ``set_user_groups``). Nothing
copies them: a key's principal is built from the user row at each request (the roles the key
carries that the user still has), so a role taken away is gone from the user's keys and
browser sessions at their next request, and changed groups apply at once too. A role given
reaches only the keys made after (a key never carries more than it was made with).

``UserMethods`` is the part of ``SQLStore`` (``graft.store.sql``) that runs the functions
changing roles and groups, mixed into that class as ``graft.store.feedback_sql`` is.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from graft.errors import Conflict, NotFound
from graft.messages import new_id
from graft.store.base import ApiKeyInfo, StoredKey, User
from graft.store.schema import t_api_keys, t_users

__all__ = [
    "UserMethods",
    "create_key",
    "create_user",
    "find_key",
    "get_user",
    "has_users",
    "list_keys",
    "list_users",
    "revoke_key",
    "set_user_disabled",
    "set_user_groups",
    "set_user_roles",
    "user_not_found",
]

T = TypeVar("T")

_KEY_COLUMNS = (
    t_api_keys.c.id,
    t_api_keys.c.name,
    t_api_keys.c.sha256,
    t_api_keys.c.roles.label("key_roles"),
    t_api_keys.c.created_by,
    t_api_keys.c.created_at.label("key_created_at"),
    t_api_keys.c.revoked_at,
    t_users.c.id.label("user_pk"),
    t_users.c.tenant,
    t_users.c.name.label("user_name"),
    t_users.c.roles,
    t_users.c.groups,
    t_users.c.created_at,
    t_users.c.disabled_at,
)
_KEYS = select(*_KEY_COLUMNS).select_from(
    t_api_keys.join(t_users, t_api_keys.c.user_pk == t_users.c.id)
)


def user_not_found(tenant: str, name: str) -> NotFound:
    """The error for a user that does not exist in a tenant."""
    return NotFound(f"no user {name!r} in tenant {tenant!r}", code="user_not_found")


def create_user(
    conn: Connection, *, tenant: str, name: str, roles: list[str], groups: list[str]
) -> User:
    """Insert a user (write)."""
    user = User(
        id=new_id("user"),
        tenant=tenant,
        name=name,
        roles=tuple(roles),
        groups=tuple(groups),
        created_at=datetime.now(UTC),
    )
    exists = select(t_users.c.id).where((t_users.c.tenant == tenant) & (t_users.c.name == name))
    if conn.execute(exists).first() is not None:
        raise _taken(tenant, name)
    try:
        with conn.begin_nested():
            conn.execute(
                insert(t_users),
                {
                    "id": user.id,
                    "tenant": tenant,
                    "name": name,
                    "roles": json.dumps(roles),
                    "groups": json.dumps(groups, ensure_ascii=False),
                    "created_at": user.created_at,
                },
            )
    except IntegrityError:  # created meanwhile by another process
        raise _taken(tenant, name) from None
    return user


def get_user(conn: Connection, tenant: str, name: str) -> User:
    """One user (read)."""
    row = conn.execute(
        select(t_users).where((t_users.c.tenant == tenant) & (t_users.c.name == name))
    ).first()
    if row is None:
        raise user_not_found(tenant, name)
    return _user(row)


def list_users(conn: Connection, tenant: str | None) -> list[User]:
    """Users by tenant and name (read)."""
    query = select(t_users).order_by(t_users.c.tenant, t_users.c.name)
    if tenant is not None:
        query = query.where(t_users.c.tenant == tenant)
    return [_user(row) for row in conn.execute(query)]


def set_user_disabled(conn: Connection, tenant: str, name: str, disabled: bool) -> User:
    """Disable or enable a user (write); disabling twice keeps the first time."""
    user = get_user(conn, tenant, name)
    if disabled == (not user.active):
        return user
    when = datetime.now(UTC) if disabled else None
    conn.execute(update(t_users).where(t_users.c.id == user.id).values(disabled_at=when))
    return get_user(conn, tenant, name)


def set_user_roles(conn: Connection, tenant: str, name: str, roles: list[str]) -> User:
    """Replace a user's roles (write)."""
    user = get_user(conn, tenant, name)
    conn.execute(update(t_users).where(t_users.c.id == user.id).values(roles=json.dumps(roles)))
    return get_user(conn, tenant, name)


def set_user_groups(conn: Connection, tenant: str, name: str, groups: list[str]) -> User:
    """Replace a user's groups (write)."""
    user = get_user(conn, tenant, name)
    value = json.dumps(groups, ensure_ascii=False)
    conn.execute(update(t_users).where(t_users.c.id == user.id).values(groups=value))
    return get_user(conn, tenant, name)


def has_users(conn: Connection) -> bool:
    """Whether the users table has a row (read)."""
    return bool(conn.execute(select(func.count()).select_from(t_users)).scalar())


def create_key(
    conn: Connection,
    user: User,
    *,
    key_id: str,
    sha256: str,
    name: str,
    roles: list[str],
    created_by: str,
) -> ApiKeyInfo:
    """Insert a key of ``user`` (write); ``NotFound`` if the user is gone."""
    get_user(conn, user.tenant, user.name)  # still there
    info = ApiKeyInfo(
        id=key_id,
        tenant=user.tenant,
        user=user.name,
        name=name,
        roles=tuple(roles),
        created_by=created_by,
        created_at=datetime.now(UTC),
    )
    conn.execute(
        insert(t_api_keys),
        {
            "id": key_id,
            "user_pk": user.id,
            "name": name,
            "sha256": sha256,
            "roles": json.dumps(roles),
            "created_by": created_by,
            "created_at": info.created_at,
        },
    )
    return info


def find_key(conn: Connection, key_id: str) -> StoredKey | None:
    """The key and its user (read)."""
    row = conn.execute(_KEYS.where(t_api_keys.c.id == key_id)).first()
    if row is None:
        return None
    user = User(
        id=row.user_pk,
        tenant=row.tenant,
        name=row.user_name,
        roles=tuple(json.loads(row.roles)),
        groups=tuple(json.loads(row.groups)),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )
    return StoredKey(_key(row), row.sha256, user)


def list_keys(conn: Connection, tenant: str | None, user: str | None) -> list[ApiKeyInfo]:
    """Keys, newest first (read)."""
    query = _KEYS.order_by(t_api_keys.c.created_at.desc(), t_api_keys.c.id.desc())
    if tenant is not None:
        query = query.where(t_users.c.tenant == tenant)
    if user is not None:
        query = query.where(t_users.c.name == user)
    return [_key(row) for row in conn.execute(query)]


def revoke_key(conn: Connection, key_id: str, tenant: str | None) -> ApiKeyInfo:
    """Mark a key revoked (write)."""
    found = find_key(conn, key_id)
    if found is None or (tenant is not None and found.info.tenant != tenant):
        raise NotFound(f"no API key {key_id!r}", code="key_not_found")
    if found.info.revoked_at is None:
        conn.execute(
            update(t_api_keys).where(t_api_keys.c.id == key_id).values(revoked_at=datetime.now(UTC))
        )
    stored = find_key(conn, key_id)
    assert stored is not None
    return stored.info


def _taken(tenant: str, name: str) -> Conflict:
    return Conflict(f"tenant {tenant!r} already has a user {name!r}", code="user_exists")


def _user(row: Any) -> User:
    return User(
        id=row.id,
        tenant=row.tenant,
        name=row.name,
        roles=tuple(json.loads(row.roles)),
        groups=tuple(json.loads(row.groups)),
        created_at=row.created_at,
        disabled_at=row.disabled_at,
    )


def _key(row: Any) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=row.id,
        tenant=row.tenant,
        user=row.user_name,
        name=row.name,
        roles=tuple(json.loads(row.key_roles)),
        created_by=row.created_by,
        created_at=row.key_created_at,
        revoked_at=row.revoked_at,
    )


# --- SQLStore's methods -------------------------------------------------------------------


class UserMethods:
    """The methods of ``SQLStore`` that change a user's roles and groups."""

    if TYPE_CHECKING:

        async def _write(
            self, fn: Callable[[Connection], T], *, alone: bool = False, size: int = 0
        ) -> T: ...

    async def set_user_roles(self, tenant: str, name: str, roles: list[str]) -> User:
        """Replace a user's roles; ``NotFound`` if there is no such user."""
        return await self._write(partial(set_user_roles, tenant=tenant, name=name, roles=roles))

    async def set_user_groups(self, tenant: str, name: str, groups: list[str]) -> User:
        """Replace a user's groups; ``NotFound`` if there is no such user."""
        work = partial(set_user_groups, tenant=tenant, name=name, groups=groups)
        return await self._write(work)

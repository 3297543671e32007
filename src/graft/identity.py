"""Users' roles and API keys: making a key, checking a presented one, what it may carry.

Roles are ``admin`` (everything, including users and keys), ``builder`` (manages assistants,
plugins, knowledge and data sources) and ``user``; each includes the rights of the ones after
it. Groups are free-form names that access rules refer to.

A key reads ``gk_<id>_<secret>``: ``gk_<id>`` (12 hex digits of id) is its public part,
shown in listings and used to find it, and the store keeps only the SHA-256 digest of the
whole key. A key of 256 random bits needs no slow hash: nobody can guess one, and the digest
does not let anyone rebuild it. A key carries a subset of its user's roles, chosen when it
is made and never more than its creator holds; at each request it gets the roles it carries
that its user still has, so demoting or disabling a user takes effect on their keys at once.
Nothing is cached: the key and its user are read from the store at every request (browser
sessions too: ``graft.sessions``). A role given to a user reaches only the keys made after.
An unknown key, a wrong secret, a revoked key and a disabled user all get the same answer.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable

from graft.context import Principal
from graft.errors import AuthenticationError, InvalidRequest, PermissionDenied
from graft.store.base import ApiKeyInfo, Store, User

__all__ = [
    "ROLES",
    "check_roles",
    "hash_key",
    "issue_key",
    "key_id_of",
    "principal_for_key",
    "principal_of_user",
]

ROLES = ("admin", "builder", "user")
"""Every role, most rights first."""

_RANK = {role: len(ROLES) - i for i, role in enumerate(ROLES)}
_KEY = re.compile(r"^(gk_[0-9a-f]{12})_[A-Za-z0-9_-]{43}$")
_INVALID = "invalid API key"


def check_roles(roles: Iterable[str]) -> list[str]:
    """``roles`` without duplicates, in ``ROLES`` order.

    Raises:
        InvalidRequest: A role is not one of ``ROLES``.
    """
    roles = set(roles)
    unknown = sorted(roles - set(ROLES))
    if unknown:
        raise InvalidRequest(
            f"unknown role {unknown[0]!r}: roles are {', '.join(ROLES)}", param="roles"
        )
    return [role for role in ROLES if role in roles]


def hash_key(key: str) -> str:
    """The SHA-256 hex digest stored for a key."""
    return hashlib.sha256(key.encode()).hexdigest()


def key_id_of(token: str) -> str | None:
    """The public part of a graft key, or ``None`` if ``token`` is not shaped like one."""
    match = _KEY.match(token)
    return match.group(1) if match else None


def _grantable(creator: Principal) -> set[str]:
    """The roles ``creator`` may give: their own, and every role below them."""
    top = max((_RANK.get(role, 0) for role in creator.roles), default=0)
    return {role for role in ROLES if _RANK[role] <= top}


async def issue_key(
    store: Store,
    user: User,
    *,
    creator: Principal,
    roles: Iterable[str] | None = None,
    name: str = "",
) -> tuple[str, ApiKeyInfo]:
    """Make a key for ``user`` and store its digest; return the key (shown once) and its info.

    Args:
        store: Where the key's digest goes.
        user: Whose key it is.
        creator: Who asks: the key carries no role they could not give.
        roles: The roles the key carries (default: every role of ``user`` that ``creator``
            may give).
        name: A label for listings ("laptop", "ci").

    Raises:
        InvalidRequest: An unknown role, or a role the user does not have.
        PermissionDenied: The creator may not give a role, or the user is disabled.
    """
    if not user.active:
        raise PermissionDenied(f"user {user.name!r} is disabled")
    grantable = _grantable(creator)
    if roles is None:
        chosen = [role for role in user.roles if role in grantable]
    else:
        chosen = check_roles(roles)
        missing = [role for role in chosen if role not in user.roles]
        if missing:
            raise InvalidRequest(
                f"user {user.name!r} does not have the role {missing[0]!r}", param="roles"
            )
        beyond = [role for role in chosen if role not in grantable]
        if beyond:
            raise PermissionDenied(f"you may not give the role {beyond[0]!r}")
    key_id = f"gk_{secrets.token_hex(6)}"
    key = f"{key_id}_{secrets.token_urlsafe(32)}"
    info = await store.create_key(
        user,
        key_id=key_id,
        sha256=hash_key(key),
        name=name,
        roles=chosen,
        created_by=creator.user_id,
    )
    return key, info


async def principal_for_key(store: Store, token: str) -> Principal:
    """The principal a graft key authenticates.

    Raises:
        AuthenticationError: The key is unknown, wrong, revoked, or its user is disabled
            (one message for all: it tells a caller nothing about which).
    """
    key_id = key_id_of(token)
    stored = await store.find_key(key_id) if key_id else None
    if stored is None:
        hash_key(token)  # the same work as a known key: no timing difference to measure
        raise AuthenticationError(_INVALID)
    if not hmac.compare_digest(stored.sha256, hash_key(token)):
        raise AuthenticationError(_INVALID)
    if stored.info.revoked_at is not None or not stored.user.active:
        raise AuthenticationError(_INVALID)
    roles = [role for role in stored.info.roles if role in stored.user.roles]
    return principal_of_user(stored.user, roles, key_id=stored.info.id)


def principal_of_user(
    user: User, roles: Iterable[str] | None = None, *, key_id: str | None = None
) -> Principal:
    """The principal of ``user``, with ``roles`` (default: all of theirs)."""
    chosen = user.roles if roles is None else roles
    return Principal(user.name, frozenset(chosen), frozenset(user.groups), user.tenant, key_id)

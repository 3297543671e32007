"""API-key authentication, and the single-user default while nobody is set up.

Two kinds of key are accepted, sent as ``Authorization: Bearer <key>`` (what the OpenAI
client does) or ``X-API-Key: <key>``, both checked the same way:

- keys made by ``graft keys create`` for users in the store (``gk_<id>_<secret>``; see
  ``graft.identity``): revoking a key or disabling its user refuses it from the next request;
- keys in the settings file as SHA-256 digests (``[[auth.api_keys]]``, printed by
  ``graft keys new``), for deployments configured by file alone.

While the settings file lists no key and the store has no user, graft runs single-user:
every request is ``auth.default_user``. The first user made closes that: a running server
notices within ``KEYLESS_RECHECK_S`` seconds. This plugin runs last, so another
``authenticate`` plugin (OIDC, a reverse proxy's header) can decide first.
"""

from __future__ import annotations

import hmac
import time
import weakref
from collections.abc import Mapping

from graft.config import Settings
from graft.context import Principal
from graft.errors import AuthenticationError
from graft.hookspecs import hookimpl
from graft.identity import hash_key, key_id_of, principal_for_key
from graft.store.base import Store

__all__ = ["KEYLESS_RECHECK_S", "authenticate", "bearer_token", "hash_api_key"]

KEYLESS_RECHECK_S = 2.0
"""How long a keyless server trusts that the store still has no user."""

_has_users: weakref.WeakSet[Store] = weakref.WeakSet()
"""Stores known to have a user (users are never deleted, so this never goes back)."""
_keyless_until: weakref.WeakKeyDictionary[Store, float] = weakref.WeakKeyDictionary()


def hash_api_key(key: str) -> str:
    """The SHA-256 hex digest graft stores for an API key."""
    return hash_key(key)


def bearer_token(headers: Mapping[str, str]) -> str | None:
    """The key a request presents (``Authorization: Bearer`` or ``X-API-Key``), if any.

    Raises:
        AuthenticationError: ``Authorization`` is not ``Bearer <key>``.
    """
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        raise AuthenticationError("the Authorization header must be 'Bearer <key>'")
    return headers.get("x-api-key") or None


async def _keyless(settings: Settings, store: Store) -> bool:
    """Whether nobody is set up: no key in the settings file, no user in the store."""
    if settings.auth.api_keys or store in _has_users:
        return False
    if _keyless_until.get(store, 0.0) > time.monotonic():
        return True
    if await store.has_users():
        _has_users.add(store)
        return False
    _keyless_until[store] = time.monotonic() + KEYLESS_RECHECK_S
    return True


@hookimpl(trylast=True)
async def authenticate(
    headers: Mapping[str, str], settings: Settings, store: Store
) -> Principal | None:
    """Map a key to its principal, or everyone to the default user while nobody is set up."""
    auth = settings.auth
    token = bearer_token(headers)
    if token is None:
        if await _keyless(settings, store):
            return Principal(auth.default_user, frozenset(auth.default_roles))
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
    if key_id_of(token) is not None:
        return await principal_for_key(store, token)
    digest = hash_key(token)
    for key in auth.api_keys:
        if hmac.compare_digest(key.sha256, digest):
            # A key of the settings file has no public id: its digest's start stands in.
            key_id = f"sha256:{key.sha256[:12]}"
            return Principal(
                key.user, frozenset(key.roles), frozenset(key.groups), key.tenant, key_id
            )
    if await _keyless(settings, store):
        # A stray key (an OpenAI client always sends one) while nobody is set up.
        return Principal(auth.default_user, frozenset(auth.default_roles))
    raise AuthenticationError("invalid API key")

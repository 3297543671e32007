"""API-key authentication, and the single-user default when no key is configured.

Keys are configured as SHA-256 digests (``[[auth.api_keys]]`` with ``sha256``, ``user``,
``roles``...), so the settings file never holds a usable secret; ``graft keys new`` prints
a new key and its entry. Requests send ``Authorization: Bearer <key>`` (what the OpenAI client
does) or ``X-API-Key``. This plugin runs last, so another ``authenticate`` plugin (OIDC,
a reverse proxy header) can decide first.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping

from graft.config import Settings
from graft.context import Principal
from graft.errors import AuthenticationError
from graft.hookspecs import hookimpl

__all__ = ["authenticate", "hash_api_key"]


def hash_api_key(key: str) -> str:
    """The SHA-256 hex digest graft stores for an API key."""
    return hashlib.sha256(key.encode()).hexdigest()


def _bearer(headers: Mapping[str, str]) -> str | None:
    authorization = headers.get("authorization")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            return token.strip()
        raise AuthenticationError("the Authorization header must be 'Bearer <key>'")
    return headers.get("x-api-key") or None


@hookimpl(trylast=True)
def authenticate(headers: Mapping[str, str], settings: Settings) -> Principal | None:
    """Map a bearer key to its principal, or everyone to the default user when keyless."""
    auth = settings.auth
    if not auth.api_keys:
        return Principal(auth.default_user, frozenset(auth.default_roles))
    token = _bearer(headers)
    if token is None:
        raise AuthenticationError("missing API key: send 'Authorization: Bearer <key>'")
    digest = hash_api_key(token)
    for key in auth.api_keys:
        if hmac.compare_digest(key.sha256, digest):
            return Principal(key.user, frozenset(key.roles), frozenset(key.groups), key.tenant)
    raise AuthenticationError("invalid API key")

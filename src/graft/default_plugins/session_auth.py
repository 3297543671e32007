"""Browser-session authentication: a request with the ``graft_session`` cookie and no key.

A request that carries a key (``Authorization`` or ``X-API-Key``) is left to
``api_key_auth``: programs use keys, and a key needs no CSRF token. A request with only a
live session cookie is its session's user, with the roles the signing-in key carries that
the user still has, after the CSRF and ``Origin`` checks of ``graft.sessions`` (refused with
403 ``csrf_failed``). A cookie of no live session (signed out, expired, revoked key,
disabled user) is as if it were not there: the next authenticator answers, which refuses
it unless graft runs single-user.
"""

from __future__ import annotations

from collections.abc import Mapping

from graft.config import Settings
from graft.context import Principal
from graft.hookspecs import hookimpl
from graft.sessions import (
    check_csrf,
    find_session,
    presents_key,
    principal_of_session,
    session_token,
)
from graft.store.base import Store

__all__ = ["authenticate"]


@hookimpl
async def authenticate(
    headers: Mapping[str, str], settings: Settings, store: Store, method: str
) -> Principal | None:
    """The session's principal for a cookie-only request; ``None`` to let the key check run."""
    if presents_key(headers):
        return None
    token = session_token(headers)
    if token is None:
        return None
    session = await find_session(store, token)
    if session is None:
        return None
    check_csrf(headers, method, token, settings)
    return principal_of_session(session)

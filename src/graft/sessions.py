"""Browser sessions: signing in with an API key, the session cookie, and CSRF protection.

Users have no passwords: a browser signs in by sending an API key once
(``POST /v1/auth/session``; ``graft.server.sessions``) and gets a session token of 256 random
bits in an HttpOnly cookie. The store keeps only the token's SHA-256 digest, as it does for
keys, with the key that signed in and the user; each request finds the session with that
key and user as they are now, so revoking the key, disabling the user, signing out or the
session's end (``auth.session_hours``) refuses the cookie from the next request.

A cookie is sent by the browser whatever page starts the request, so a request that a
cookie authenticates must prove it comes from graft's own page. Unsafe methods (``POST``,
``PUT``, ``PATCH``, ``DELETE``) need the header ``X-CSRF-Token`` with the session's CSRF
token, which only a page of an allowed origin can read (from the sign-in answer or the
``graft_csrf`` cookie). The CSRF token is the HMAC-SHA256 of a fixed label under the session
token: it needs no column, cannot be guessed without the session token, and does not reveal
it. Any request that a cookie authenticates is also refused when it names an ``Origin``
that is neither the request's own host nor one of ``cors_origins``. Cookies are
``SameSite=Strict`` as well, so other sites' pages do not send them at all.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from starlette.requests import cookie_parser

from graft.config import Settings
from graft.context import Principal
from graft.errors import PermissionDenied
from graft.identity import hash_key, principal_of_user
from graft.store.base import Store, StoredSession

__all__ = [
    "CSRF_COOKIE",
    "CSRF_HEADER",
    "SESSION_COOKIE",
    "TOUCH_EVERY",
    "UNSAFE_METHODS",
    "check_csrf",
    "csrf_token_for",
    "find_session",
    "open_session",
    "presents_key",
    "principal_of_session",
    "session_id_of",
    "session_token",
]

SESSION_COOKIE = "graft_session"
"""The HttpOnly cookie that carries the session token."""
CSRF_COOKIE = "graft_csrf"
"""The cookie that carries the CSRF token, readable by the page's scripts."""
CSRF_HEADER = "x-csrf-token"
"""Where a cookie-authenticated unsafe request puts the CSRF token."""
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
"""Methods that change something: with a cookie they need the CSRF token."""
TOUCH_EVERY = timedelta(minutes=1)
"""A session's ``last_seen_at`` is written at most this often (not at every request)."""

_CSRF_LABEL = b"graft csrf token v1"


def session_id_of(token: str) -> str:
    """The id a session is stored under: the SHA-256 hex digest of its token."""
    return hash_key(token)


def csrf_token_for(token: str) -> str:
    """The CSRF token of the session whose token is ``token``."""
    return hmac.new(token.encode(), _CSRF_LABEL, hashlib.sha256).hexdigest()


def presents_key(headers: Mapping[str, str]) -> bool:
    """Whether the request carries a key (``Authorization`` or ``X-API-Key``)."""
    return bool(headers.get("authorization") or headers.get("x-api-key"))


def session_token(headers: Mapping[str, str]) -> str | None:
    """The session token in the request's ``Cookie`` header, if any."""
    cookie = headers.get("cookie")
    if not cookie or SESSION_COOKIE not in cookie:
        return None
    return cookie_parser(cookie).get(SESSION_COOKIE) or None


async def open_session(store: Store, key_id: str, settings: Settings) -> tuple[str, StoredSession]:
    """Sign in with the key ``key_id``: a new session token (for the cookie) and its session."""
    token = secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + timedelta(hours=settings.auth.session_hours)
    session = await store.create_session(
        session_id=session_id_of(token), key_id=key_id, expires_at=expires_at
    )
    return token, session


async def find_session(store: Store, token: str) -> StoredSession | None:
    """The live session of ``token``; records its use at most once every ``TOUCH_EVERY``."""
    session = await store.find_session(session_id_of(token))
    if session is not None:
        now = datetime.now(UTC)
        if now - session.last_seen_at >= TOUCH_EVERY:
            await store.touch_session(session.id, now)
    return session


def principal_of_session(session: StoredSession) -> Principal:
    """Who a session's requests come from: its user, with its key's roles the user still has."""
    roles = [role for role in session.key.roles if role in session.user.roles]
    return principal_of_user(session.user, roles, key_id=session.key.id)


def check_csrf(headers: Mapping[str, str], method: str, token: str, settings: Settings) -> None:
    """Refuse a cookie-authenticated request that another site's page may have sent.

    Raises:
        PermissionDenied: (code ``csrf_failed``) the ``Origin`` is foreign, or an unsafe
            method lacks the session's CSRF token in ``X-CSRF-Token``.
    """
    origin = headers.get("origin")
    if origin is not None and not _allowed_origin(origin, headers, settings):
        raise PermissionDenied(
            f"requests from {origin[:100]!r} may not use the session cookie", code="csrf_failed"
        )
    if method.upper() in UNSAFE_METHODS:
        sent = headers.get(CSRF_HEADER, "")
        if not hmac.compare_digest(sent.encode(), csrf_token_for(token).encode()):
            raise PermissionDenied(
                "missing or wrong X-CSRF-Token: a request signed in by cookie must send the "
                "session's CSRF token",
                code="csrf_failed",
            )


def _allowed_origin(origin: str, headers: Mapping[str, str], settings: Settings) -> bool:
    """Whether ``origin`` is graft's own (the request's host) or one of ``cors_origins``."""
    if origin.rstrip("/") in settings.cors_origins:
        return True
    parts = urlsplit(origin)
    host = headers.get("host", "")
    return parts.scheme in ("http", "https") and bool(host) and parts.netloc.lower() == host.lower()

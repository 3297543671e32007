"""The SQL side of browser sessions: one function per transaction, run by ``SQLStore``.

A session row holds the SHA-256 digest of the session token (never the token), the user
and the key that signed in, and when it was made, expires and was last used. Finding a
session joins its key and user, so a revoked key or a disabled user ends it at once, as
they end the key's own requests (``graft.sessions`` makes and checks the tokens).
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from graft.errors import NotFound
from graft.store.base import StoredSession
from graft.store.schema import t_sessions
from graft.store.users import find_key, get_user

__all__ = [
    "create_session",
    "delete_session",
    "delete_user_sessions",
    "find_session",
    "touch_session",
]

_SESSIONS = select(
    t_sessions.c.key_id,
    t_sessions.c.created_at,
    t_sessions.c.expires_at,
    t_sessions.c.last_seen_at,
).select_from(t_sessions)


def create_session(
    conn: Connection, *, session_id: str, key_id: str, expires_at: datetime
) -> StoredSession:
    """Insert a session opened with ``key_id``, dropping its user's expired ones (write)."""
    found = find_key(conn, key_id)
    if found is None:
        raise NotFound(f"no API key {key_id!r}", code="key_not_found")
    now = datetime.now(UTC)
    conn.execute(
        delete(t_sessions).where(
            (t_sessions.c.user_pk == found.user.id) & (t_sessions.c.expires_at <= now)
        )
    )
    conn.execute(
        insert(t_sessions),
        {
            "id": session_id,
            "user_pk": found.user.id,
            "key_id": key_id,
            "created_at": now,
            "expires_at": expires_at,
            "last_seen_at": now,
        },
    )
    return StoredSession(session_id, found.info, found.user, now, expires_at, now)


def find_session(conn: Connection, session_id: str) -> StoredSession | None:
    """The live session with its key and user; ``None`` if gone, expired or refused (read)."""
    row = conn.execute(_SESSIONS.where(t_sessions.c.id == session_id)).first()
    if row is None or row.expires_at <= datetime.now(UTC):
        return None
    found = find_key(conn, row.key_id)
    if found is None or found.info.revoked_at is not None or not found.user.active:
        return None
    return StoredSession(
        session_id, found.info, found.user, row.created_at, row.expires_at, row.last_seen_at
    )


def touch_session(conn: Connection, session_id: str, at: datetime) -> None:
    """Record that the session was used at ``at`` (write)."""
    conn.execute(update(t_sessions).where(t_sessions.c.id == session_id).values(last_seen_at=at))


def delete_session(conn: Connection, session_id: str) -> bool:
    """Delete one session (write); whether it existed."""
    return bool(conn.execute(delete(t_sessions).where(t_sessions.c.id == session_id)).rowcount)


def delete_user_sessions(conn: Connection, tenant: str, name: str) -> int:
    """Delete every session of one user (write); how many there were."""
    user = get_user(conn, tenant, name)
    return int(conn.execute(delete(t_sessions).where(t_sessions.c.user_pk == user.id)).rowcount)

"""Browser sessions in the store: found with their key and user as they are now, by digest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from graft.config import Settings
from graft.context import Principal
from graft.errors import NotFound
from graft.identity import issue_key
from graft.sessions import (
    TOUCH_EVERY,
    csrf_token_for,
    find_session,
    open_session,
    principal_of_session,
    session_id_of,
)
from graft.store import Store
from graft.store.sql import SQLStore
from graft.testing import MemoryStore

SETTINGS = Settings()
OPERATOR = Principal("cli:test", frozenset({"admin", "builder", "user"}))


async def _ann(store: Store) -> str:
    """Ann (builder and user) with a key that carries only ``user``; the key's id."""
    ann = await store.create_user(
        tenant="acme", name="ann", roles=["builder", "user"], groups=["hr"]
    )
    _, info = await issue_key(store, ann, creator=OPERATOR, roles=["user"])
    return info.id


async def test_a_session_is_its_key_and_user_until_it_is_deleted(store: Store) -> None:
    key_id = await _ann(store)
    token, opened = await open_session(store, key_id, SETTINGS)
    assert opened.id == session_id_of(token) != token
    found = await find_session(store, token)
    assert found is not None and (found.user.name, found.key.id) == ("ann", key_id)
    assert found.expires_at == opened.expires_at > datetime.now(UTC) + timedelta(hours=11)
    principal = principal_of_session(found)
    assert principal == Principal("ann", frozenset({"user"}), frozenset({"hr"}), "acme")
    assert principal.key_id == key_id
    assert await store.delete_session(opened.id) is True
    assert await store.delete_session(opened.id) is False
    assert await store.find_session(opened.id) is None


async def test_revoked_keys_disabled_users_and_expired_sessions_find_nothing(store: Store) -> None:
    key_id = await _ann(store)
    _, session = await open_session(store, key_id, SETTINGS)
    await store.set_user_disabled("acme", "ann", True)
    assert await store.find_session(session.id) is None
    await store.set_user_disabled("acme", "ann", False)
    assert await store.find_session(session.id) is not None
    await store.revoke_key(key_id)
    assert await store.find_session(session.id) is None

    key_id = await _second_key(store)
    past = datetime.now(UTC) - timedelta(seconds=1)
    expired = await store.create_session(session_id="a" * 64, key_id=key_id, expires_at=past)
    assert await store.find_session(expired.id) is None
    with pytest.raises(NotFound):
        await store.create_session(session_id="b" * 64, key_id="gk_000000000000", expires_at=past)


async def test_signing_out_everywhere_ends_only_that_users_sessions(store: Store) -> None:
    key_id = await _ann(store)
    bob = await store.create_user(tenant="acme", name="bob", roles=["user"], groups=[])
    _, bob_key = await issue_key(store, bob, creator=OPERATOR)
    ann_sessions = [(await open_session(store, key_id, SETTINGS))[1] for _ in range(3)]
    _, bobs = await open_session(store, bob_key.id, SETTINGS)
    assert await store.delete_user_sessions("acme", "ann") == 3
    assert all([await store.find_session(s.id) is None for s in ann_sessions])
    assert await store.find_session(bobs.id) is not None
    with pytest.raises(NotFound):
        await store.delete_user_sessions("acme", "nobody")


async def test_last_seen_is_written_at_most_once_a_minute(store: Store) -> None:
    key_id = await _ann(store)
    token, opened = await open_session(store, key_id, SETTINGS)
    seen = await find_session(store, token)
    assert seen is not None and seen.last_seen_at == opened.last_seen_at  # not rewritten
    long_ago = datetime.now(UTC) - 2 * TOUCH_EVERY
    await store.touch_session(opened.id, long_ago)
    stale = await find_session(store, token)  # sees the old time, and records this use
    assert stale is not None and abs(stale.last_seen_at - long_ago) < timedelta(seconds=1)
    fresh = await store.find_session(opened.id)
    assert fresh is not None and fresh.last_seen_at > long_ago + TOUCH_EVERY


async def test_the_table_holds_digests_never_tokens(sql_store: SQLStore) -> None:
    key_id = await _ann(sql_store)
    old = await sql_store.create_session(
        session_id="c" * 64, key_id=key_id, expires_at=datetime.now(UTC) - timedelta(hours=1)
    )
    token, session = await open_session(sql_store, key_id, SETTINGS)
    with sql_store.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM sessions")).all()
    # Signing in dropped the user's expired session; the new one is stored by its digest.
    assert [row.id for row in rows] == [session.id] != [old.id]
    dump = repr(rows)
    assert token not in dump and csrf_token_for(token) not in dump


async def _second_key(store: Store) -> str:
    ann = await store.get_user("acme", "ann")
    _, info = await issue_key(store, ann, creator=OPERATOR)
    return info.id


def test_memory_store_is_a_store() -> None:
    assert isinstance(MemoryStore(), Store)

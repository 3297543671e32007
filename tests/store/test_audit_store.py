"""The audit log in every Store: in memory, a SQLite file, and a real PostgreSQL.

Appending makes one gapless chain, also when many tasks (and, for the SQL stores, two store
objects, as two processes would) append at once; reading pages forwards and from the end.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import anyio
import pytest

from graft.audit import GENESIS_HASH, AuditEvent, verify
from graft.errors import InvalidRequest
from graft.store import Store
from graft.store.sql import SQLStore

SECRET = "sk-proj-Zq8Yw2abcdEFGH1234567890"


async def test_appends_chain_and_read_back_exactly(store: Store) -> None:
    first = await store.append_audit(AuditEvent("user.create", "cli:root", "acme", "ann"))
    second = await store.append_audit(
        AuditEvent(
            "tool.call",
            "ann",
            "acme",
            "calculator",
            "error",
            {"turn_id": "turn_1", "is_error": True, "note": "数据 ✓", "n": 1.5},
        )
    )
    third = await store.append_audit(AuditEvent("auth.failure", "anonymous", outcome="denied"))
    assert [r.seq for r in (first, second, third)] == [1, 2, 3]
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash and third.prev_hash == second.hash
    assert all(r.hash == r.computed_hash() and len(r.hash) == 64 for r in (first, second, third))
    assert first.at.tzinfo is not None and abs(datetime.now(UTC) - first.at) < timedelta(minutes=1)
    # Read back from the database, every field (the time to the microsecond) is as hashed.
    assert await store.list_audit(0, 10) == [first, second, third]
    assert json.loads(second.details) == {
        "turn_id": "turn_1",
        "is_error": True,
        "note": "数据 ✓",
        "n": 1.5,
    }
    assert third.tenant == "" and third.target == "" and third.details == "{}"


async def test_pages_forwards_from_the_end_and_by_tenant(store: Store) -> None:
    for i in range(5):
        tenant = "acme" if i % 2 == 0 else "globex"
        await store.append_audit(AuditEvent("key.create", "cli:root", tenant, f"gk_{i}"))
    assert [r.seq for r in await store.list_audit(None, 2)] == [4, 5]
    assert [r.seq for r in await store.list_audit(None, 50)] == [1, 2, 3, 4, 5]
    assert [r.seq for r in await store.list_audit(2, 2)] == [3, 4]
    assert [r.seq for r in await store.list_audit(5, 2)] == []
    assert [r.seq for r in await store.list_audit(None, 2, "acme")] == [3, 5]
    assert [r.seq for r in await store.list_audit(1, 10, "globex")] == [2, 4]
    assert await store.list_audit(None, 0) == [] and await store.list_audit(0, 0) == []
    with pytest.raises(InvalidRequest):
        await store.list_audit(None, -1)
    assert [r.seq async for r in store.iter_audit(batch=2)] == [1, 2, 3, 4, 5]
    assert [r.seq async for r in store.iter_audit(batch=5)] == [1, 2, 3, 4, 5]


async def test_secrets_are_masked_and_long_values_cut(store: Store) -> None:
    record = await store.append_audit(
        AuditEvent(
            "tool.call",
            "ann" * 200,
            "acme",
            f"Bearer {SECRET}",
            details={"said": f"my key is {SECRET}", "nested": [{"k": SECRET}], "long": "x" * 2000},
        )
    )
    [stored] = await store.list_audit(None, 1)
    assert stored == record and stored.hash == stored.computed_hash()
    for text in (stored.actor, stored.target, stored.details):
        assert SECRET not in text
    assert "sk-…" in stored.details and len(stored.actor) == 255
    assert len(json.loads(stored.details)["long"]) == 512


async def test_concurrent_appends_make_one_chain(store: Store) -> None:
    async def append(i: int) -> None:
        await store.append_audit(AuditEvent("tool.call", f"user{i}", "acme", "calculator"))

    async with anyio.create_task_group() as tg:
        for i in range(40):
            tg.start_soon(append, i)
    records = [r async for r in store.iter_audit(batch=7)]
    assert [r.seq for r in records] == list(range(1, 41))
    assert sorted(r.actor for r in records) == sorted(f"user{i}" for i in range(40))
    result = await verify(store)
    assert result.ok and result.count == 40 and result.latest_hash == records[-1].hash


async def test_two_stores_on_one_database_make_one_chain(sql_store: SQLStore, sql_url: str) -> None:
    # Two store objects are what two graft processes sharing the database would be: the
    # PostgreSQL advisory lock (or SQLite's write lock) orders their appends.
    other = SQLStore(sql_url)
    await other.start()
    try:

        async def append(store: SQLStore, i: int) -> None:
            await store.append_audit(AuditEvent("tool.call", f"user{i}", "acme", "calculator"))

        async with anyio.create_task_group() as tg:
            for i in range(30):
                tg.start_soon(append, sql_store if i % 2 else other, i)
        result = await verify(other)
        assert result.ok, result.reason
        assert result.count == 30
    finally:
        await other.close()

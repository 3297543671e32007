"""Worker liveness in the SQL store (``graft.store.workers``), on SQLite and PostgreSQL.

Two ``SQLStore`` objects on one database are two workers: one's silence gets its running
turns interrupted by the other, never a live worker's, and never the caller's own.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from graft.context import Principal
from graft.crypto import DataKeys
from graft.errors import NotFound
from graft.heartbeat import Heartbeat
from graft.messages import Message, Usage
from graft.store.sql import SQLStore
from graft.store.workers import INTERRUPTED

ALICE = Principal("alice", tenant="acme")


@pytest.fixture
async def other(sql_url: str, data_keys: DataKeys, sql_store: SQLStore) -> AsyncIterator[SQLStore]:
    """A second worker on the same database (after the first migrated it)."""
    opened = SQLStore(sql_url, data_keys=data_keys)
    await opened.start()
    yield opened
    await opened.close()


async def _turn(store: SQLStore, text: str) -> tuple[str, str]:
    return await store.begin_turn(
        ALICE, assistant="helper", model="fake:m", conversation_id=None,
        new_messages=[Message("user", text)],
    )  # fmt: skip


async def _status(store: SQLStore, cid: str) -> tuple[str, str | None, list[str | None]]:
    _, messages, turns = await store.get_conversation(cid, ALICE)
    return turns[0].status, turns[0].error, [m.message.content for m in messages]


async def test_a_silent_workers_turns_are_interrupted(sql_store: SQLStore, other: SQLStore) -> None:
    await sql_store.worker_heartbeat()
    await other.worker_heartbeat()
    mine, _ = await _turn(other, "mine")
    cid, tid = await _turn(sql_store, "theirs")
    # Alive within the last minute: nothing to do.
    assert await other.recover_turns(60.0) == []
    assert (await _status(other, cid))[0] == "running"
    await asyncio.sleep(0.05)
    # Silent for longer than 0.01 s: interrupted, the user's message kept.
    assert await other.recover_turns(0.01) == [sql_store.worker_id]
    assert await _status(other, cid) == ("interrupted", INTERRUPTED, ["theirs"])
    assert (await _status(other, mine))[0] == "running"  # the caller's own turn
    # The worker was only slow: its late finish finds no running turn.
    with pytest.raises(NotFound):
        await sql_store.finish_turn(
            tid, messages=[], tool_runs=[], usage=Usage(), finish_reason="stop", duration_ms=1
        )


async def test_a_clean_stop_interrupts_what_is_left(sql_store: SQLStore, other: SQLStore) -> None:
    beat = Heartbeat(sql_store, interval=0.05, timeout=30.0)
    await beat.start()
    cid, _ = await _turn(sql_store, "left behind")
    done_cid, done_tid = await _turn(sql_store, "finished")
    await sql_store.finish_turn(
        done_tid, messages=[], tool_runs=[], usage=Usage(), finish_reason="stop", duration_ms=1
    )
    await asyncio.sleep(0.15)  # a few beats: no turn of its own is touched
    assert (await _status(other, cid))[0] == "running"
    await beat.stop()
    assert (await _status(other, cid))[:2] == ("interrupted", INTERRUPTED)
    assert (await _status(other, done_cid))[0] == "done"
    assert await other.recover_turns(0.0) == []  # its row is gone

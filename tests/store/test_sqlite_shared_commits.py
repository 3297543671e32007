"""SQLite writes that run on the event loop share commits: one per turn of the loop.

The writes that arrive while the loop runs its ready callbacks are committed together at
its next turn, and a finished turn's write lingers (``FINISH_LINGER``) for the next write to
take it along. Each caller must still get what a transaction of its own would give.
"""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest
from sqlalchemy import Connection, event
from tests.store.conftest import Outcomes
from tests.store.test_store import ALICE, continue_conversation, new_conversation
from tests.store.test_store import finish as finish_turn

from graft.errors import ConversationNotFound, NotFound
from graft.store import sql as sql_mod
from graft.store.sql import SQLStore


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    store = SQLStore(f"sqlite:///{tmp_path / 'graft.db'}")
    await store.start()
    try:
        yield store
    finally:
        await store.close()


class Commits:
    """Counts the store's commits and the threads they ran on."""

    def __init__(self, store: SQLStore) -> None:
        self.count = 0
        self.threads: set[int] = set()
        event.listen(store.engine, "commit", self._on_commit)

    def _on_commit(self, conn: Connection) -> None:
        self.count += 1
        self.threads.add(threading.get_ident())


async def begin(store: SQLStore, text: str) -> str:
    """A new conversation of ALICE's; its turn's id."""
    _, turn_id = await new_conversation(store, text=text)
    return turn_id


async def finish(store: SQLStore, turn_id: str, reply: str = "an answer") -> None:
    await finish_turn(store, turn_id, reply)


async def test_writes_of_one_loop_turn_share_one_commit(store: SQLStore) -> None:
    commits = Commits(store)
    async with anyio.create_task_group() as tg:  # 20 turns that begin together
        for i in range(20):
            tg.start_soon(begin, store, f"question {i}")
    assert commits.count == 1
    assert commits.threads == {threading.get_ident()}  # on the event loop
    listed = await store.list_conversations(ALICE, limit=50)
    assert sorted(c.title for c in listed) == sorted(f"question {i}" for i in range(20))


async def test_a_finished_turn_is_committed_with_the_next_write(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_mod, "FINISH_LINGER", 5.0)
    first = await begin(store, "first question")
    commits = Commits(store)
    started = time.monotonic()
    async with anyio.create_task_group() as tg:
        tg.start_soon(finish, store, first)
        await anyio.sleep(0.05)  # the finish waits for company...
        assert commits.count == 0
        await begin(store, "second question")  # ...which commits it at once
    assert time.monotonic() - started < 2.0
    assert commits.count == 1
    conversations = await store.list_conversations(ALICE)
    statuses = {}
    for info in conversations:
        _, messages, turns = await store.get_conversation(info.id, ALICE)
        statuses[info.title] = ([t.status for t in turns], [m.message.content for m in messages])
    assert statuses == {
        "first question": (["done"], ["first question", "an answer"]),
        "second question": (["running"], ["second question"]),
    }


async def test_a_finished_turn_alone_is_committed_after_the_linger(
    store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_mod, "FINISH_LINGER", 0.2)
    turn_id = await begin(store, "a question")
    commits = Commits(store)
    started = time.monotonic()
    await finish(store, turn_id)
    assert time.monotonic() - started >= 0.2
    assert commits.count == 1
    [info] = await store.list_conversations(ALICE)
    _, _, [turn] = await store.get_conversation(info.id, ALICE)
    assert turn.status == "done"


async def test_a_failing_write_among_others_fails_alone(store: SQLStore) -> None:
    done_turn = await begin(store, "answered")
    await finish(store, done_turn)
    commits = Commits(store)
    outcomes = Outcomes()
    attempt = outcomes.attempt

    async with anyio.create_task_group() as tg:  # all in one turn of the loop
        tg.start_soon(attempt, "new", begin(store, "new 1"))
        tg.start_soon(attempt, "missing", continue_conversation(store, "conv_missing", "hi"))
        tg.start_soon(attempt, "new", begin(store, "new 2"))
        tg.start_soon(attempt, "finished twice", finish(store, done_turn, "again"))
        tg.start_soon(attempt, "new", begin(store, "new 3"))
    assert outcomes["missing"] == [ConversationNotFound]
    assert outcomes["finished twice"] == [NotFound]
    assert [type(r) for r in outcomes["new"]] == [str] * 3
    # The shared attempt rolled back when a write failed; the savepoint run committed once.
    assert commits.count == 1
    titles = sorted(c.title for c in await store.list_conversations(ALICE))
    assert titles == ["answered", "new 1", "new 2", "new 3"]
    answered = next(c for c in await store.list_conversations(ALICE) if c.title == "answered")
    _, messages, _ = await store.get_conversation(answered.id, ALICE)
    assert [m.message.content for m in messages] == ["answered", "an answer"]


async def test_closing_the_store_commits_a_lingering_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sql_mod, "FINISH_LINGER", 30.0)
    url = f"sqlite:///{tmp_path / 'graft.db'}"
    store = SQLStore(url)
    await store.start()
    turn_id = await begin(store, "a question")
    async with anyio.create_task_group() as tg:
        tg.start_soon(finish, store, turn_id)
        await anyio.sleep(0.05)
        with anyio.fail_after(5):
            await store.close()  # does not wait out the linger
    again = SQLStore(url)
    await again.start()
    try:
        [info] = await again.list_conversations(ALICE)
        _, messages, [turn] = await again.get_conversation(info.id, ALICE)
        assert turn.status == "done"
        assert [m.message.content for m in messages] == ["a question", "an answer"]
    finally:
        await again.close()

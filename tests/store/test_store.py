"""One behavioural suite for every Store: in memory, a SQLite file, and a real PostgreSQL.

The backends come from this folder's ``conftest.py`` (which says where PostgreSQL is
expected and how to start it).
"""

from __future__ import annotations

import asyncio
import os
import sqlite3
import sys
import threading
import time
from collections.abc import Awaitable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, func, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from tests.store.conftest import Outcomes

from graft.context import Principal
from graft.errors import ConfigError, Conflict, ConversationNotFound, InvalidRequest, NotFound
from graft.messages import Message, ToolCall, Usage
from graft.store import Store, ToolRun, open_store
from graft.store import sql as sql_mod
from graft.store import sqlite as sqlite_mod
from graft.store.conversations import payload_size
from graft.store.encrypted import MESSAGES, reveal
from graft.store.memory import MemoryStore
from graft.store.sql import SQLStore, metadata, t_conversations, t_messages, t_tool_runs, t_turns
from graft.store.sqlite import WRITER_CONNECTION

ALICE = Principal("alice", tenant="acme")
BOB = Principal("bob", tenant="acme")
ALICE_ELSEWHERE = Principal("alice", tenant="globex")

# --- helpers --------------------------------------------------------------------------------


async def new_conversation(
    store: Store, principal: Principal = ALICE, text: str = "hello"
) -> tuple[str, str]:
    return await store.begin_turn(
        principal,
        assistant="helper",
        model="fake:echo",
        conversation_id=None,
        new_messages=[Message("user", text)],
    )


async def continue_conversation(
    store: Store, conversation_id: str, text: str, model: str = "fake:echo"
) -> str:
    """Begin a turn of ALICE's with one user message; return the turn id."""
    _, turn_id = await store.begin_turn(
        ALICE,
        assistant="helper",
        model=model,
        conversation_id=conversation_id,
        new_messages=[Message("user", text)],
    )
    return turn_id


async def finish(store: Store, turn_id: str, reply: str = "hi there") -> None:
    await store.finish_turn(
        turn_id,
        messages=[Message("assistant", reply)],
        tool_runs=[],
        usage=Usage(10, 3),
        finish_reason="stop",
        duration_ms=1.5,
    )


def count_rows(store: SQLStore, conversation_id: str) -> dict[str, int]:
    with store.engine.connect() as conn:
        return {
            table.name: conn.execute(
                select(func.count()).where(table.c.conversation_id == conversation_id)
            ).scalar_one()
            for table in (t_turns, t_messages, t_tool_runs)
        } | {
            "conversations": conn.execute(
                select(func.count()).where(t_conversations.c.id == conversation_id)
            ).scalar_one()
        }


def assert_recent_utc(moment: datetime) -> None:
    assert moment.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - moment) < timedelta(minutes=1)


# --- the behaviour every store shares --------------------------------------------------------


async def test_begin_and_finish_round_trip(store: Store) -> None:
    sent = [Message("system", "Be brief."), Message("user", "What is 2+2?", name="alice")]
    cid, tid = await store.begin_turn(
        ALICE, assistant="helper", model="fake:echo", conversation_id=None, new_messages=sent
    )
    reply = Message("assistant", "4")
    await store.finish_turn(
        tid,
        messages=[reply],
        tool_runs=[],
        usage=Usage(12, 1),
        finish_reason="stop",
        duration_ms=812.25,
    )

    assert await store.load_history(cid, ALICE) == [*sent, reply]
    info, stored, turns = await store.get_conversation(cid, ALICE)
    assert (info.id, info.user_id, info.tenant, info.assistant) == (cid, "alice", "acme", "helper")
    assert info.title == "What is 2+2?"
    assert_recent_utc(info.created_at)
    assert info.updated_at >= info.created_at
    assert [s.message for s in stored] == [*sent, reply]
    assert {s.turn_id for s in stored} == {tid}
    for s in stored:
        assert_recent_utc(s.created_at)

    [turn] = turns
    assert (turn.id, turn.conversation_id, turn.status, turn.model) == (
        tid,
        cid,
        "done",
        "fake:echo",
    )
    assert turn.finish_reason == "stop"
    assert turn.error is None
    assert turn.usage == Usage(12, 1)
    assert turn.tool_runs == []
    assert_recent_utc(turn.started_at)
    assert turn.finished_at is not None and turn.finished_at >= turn.started_at
    assert turn.duration_ms == 812.25


async def test_user_message_is_stored_before_the_turn_finishes(store: Store) -> None:
    cid, tid = await new_conversation(store, text="remember me")

    assert await store.load_history(cid, ALICE) == [Message("user", "remember me")]
    _, stored, [turn] = await store.get_conversation(cid, ALICE)
    assert [s.turn_id for s in stored] == [tid]
    assert turn.status == "running"
    assert turn.finished_at is None
    assert turn.duration_ms is None
    assert turn.usage == Usage()


async def test_failed_turn_is_stored_with_its_error(store: Store) -> None:
    cid, tid = await new_conversation(store)
    await store.finish_turn(
        tid,
        messages=[Message("assistant", "partial ans")],
        tool_runs=[],
        usage=Usage(7, 2),
        finish_reason=None,
        duration_ms=60_000.0,
        error="upstream timed out after 60 s",
    )

    _, _, [turn] = await store.get_conversation(cid, ALICE)
    assert turn.status == "failed"
    assert turn.error == "upstream timed out after 60 s"
    assert turn.finish_reason is None
    assert turn.usage == Usage(7, 2)
    assert turn.finished_at is not None
    assert await store.load_history(cid, ALICE) == [
        Message("user", "hello"),
        Message("assistant", "partial ans"),
    ]


async def test_finish_turn_needs_a_running_turn(store: Store) -> None:
    _, tid = await new_conversation(store)
    await finish(store, tid)
    with pytest.raises(NotFound) as twice:
        await finish(store, tid)
    assert twice.value.code == "turn_not_found"
    with pytest.raises(NotFound):
        await finish(store, "turn_doesnotexist")


async def test_tool_calls_and_tool_runs_round_trip(store: Store) -> None:
    cid, tid = await new_conversation(store, text="weather in Paris and 6*7?")
    produced = [
        Message(
            "assistant",
            None,
            tool_calls=[
                ToolCall("call_1", "weather", '{"city": "Paris"}'),
                ToolCall("call_2", "calculator", '{"expression": "6*7"}'),
            ],
        ),
        Message("tool", '{"temp_c": 18}', tool_call_id="call_1", name="weather"),
        Message("tool", "42", tool_call_id="call_2", name="calculator"),
        Message("assistant", "18 °C in Paris, and 6*7 = 42."),
    ]
    runs = [
        ToolRun("call_1", "weather", '{"city": "Paris"}', '{"temp_c": 18}', False, 120.5),
        ToolRun("call_2", "calculator", '{"expression": "6*7"}', "42", False, 0.25),
        ToolRun("call_3", "search", "{}", "ToolTimeout: gave up", True, 5000.0),
    ]
    await store.finish_turn(
        tid,
        messages=produced,
        tool_runs=runs,
        usage=Usage(300, 40),
        finish_reason="stop",
        duration_ms=5200.0,
    )

    history = await store.load_history(cid, ALICE)
    assert history == [Message("user", "weather in Paris and 6*7?"), *produced]
    assert all(isinstance(c, ToolCall) for c in history[1].tool_calls)
    assert history[1].content is None
    _, _, [turn] = await store.get_conversation(cid, ALICE)
    assert turn.tool_runs == runs


async def test_continuing_a_conversation_appends_in_order(store: Store) -> None:
    cid, first = await new_conversation(store, text="one")
    await finish(store, first, "reply one")
    same, second = await store.begin_turn(
        ALICE,
        assistant="helper",
        model="fake:other",
        conversation_id=cid,
        new_messages=[Message("user", "two")],
    )
    await finish(store, second, "reply two")

    assert same == cid
    assert second != first
    history = await store.load_history(cid, ALICE)
    assert [m.content for m in history] == ["one", "reply one", "two", "reply two"]
    info, stored, turns = await store.get_conversation(cid, ALICE)
    assert info.title == "one"
    assert [s.turn_id for s in stored] == [first, first, second, second]
    assert [(t.id, t.model) for t in turns] == [(first, "fake:echo"), (second, "fake:other")]
    assert info.updated_at >= turns[1].started_at


async def test_titles(store: Store) -> None:
    cid, _ = await new_conversation(store, text="  plan\n\n my   trip \t")
    assert (await store.get_conversation(cid, ALICE))[0].title == "plan my trip"

    long = "word " * 60
    cid, _ = await new_conversation(store, text=long)
    title = (await store.get_conversation(cid, ALICE))[0].title
    assert len(title) <= 80
    assert title.endswith("…")
    assert " ".join(long.split()).startswith(title[:-1])

    # No user text yet: untitled until the first user message arrives.
    cid, _ = await store.begin_turn(
        ALICE,
        assistant="helper",
        model="fake:echo",
        conversation_id=None,
        new_messages=[Message("system", "You are terse.")],
    )
    assert (await store.get_conversation(cid, ALICE))[0].title == ""
    await continue_conversation(store, cid, "now a question")
    assert (await store.get_conversation(cid, ALICE))[0].title == "now a question"


@pytest.mark.parametrize("stranger", [BOB, ALICE_ELSEWHERE], ids=["other-user", "other-tenant"])
async def test_conversations_are_invisible_to_other_principals(
    store: Store, stranger: Principal
) -> None:
    cid, tid = await new_conversation(store, text="secret plans")
    await finish(store, tid)

    with pytest.raises(ConversationNotFound) as hidden:
        await store.load_history(cid, stranger)
    with pytest.raises(ConversationNotFound) as absent:
        await store.load_history("conv_000000000000000000000000", stranger)
    # The same answer as for an id that never existed: existence does not leak.
    assert type(hidden.value) is type(absent.value)
    assert hidden.value.code == absent.value.code == "conversation_not_found"
    assert hidden.value.status == 404

    with pytest.raises(ConversationNotFound):
        await store.get_conversation(cid, stranger)
    with pytest.raises(ConversationNotFound):
        await store.delete_conversation(cid, stranger)
    with pytest.raises(ConversationNotFound):
        await store.begin_turn(
            stranger,
            assistant="helper",
            model="fake:echo",
            conversation_id=cid,
            new_messages=[Message("user", "let me in")],
        )
    assert await store.list_conversations(stranger) == []

    # Nothing the stranger did reached the owner's conversation.
    assert [m.content for m in await store.load_history(cid, ALICE)] == [
        "secret plans",
        "hi there",
    ]
    _, _, turns = await store.get_conversation(cid, ALICE)
    assert [t.id for t in turns] == [tid]


async def test_unknown_conversation_is_not_found(store: Store) -> None:
    with pytest.raises(ConversationNotFound):
        await store.begin_turn(
            ALICE,
            assistant="helper",
            model="fake:echo",
            conversation_id="conv_nope",
            new_messages=[Message("user", "hi")],
        )
    with pytest.raises(ConversationNotFound):
        await store.get_conversation("conv_nope", ALICE)
    with pytest.raises(ConversationNotFound):
        await store.delete_conversation("conv_nope", ALICE)
    assert await store.list_conversations(ALICE) == []


async def test_list_is_most_recent_first_and_pages(store: Store) -> None:
    ids = [(await new_conversation(store, text=f"topic {i}"))[0] for i in range(5)]
    await new_conversation(store, BOB, "not alice's")
    await new_conversation(store, ALICE_ELSEWHERE, "not this tenant's")
    # Activity on an old conversation moves it to the top.
    await continue_conversation(store, ids[1], "back to topic 1")
    expected = [ids[1], ids[4], ids[3], ids[2], ids[0]]

    listed = await store.list_conversations(ALICE)
    assert [c.id for c in listed] == expected
    assert [c.title for c in listed] == ["topic 1", "topic 4", "topic 3", "topic 2", "topic 0"]
    assert all(c.user_id == "alice" and c.tenant == "acme" for c in listed)
    assert [c.updated_at for c in listed] == sorted((c.updated_at for c in listed), reverse=True)

    pages = [await store.list_conversations(ALICE, limit=2, offset=o) for o in (0, 2, 4)]
    assert [len(p) for p in pages] == [2, 2, 1]
    assert [c.id for page in pages for c in page] == expected
    assert await store.list_conversations(ALICE, limit=2, offset=5) == []
    assert await store.list_conversations(ALICE, limit=0) == []
    with pytest.raises(InvalidRequest):
        await store.list_conversations(ALICE, limit=-1)
    with pytest.raises(InvalidRequest):
        await store.list_conversations(ALICE, offset=-1)


async def test_a_new_turn_bumps_the_conversation(store: Store) -> None:
    older, first = await new_conversation(store, text="older")
    newer, _ = await new_conversation(store, text="newer")
    await finish(store, first)  # finishing a turn is not new activity: the order stays
    assert [c.id for c in await store.list_conversations(ALICE)] == [newer, older]
    await continue_conversation(store, older, "back to this one")
    assert [c.id for c in await store.list_conversations(ALICE)] == [older, newer]


async def test_delete_removes_everything_of_the_conversation(store: Store) -> None:
    cid, tid = await new_conversation(store, text="to be deleted")
    await store.finish_turn(
        tid,
        messages=[
            Message("assistant", None, tool_calls=[ToolCall("call_1", "clock", "{}")]),
            Message("tool", "12:00", tool_call_id="call_1", name="clock"),
        ],
        tool_runs=[ToolRun("call_1", "clock", "{}", "12:00", False, 1.0)],
        usage=Usage(1, 1),
        finish_reason="tool_calls",
        duration_ms=3.0,
    )
    running = await continue_conversation(store, cid, "and now?")
    kept, kept_turn = await new_conversation(store, text="keep me")
    await finish(store, kept_turn)
    if isinstance(store, SQLStore):
        assert count_rows(store, cid) == {
            "conversations": 1,
            "turns": 2,
            "messages": 4,
            "tool_runs": 1,
        }

    await store.delete_conversation(cid, ALICE)

    with pytest.raises(ConversationNotFound):
        await store.get_conversation(cid, ALICE)
    with pytest.raises(ConversationNotFound):
        await store.load_history(cid, ALICE)
    with pytest.raises(ConversationNotFound):
        await store.delete_conversation(cid, ALICE)
    with pytest.raises(NotFound):
        await finish(store, running)  # its turn went with it
    assert [c.id for c in await store.list_conversations(ALICE)] == [kept]
    assert len(await store.load_history(kept, ALICE)) == 2
    if isinstance(store, SQLStore):
        assert count_rows(store, cid) == {
            "conversations": 0,
            "turns": 0,
            "messages": 0,
            "tool_runs": 0,
        }
        assert count_rows(store, kept) == {
            "conversations": 1,
            "turns": 1,
            "messages": 2,
            "tool_runs": 0,
        }


async def test_start_twice_keeps_the_data(store: Store) -> None:
    cid, tid = await new_conversation(store)
    await finish(store, tid)
    await store.start()
    await store.start()
    assert len(await store.load_history(cid, ALICE)) == 2


async def test_chinese_and_other_unicode_round_trip(store: Store) -> None:
    user = Principal("用户甲", tenant="租户一")
    question = "你好！请帮我把这段话翻译成英文，并解释一下其中的成语“画蛇添足”是什么意思。" * 3
    cid, tid = await new_conversation(store, user, question)
    produced = [
        Message(
            "assistant",
            "",
            tool_calls=[ToolCall("call_翻译", "translate", '{"text": "画蛇添足", "to": "en"}')],
        ),
        Message("tool", '{"译文": "to draw legs on a snake"}', tool_call_id="call_翻译"),
        Message("assistant", "“画蛇添足”意思是多此一举 🐍🦵 — déjà vu, naïve, Ωmega."),
    ]
    run = ToolRun("call_翻译", "translate", '{"text": "画蛇添足"}', "to draw legs 🐍", False, 3.5)
    await store.finish_turn(
        tid,
        messages=produced,
        tool_runs=[run],
        usage=Usage(50, 20),
        finish_reason="stop",
        duration_ms=42.0,
    )

    assert await store.load_history(cid, user) == [Message("user", question), *produced]
    info, _, [turn] = await store.get_conversation(cid, user)
    assert (info.user_id, info.tenant) == ("用户甲", "租户一")
    assert len(info.title) == 80
    assert info.title == question[:79] + "…"
    assert turn.tool_runs == [run]
    [listed] = await store.list_conversations(user)
    assert listed.title == info.title


async def test_concurrent_turns_are_all_stored(store: Store) -> None:
    shared, _ = await new_conversation(store, text="shared")
    created: list[str] = []

    async def own_conversation(i: int) -> None:
        cid, tid = await new_conversation(store, text=f"parallel {i}")
        await finish(store, tid, f"reply {i}")
        created.append(cid)

    async def shared_turn(i: int) -> None:
        tid = await continue_conversation(store, shared, f"more {i}")
        await finish(store, tid, f"answer {i}")

    async with anyio.create_task_group() as tg:
        for i in range(12):
            tg.start_soon(own_conversation, i)
            tg.start_soon(shared_turn, i)

    assert len(await store.list_conversations(ALICE, limit=100)) == 13
    for cid in created:
        assert len(await store.load_history(cid, ALICE)) == 2
    _, stored, turns = await store.get_conversation(shared, ALICE)
    assert len(stored) == 1 + 2 * 12
    assert len(turns) == 13
    assert all(t.status == "done" for t in turns[1:])
    # Each turn's user message comes before its reply.
    order = [s.message.content for s in stored]
    for i in range(12):
        assert order.index(f"more {i}") < order.index(f"answer {i}")


async def test_deleting_while_turns_finish_never_deadlocks(store: Store) -> None:
    # A user may delete a conversation while its turn is still being stored. Either may go
    # first; neither may fail with anything but "that turn is gone".
    finished = gone = 0

    async def finish_or_gone(turn_id: str) -> None:
        nonlocal finished, gone
        try:
            await finish(store, turn_id)
            finished += 1
        except NotFound:
            gone += 1

    for _ in range(4):
        pairs = [await new_conversation(store) for _ in range(15)]
        async with anyio.create_task_group() as tg:
            for cid, tid in pairs:
                tg.start_soon(finish_or_gone, tid)
                tg.start_soon(store.delete_conversation, cid, ALICE)
    assert finished + gone == 60
    assert await store.list_conversations(ALICE) == []


async def test_returned_objects_are_copies(store: Store) -> None:
    sent = Message("user", "original", tool_calls=[])
    cid, _ = await store.begin_turn(
        ALICE, assistant="helper", model="fake:echo", conversation_id=None, new_messages=[sent]
    )
    sent.content = "changed by the caller"
    history = await store.load_history(cid, ALICE)
    history[0].content = "changed again"
    assert await store.load_history(cid, ALICE) == [Message("user", "original")]


# --- the SQL store only ---------------------------------------------------------------------


async def test_migrations_match_the_tables_and_reopen_cleanly(sql_url: str) -> None:
    first = SQLStore(sql_url)
    await first.start()
    cid, tid = await new_conversation(first)
    await finish(first, tid)
    await first.close()

    again = SQLStore(sql_url)
    await again.start()
    await again.start()
    try:
        assert len(await again.load_history(cid, ALICE)) == 2
        config = Config()
        config.set_main_option("script_location", "graft.store:migrations")
        head = ScriptDirectory.from_config(config).get_current_head()
        with again.engine.connect() as conn:
            versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
            assert [v for (v,) in versions] == [head]
            diff = compare_metadata(
                MigrationContext.configure(conn, opts={"compare_type": True}), metadata
            )
        assert diff == []
    finally:
        await again.close()


async def test_database_work_that_can_wait_runs_off_the_event_loop(
    sql_store: SQLStore, sql_url: str
) -> None:
    threads: dict[str, set[int]] = {}
    doing = "small writes"

    def record(conn: Connection) -> None:
        threads.setdefault(doing, set()).add(threading.get_ident())

    event.listen(sql_store.engine, "begin", record)
    cid, tid = await new_conversation(sql_store)
    doing = "large writes"
    big = "x" * (sqlite_mod.INLINE_MAX_BYTES + 1)
    await finish(sql_store, tid, big)
    doing = "reads"
    assert (await sql_store.load_history(cid, ALICE))[-1].content == big
    loop_thread = threading.get_ident()
    assert loop_thread not in threads["reads"] | threads["large writes"]
    # PostgreSQL is reached over the network: always from worker threads. A small SQLite
    # write that finds the writer idle runs at once on the loop (it never waits there).
    assert (loop_thread in threads["small writes"]) == sql_url.startswith("sqlite")


def test_sqlite_write_inline_limit_counts_what_is_stored() -> None:
    assert sqlite_mod.INLINE_MAX_BYTES >= 16 * 1024  # a typical turn fits
    assert (
        payload_size(
            [{"content": "abc", "tool_calls": None}, {"content": None, "tool_calls": "[1]"}]
        )
        == 6
    )


async def test_sqlite_write_never_waits_for_another_process_on_the_event_loop(
    tmp_path: Path,
) -> None:
    # Another process holds SQLite's write lock: a write must wait for it in the writer's
    # thread (with the busy timeout), while the event loop keeps serving everything else.
    path = tmp_path / "graft.db"
    store = SQLStore(f"sqlite:///{path}")
    await store.start()
    other = sqlite3.connect(path, isolation_level=None)
    writers: set[int] = set()

    def record(conn: Connection) -> None:  # a write transaction commits where it ran
        if conn.connection.info.get(WRITER_CONNECTION):
            writers.add(threading.get_ident())

    event.listen(store.engine, "commit", record)
    try:
        other.execute("BEGIN IMMEDIATE")
        async with anyio.create_task_group() as tg:
            done = anyio.Event()

            async def write() -> None:
                await new_conversation(store, text="waited for the lock")
                done.set()

            tg.start_soon(write)
            ticks = 0
            for _ in range(20):  # the loop is not blocked while the write waits
                await anyio.sleep(0.01)
                ticks += 1
            assert ticks == 20 and not done.is_set()
            other.execute("COMMIT")
            with anyio.fail_after(10):
                await done.wait()
        [info] = await store.list_conversations(ALICE)
        assert info.title == "waited for the lock"
        assert threading.get_ident() not in writers
        # Once the lock is free, small writes run inline again.
        writers.clear()
        await new_conversation(store, text="inline again")
        assert writers == {threading.get_ident()}
    finally:
        other.close()
        await store.close()


async def test_sqlite_wal_is_checkpointed_in_the_background(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer's connection never checkpoints on commit (that would sync the file to disk
    # on the event loop); the writer's thread checkpoints between writes instead, so the
    # WAL starts over and stays small however many turns are stored.
    monkeypatch.setattr(sqlite_mod, "CHECKPOINT_EVERY", 8)
    checkpoints: list[int] = []
    original = sqlite_mod.SQLiteWriter._run_checkpoint

    def spy(self: sqlite_mod.SQLiteWriter) -> None:
        checkpoints.append(threading.get_ident())
        original(self)

    monkeypatch.setattr(sqlite_mod.SQLiteWriter, "_run_checkpoint", spy)
    path = tmp_path / "graft.db"
    store = SQLStore(f"sqlite:///{path}")
    await store.start()
    try:
        wal_sizes = []
        for i in range(300):
            _, tid = await new_conversation(store, text=f"question {i} " + "x" * 500)
            await finish(store, tid, "y" * 500)
            wal_sizes.append(os.stat(f"{path}-wal").st_size)
        assert len(checkpoints) >= 600 // 8 - 1
        assert threading.get_ident() not in checkpoints
        # 600 transactions of several pages each would be megabytes of WAL; reused after
        # each checkpoint, it stays at about 8 transactions' worth.
        assert max(wal_sizes[100:]) < 1.5 * max(wal_sizes[:100])
        assert max(wal_sizes) < 600 * 1024
    finally:
        await store.close()


def _outside_engine(url: str) -> Engine:
    """An engine of its own on the store's database: none of the store's pool or hooks."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return create_engine(parsed, poolclass=NullPool)


async def test_begin_turn_is_committed_when_it_returns(sql_store: SQLStore, sql_url: str) -> None:
    # The user's message must be in the database before the model is called, so another
    # connection sees it (and the running turn) the moment begin_turn returns.
    outside = _outside_engine(sql_url)

    def seen(cid: str, tid: str) -> tuple[str, list[str]]:
        with outside.connect() as conn:
            status = conn.execute(select(t_turns.c.status).where(t_turns.c.id == tid)).scalar_one()
            contents = conn.execute(
                select(t_messages.c.content)
                .where(t_messages.c.conversation_id == cid)
                .order_by(t_messages.c.id)
            )
            # Encrypted at rest: decrypted here as the store would.
            context = MESSAGES.context("content", cid)
            return status, [reveal(sql_store.data_keys, c, context) for (c,) in contents]

    try:
        cid, tid = await new_conversation(sql_store, text="stored before the model runs")
        assert seen(cid, tid) == ("running", ["stored before the model runs"])
        await finish(sql_store, tid, "an answer")
        assert seen(cid, tid) == ("done", ["stored before the model runs", "an answer"])
        again = await continue_conversation(sql_store, cid, "and a follow-up")
        assert seen(cid, again) == (
            "running",
            ["stored before the model runs", "an answer", "and a follow-up"],
        )
    finally:
        outside.dispose()


async def test_a_cancelled_caller_never_cuts_a_write_in_half(
    sql_store: SQLStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Writes that run in a thread (all of PostgreSQL's; SQLite's queued ones) can be
    # cancelled while they run; a SQLite write run inline cannot be interrupted at all.
    monkeypatch.setattr(sql_mod, "INLINE_MAX_BYTES", -1)
    # Cancelled before it starts, a write does nothing.
    with anyio.CancelScope() as before:
        before.cancel()
        await new_conversation(sql_store, text="never stored")
    assert before.cancelled_caught
    assert await sql_store.list_conversations(ALICE) == []

    # Cancelled while its transaction is open, the write still runs to its commit.
    loop = asyncio.get_running_loop()
    during = anyio.CancelScope()

    def cancel_meanwhile(conn: Connection) -> None:  # "begin", in the database's thread
        loop.call_soon_threadsafe(during.cancel)
        time.sleep(0.05)

    event.listen(sql_store.engine, "begin", cancel_meanwhile, once=True)
    with during:
        await new_conversation(sql_store, text="stored whole")
    assert during.cancel_called
    [info] = await sql_store.list_conversations(ALICE)
    assert info.title == "stored whole"
    assert await sql_store.load_history(info.id, ALICE) == [Message("user", "stored whole")]
    _, _, [turn] = await sql_store.get_conversation(info.id, ALICE)
    assert turn.status == "running"


@pytest.mark.parametrize("inline", [True, False], ids=["inline-when-idle", "all-queued"])
async def test_sqlite_writes_queue_for_one_writer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, inline: bool
) -> None:
    # Without a busy timeout SQLite refuses a second writer at once ("database is locked"),
    # so 50 concurrent turns only all succeed if the store never has two write
    # transactions open at the same time: its writes wait in line in Python.
    monkeypatch.setattr(sqlite_mod, "SQLITE_BUSY_TIMEOUT_MS", 0)
    if not inline:
        monkeypatch.setattr(sql_mod, "INLINE_MAX_BYTES", -1)
    store = SQLStore(f"sqlite:///{tmp_path / 'graft.db'}")
    writers: set[int] = set()
    readers: set[int] = set()

    def record_write(conn: Connection) -> None:  # a write transaction commits where it ran
        if conn.connection.info.get(WRITER_CONNECTION):
            writers.add(threading.get_ident())

    def record_read(conn: Connection, cursor: object, statement: str, *args: object) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "JOIN" in statement:
            readers.add(threading.get_ident())  # load_history

    event.listen(store.engine, "commit", record_write)
    event.listen(store.engine, "before_cursor_execute", record_read)
    await store.start()
    try:
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 0

        async def two_turns(i: int) -> None:
            cid, tid = await new_conversation(store, text=f"question {i}")
            assert await store.load_history(cid, ALICE) == [Message("user", f"question {i}")]
            await finish(store, tid, f"answer {i}")
            history = await store.load_history(cid, ALICE)
            again = await continue_conversation(store, cid, f"more {i}")
            await finish(store, again, f"more answer {i}")
            assert len(history) == 2

        async with anyio.create_task_group() as tg:
            for i in range(50):
                tg.start_soon(two_turns, i)

        listed = await store.list_conversations(ALICE, limit=100)
        assert len(listed) == 50
        for info in listed:
            i = info.title.removeprefix("question ")
            assert [m.content for m in await store.load_history(info.id, ALICE)] == [
                f"question {i}",
                f"answer {i}",
                f"more {i}",
                f"more answer {i}",
            ]
            _, _, turns = await store.get_conversation(info.id, ALICE)
            assert [t.status for t in turns] == ["done", "done"]
        # Every write ran on the event loop (small ones, when the writer was idle) or on one
        # writer thread; reads ran in worker threads beside them.
        loop_thread = threading.get_ident()
        if inline:
            assert loop_thread in writers and len(writers - {loop_thread}) <= 1
        else:
            assert len(writers) == 1 and loop_thread not in writers
        assert loop_thread not in readers
        assert readers - writers
    finally:
        await store.close()


@pytest.mark.parametrize("first_commit_fails", [False, True], ids=["commits", "commit-fails"])
async def test_sqlite_writes_committed_together_keep_each_callers_outcome(
    tmp_path: Path, first_commit_fails: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Writes that queue up while the writer is busy share one transaction, a savepoint each.
    # Every caller must still get exactly what a transaction of its own would give: its
    # result, or its error with nothing of it stored. If the shared commit fails, each
    # write is run again alone.
    monkeypatch.setattr(sql_mod, "INLINE_MAX_BYTES", -1)  # every write through the queue
    store = SQLStore(f"sqlite:///{tmp_path / 'graft.db'}")
    await store.start()
    try:
        kept, kept_turn = await new_conversation(store, text="kept")
        _, done_turn = await new_conversation(store, text="done")
        await finish(store, done_turn)
        doomed, doomed_turn = await new_conversation(store, text="doomed")

        held, release = threading.Event(), threading.Event()
        commits = failed_commits = 0

        def hold_the_first(conn: Connection) -> None:  # "begin", in the writer
            if not held.is_set():
                held.set()
                release.wait(10)

        def count(conn: Connection) -> None:  # "commit", in the writer
            nonlocal commits, failed_commits
            commits += 1
            if first_commit_fails and commits == 2 and not failed_commits:
                failed_commits += 1
                raise RuntimeError("the shared commit failed")

        event.listen(store.engine, "begin", hold_the_first)
        event.listen(store.engine, "commit", count)

        outcomes = Outcomes()
        attempt = outcomes.attempt

        def begin_in(principal: Principal, cid: str, text: str) -> Awaitable[object]:
            return store.begin_turn(
                principal,
                assistant="helper",
                model="fake:echo",
                conversation_id=cid,
                new_messages=[Message("user", text)],
            )

        async with anyio.create_task_group() as tg:
            # The first write holds the writer until everything else has queued behind it.
            tg.start_soon(attempt, "first", new_conversation(store, text="first"))
            await anyio.to_thread.run_sync(held.wait, 10)
            for i in range(8):
                tg.start_soon(attempt, "new", new_conversation(store, text=f"new {i}"))
                tg.start_soon(attempt, "missing", begin_in(ALICE, "conv_missing", "hi"))
                tg.start_soon(attempt, "stranger", begin_in(BOB, kept, "let me in"))
                tg.start_soon(attempt, "finished", finish(store, done_turn, "again"))
            tg.start_soon(attempt, "follow-up", begin_in(ALICE, kept, "follow-up"))
            tg.start_soon(attempt, "finish kept", finish(store, kept_turn, "kept answer"))
            tg.start_soon(attempt, "finish kept", finish(store, kept_turn, "second answer"))
            tg.start_soon(attempt, "unknown", finish(store, "turn_unknown"))
            tg.start_soon(attempt, "delete", store.delete_conversation(doomed, ALICE))
            tg.start_soon(attempt, "finish doomed", finish(store, doomed_turn))
            tg.start_soon(attempt, "delete missing", store.delete_conversation("conv_x", ALICE))
            # Each call queues its write as soon as its task first runs.
            await anyio.sleep(0.05)
            release.set()

        if first_commit_fails:
            # The first write; the shared commit, which failed; then each of the 39 writes
            # again alone, of which the 11 that succeed commit (the others roll back).
            assert (failed_commits, commits) == (1, 1 + 1 + 11)
        else:
            assert commits == 2  # the first write alone, then all the others together
        assert [type(r) for r in outcomes["first"]] == [tuple]
        assert [type(r) for r in outcomes["new"]] == [tuple] * 8
        assert outcomes["missing"] == outcomes["stranger"] == [ConversationNotFound] * 8
        assert outcomes["finished"] == [NotFound] * 8
        assert outcomes["unknown"] == [NotFound]
        assert outcomes["delete"] == [None]
        assert outcomes["delete missing"] == [ConversationNotFound]
        assert outcomes["finish doomed"] == [NotFound]  # queued after the delete
        assert outcomes["finish kept"] == [None, NotFound]  # in the order they were asked
        [follow_up] = outcomes["follow-up"]
        assert isinstance(follow_up, tuple)
        same, follow_up_turn = follow_up
        assert same == kept

        # What was stored is what the successful calls wrote, once each; nothing else.
        listed = await store.list_conversations(ALICE, limit=100)
        assert sorted(c.title for c in listed) == sorted(
            ["kept", "done", "first", *(f"new {i}" for i in range(8))]
        )
        assert await store.list_conversations(BOB) == []
        assert [m.content for m in await store.load_history(kept, ALICE)] == [
            "kept",
            "follow-up",
            "kept answer",
        ]
        _, _, turns = await store.get_conversation(kept, ALICE)
        assert {t.id: t.status for t in turns} == {kept_turn: "done", follow_up_turn: "running"}
        assert count_rows(store, doomed) == {
            "conversations": 0,
            "turns": 0,
            "messages": 0,
            "tool_runs": 0,
        }
        with store.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(t_turns)).scalar_one() == 12
            # kept: 3 (its first message, the follow-up, one answer); done: 2; first; new.
            assert conn.execute(select(func.count()).select_from(t_messages)).scalar_one() == (
                3 + 2 + 1 + 8
            )
    finally:
        await store.close()


async def test_sqlite_file_is_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "folder" / "graft.db"
    store = SQLStore(f"sqlite:///{path}")
    await store.start()
    try:
        await new_conversation(store)
        assert path.exists()
        with store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() > 0
        # WAL is a property of the file: a plain sqlite3 connection sees it too.
        import sqlite3

        with sqlite3.connect(path) as raw:
            assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        raw.close()
    finally:
        await store.close()


async def test_in_memory_sqlite_url_works() -> None:
    store = SQLStore("sqlite://")
    await store.start()
    try:
        cid, tid = await new_conversation(store)
        await finish(store, tid)
        assert len(await store.load_history(cid, ALICE)) == 2
    finally:
        await store.close()


def test_postgres_urls_use_psycopg() -> None:
    for url in ("postgresql://u@db.example/graft", "postgres://u@db.example/graft"):
        assert SQLStore(url).engine.url.drivername == "postgresql+psycopg"


def test_sqlite_urls_use_sqlite3(tmp_path: Path) -> None:
    store = SQLStore(f"sqlite:///{tmp_path / 'x.db'}")
    assert store.engine.dialect.name == "sqlite"
    assert store.engine.dialect.driver == "pysqlite"
    assert repr(store) == f"SQLStore('sqlite:///{tmp_path / 'x.db'}')"
    with pytest.raises(ConfigError, match="sqlite3"):
        SQLStore(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")


def test_postgres_without_psycopg_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # makes `import psycopg` fail
    with pytest.raises(ConfigError, match=r'pip install "graft\[postgres\]"'):
        SQLStore("postgresql://u@db.example/graft")


def test_open_store_picks_the_implementation(tmp_path: Path) -> None:
    assert isinstance(open_store("memory://"), MemoryStore)
    sql = open_store(f"sqlite:///{tmp_path / 'x.db'}")
    assert isinstance(sql, SQLStore)
    assert isinstance(sql, Store) and isinstance(MemoryStore(), Store)


# --- users and keys -------------------------------------------------------------------------


async def test_users_are_unique_per_tenant_and_listed_in_order(store: Store) -> None:
    assert not await store.has_users()
    ann = await store.create_user(tenant="acme", name="ann", roles=["user"], groups=["sales"])
    assert ann.active and ann.roles == ("user",) and ann.groups == ("sales",)
    await store.create_user(tenant="globex", name="ann", roles=["admin"], groups=[])
    await store.create_user(tenant="acme", name="Åsa 王", roles=["builder"], groups=["研发"])
    with pytest.raises(Conflict, match="already has a user 'ann'"):
        await store.create_user(tenant="acme", name="ann", roles=[], groups=[])
    assert await store.has_users()
    assert [(u.tenant, u.name) for u in await store.list_users()] == [
        ("acme", "ann"),
        ("acme", "Åsa 王"),
        ("globex", "ann"),
    ]
    assert [u.name for u in await store.list_users("globex")] == ["ann"]
    assert (await store.get_user("acme", "Åsa 王")).groups == ("研发",)
    with pytest.raises(NotFound, match="no user 'bob'"):
        await store.get_user("acme", "bob")


async def test_disabling_a_user_keeps_the_first_time(store: Store) -> None:
    await store.create_user(tenant="acme", name="ann", roles=["user"], groups=[])
    disabled = await store.set_user_disabled("acme", "ann", True)
    assert not disabled.active
    again = await store.set_user_disabled("acme", "ann", True)
    assert again.disabled_at == disabled.disabled_at
    assert (await store.get_user("acme", "ann")).disabled_at == disabled.disabled_at
    assert (await store.set_user_disabled("acme", "ann", False)).active
    with pytest.raises(NotFound):
        await store.set_user_disabled("acme", "nobody", True)


async def test_keys_are_found_by_id_listed_and_revoked_within_their_tenant(store: Store) -> None:
    ann = await store.create_user(tenant="acme", name="ann", roles=["builder"], groups=["g"])
    bob = await store.create_user(tenant="globex", name="bob", roles=["user"], groups=[])
    first = await store.create_key(
        ann,
        key_id="gk_000000000001",
        sha256="a" * 64,
        name="laptop",
        roles=["builder"],
        created_by="cli:root",
    )
    await store.create_key(
        bob, key_id="gk_000000000002", sha256="b" * 64, name="", roles=[], created_by="cli:root"
    )
    found = await store.find_key("gk_000000000001")
    assert found is not None and found.sha256 == "a" * 64
    assert found.info == first and found.user.name == "ann" and found.user.groups == ("g",)
    assert await store.find_key("gk_999999999999") is None
    assert [k.id for k in await store.list_keys("acme")] == ["gk_000000000001"]
    assert [k.id for k in await store.list_keys(user="bob")] == ["gk_000000000002"]
    assert len(await store.list_keys()) == 2
    # Another tenant's key does not exist for that tenant's admin.
    with pytest.raises(NotFound):
        await store.revoke_key("gk_000000000002", "acme")
    revoked = await store.revoke_key("gk_000000000001", "acme")
    assert revoked.revoked_at is not None
    assert (await store.revoke_key("gk_000000000001")).revoked_at == revoked.revoked_at
    # The user's state travels with the key: a disabled user's key says so.
    await store.set_user_disabled("acme", "ann", True)
    found = await store.find_key("gk_000000000001")
    assert found is not None and not found.user.active and found.info.revoked_at is not None

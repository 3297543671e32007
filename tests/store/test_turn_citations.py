"""A turn's citations in every Store (memory, SQLite, PostgreSQL), and migration 0010.

``finish_turn(citations=...)`` keeps the passages the answer cited with the turn;
``get_conversation`` and the privacy export give them back. The backends come from this
folder's ``conftest.py``; sealing at rest is tested in ``test_encryption.py``.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from alembic import command
from alembic.config import Config
from sqlalchemy import select, update

from graft.context import Principal
from graft.messages import Message, Usage
from graft.store import Store
from graft.store.sql import SQLStore, t_turns
from graft.store.turn_citations import decode_citations, encode_citations

ALICE = Principal("alice", tenant="acme")
BOB = Principal("bob", tenant="acme")

CITED: list[dict[str, Any]] = [
    {
        "n": 1,
        "document_id": "doc_a",
        "chunk_id": 3,
        "link": "/v1/knowledge/documents/doc_a#chunk-3",
        "collection": "handbook",
        "title": "Leave policy",
        "source": "leave.md",
        "section": "Sick leave",
        "page": None,
        "char_start": 0,
        "char_end": 42,
        "text": "Employees get ten days of sick leave — 十天病假.",
    },
    {
        "n": 3,
        "document_id": "doc_b",
        "chunk_id": 9,
        "link": "https://intranet.example/travel",
        "title": "Travel",
        "text": "Book trains, not planes.",
    },
]


async def turn(
    store: Store,
    citations: list[dict[str, Any]] | None,
    *,
    conversation_id: str | None = None,
    error: str | None = None,
) -> tuple[str, str]:
    """One finished turn of Alice's with these citations; ``(conversation_id, turn_id)``."""
    cid, tid = await store.begin_turn(
        ALICE,
        assistant="helper",
        model="fake:echo",
        conversation_id=conversation_id,
        new_messages=[Message("user", "how much sick leave?")],
    )
    await store.finish_turn(
        tid,
        messages=[Message("assistant", "Ten days [1], by train [3].")],
        tool_runs=[],
        usage=Usage(5, 2),
        finish_reason=None if error else "stop",
        duration_ms=3.0,
        error=error,
        citations=citations,
    )
    return cid, tid


async def test_a_turns_citations_come_back_with_the_conversation(store: Store) -> None:
    cid, tid = await turn(store, CITED)
    _, second = await turn(store, None, conversation_id=cid)
    _, _, turns = await store.get_conversation(cid, ALICE)
    assert [(t.id, t.citations) for t in turns] == [(tid, CITED), (second, [])]


async def test_an_empty_list_and_none_both_store_nothing(store: Store) -> None:
    cid, _ = await turn(store, [])
    [info] = (await store.get_conversation(cid, ALICE))[2]
    assert info.citations == []


async def test_a_failed_turn_keeps_what_it_cited(store: Store) -> None:
    cid, _ = await turn(store, CITED[:1], error="the client went away before the turn finished")
    [info] = (await store.get_conversation(cid, ALICE))[2]
    assert (info.status, info.citations) == ("failed", CITED[:1])


async def test_stored_citations_are_copies(store: Store) -> None:
    given = json.loads(json.dumps(CITED))
    cid, _ = await turn(store, given)
    given[0]["title"] = "changed by the caller"
    [info] = (await store.get_conversation(cid, ALICE))[2]
    info.citations[1]["title"] = "changed by the reader"
    [again] = (await store.get_conversation(cid, ALICE))[2]
    assert again.citations == CITED


async def test_another_user_does_not_see_them(store: Store) -> None:
    cid, _ = await turn(store, CITED)
    assert (await store.list_conversations(BOB)) == []
    export = await store.export_user_data("acme", "bob")
    assert export["conversations"] == []
    mine = await store.export_user_data("acme", "alice")
    assert [t["citations"] for c in mine["conversations"] for t in c["turns"]] == [CITED]
    assert mine["conversations"][0]["id"] == cid
    json.dumps(mine)  # serialisable as it is


async def test_a_citation_json_cannot_hold_is_refused_before_the_turn_is_stored(
    store: Store,
) -> None:
    cid, tid = await store.begin_turn(
        ALICE,
        assistant="helper",
        model="fake:echo",
        conversation_id=None,
        new_messages=[Message("user", "hi")],
    )
    with pytest.raises(TypeError):
        await store.finish_turn(
            tid,
            messages=[Message("assistant", "hello")],
            tool_runs=[],
            usage=Usage(1, 1),
            finish_reason="stop",
            duration_ms=1.0,
            citations=[{"n": 1, "bad": {1, 2}}],
        )
    [info] = (await store.get_conversation(cid, ALICE))[2]
    assert info.status == "running"  # nothing half-stored: the turn can still finish


def test_encoding_round_trips_and_skips_what_is_not_a_citation() -> None:
    assert encode_citations(None) is None
    assert encode_citations([]) is None
    assert decode_citations(encode_citations(CITED)) == CITED
    assert decode_citations(None) == []
    assert decode_citations('[{"n": 1}, 2, "x"]') == [{"n": 1}]
    assert decode_citations('{"n": 1}') == []


# --- migration 0010 (SQL stores) --------------------------------------------------------------


def _alembic(store: SQLStore, action: str, revision: str) -> None:
    config = Config()
    config.set_main_option("script_location", "graft.store:migrations")
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)


async def test_migration_0010_adds_and_drops_the_column_and_keeps_the_turns(sql_url: str) -> None:
    store = SQLStore(sql_url)  # no keys: the raw column is the JSON text
    await store.start()
    try:
        cid, tid = await turn(store, CITED)
        with store.engine.connect() as conn:
            stored = conn.execute(select(t_turns.c.citations)).scalar_one()
        assert json.loads(stored) == CITED

        _alembic(store, "downgrade", "0009")
        with store.engine.connect() as conn:
            columns = conn.exec_driver_sql("SELECT * FROM turns").keys()
        assert "citations" not in columns
        _alembic(store, "upgrade", "head")

        # The turn, its messages and the rest survive; the citations dropped with the column.
        history = await store.load_history(cid, ALICE)
        assert [m.content for m in history] == [
            "how much sick leave?",
            "Ten days [1], by train [3].",
        ]
        [info] = (await store.get_conversation(cid, ALICE))[2]
        assert (info.id, info.status, info.citations) == (tid, "done", [])

        with store.engine.begin() as conn:  # a turn stored before 0010 has NULL: no citations
            conn.execute(update(t_turns).values(citations=None))
        assert (await store.get_conversation(cid, ALICE))[2][0].citations == []
    finally:
        await store.close()

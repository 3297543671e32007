"""Renaming conversations and finding them by title, in every store.

Titles are encrypted at rest in the SQL stores, so a search compares them decrypted: these
tests check that it ignores case, pages through the matches alone, and never finds another
user's conversations; and that a rename is one line, bounded, sealed, and leaves the
conversation's place in the list alone.
"""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from graft.context import Principal
from graft.crypto import DataKeys, key_id_of
from graft.errors import ConversationNotFound, InvalidRequest
from graft.messages import Message
from graft.store import Store
from graft.store.base import TITLE_MAX
from graft.store.schema import t_conversations
from graft.store.sql import SQLStore

ALICE = Principal("alice", tenant="acme")
BOB = Principal("bob", tenant="acme")
ALICE_ELSEWHERE = Principal("alice", tenant="globex")


async def conversation(store: Store, text: str, principal: Principal = ALICE) -> str:
    cid, _ = await store.begin_turn(
        principal,
        assistant="helper",
        model="fake:echo",
        conversation_id=None,
        new_messages=[Message("user", text)],
    )
    await asyncio.sleep(0.002)  # distinct updated_at: the list's order is certain
    return cid


async def titles(
    store: Store,
    principal: Principal = ALICE,
    *,
    query: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[str]:
    found = await store.list_conversations(principal, limit=limit, offset=offset, query=query)
    return [c.title for c in found]


# --- search ---------------------------------------------------------------------------------


async def test_search_keeps_titles_that_contain_the_query_ignoring_case(store: Store) -> None:
    for text in ("Trip to Paris", "Tax return 2025", "paris hotels", "Große Straße", "misc"):
        await conversation(store, text)
    await conversation(store, "Paris for bob", BOB)
    await conversation(store, "Paris in globex", ALICE_ELSEWHERE)

    assert await titles(store, query="PARIS") == ["paris hotels", "Trip to Paris"]
    assert await titles(store, query="strasse") == ["Große Straße"]  # casefolded
    assert await titles(store, query="nothing like it") == []
    assert await titles(store, query=None) == await titles(store)
    assert await titles(store, query="") == await titles(store)
    assert await titles(store, BOB, query="paris") == ["Paris for bob"]


async def test_search_pages_through_the_matches_alone(store: Store) -> None:
    for n in range(7):
        await conversation(store, f"report {n}")
        await conversation(store, f"other {n}")
    newest_first = [f"report {n}" for n in reversed(range(7))]

    pages = [await titles(store, query="Report", limit=3, offset=o) for o in (0, 3, 6, 9)]

    assert pages == [newest_first[:3], newest_first[3:6], newest_first[6:], []]
    assert await titles(store, query="report", limit=0) == []
    with pytest.raises(InvalidRequest):
        await store.list_conversations(ALICE, query="report", offset=-1)


# --- rename ---------------------------------------------------------------------------------


async def test_rename_sets_a_one_line_title_and_keeps_the_order(store: Store) -> None:
    older = await conversation(store, "first question")
    await conversation(store, "second question")
    before = (await store.get_conversation(older, ALICE))[0]

    info = await store.rename_conversation(older, ALICE, "  Budget\n  planning\t2026 ")

    assert (info.id, info.title) == (older, "Budget planning 2026")
    assert info.updated_at == before.updated_at  # a new name is not a new turn
    assert await titles(store) == ["second question", "Budget planning 2026"]
    assert (await store.get_conversation(older, ALICE))[0].title == "Budget planning 2026"
    assert await titles(store, query="budget") == ["Budget planning 2026"]
    # A later turn does not take the name back.
    await store.begin_turn(
        ALICE,
        assistant="helper",
        model="fake:echo",
        conversation_id=older,
        new_messages=[Message("user", "and more")],
    )
    assert (await store.get_conversation(older, ALICE))[0].title == "Budget planning 2026"


async def test_rename_refuses_empty_and_long_titles(store: Store) -> None:
    cid = await conversation(store, "question")
    assert (await store.rename_conversation(cid, ALICE, "é" * TITLE_MAX)).title == "é" * TITLE_MAX
    for bad, message in (
        ("", "title must not be empty"),
        (" \n\t ", "title must not be empty"),
        ("x" * (TITLE_MAX + 1), "title is 201 characters long; the limit is 200"),
    ):
        with pytest.raises(InvalidRequest, match=message) as err:
            await store.rename_conversation(cid, ALICE, bad)
        assert err.value.param == "title"
    assert await titles(store) == ["é" * TITLE_MAX]


async def test_only_the_owner_may_rename(store: Store) -> None:
    cid = await conversation(store, "mine")
    for stranger in (BOB, ALICE_ELSEWHERE):
        with pytest.raises(ConversationNotFound):
            await store.rename_conversation(cid, stranger, "theirs now")
    with pytest.raises(ConversationNotFound):
        await store.rename_conversation("conv_unknown", ALICE, "nothing")
    assert await titles(store) == ["mine"]


async def test_a_new_title_is_sealed_at_rest(sql_store: SQLStore, data_keys: DataKeys) -> None:
    cid = await conversation(sql_store, "question")
    await sql_store.rename_conversation(cid, ALICE, "Nightjar 机密 plans")
    with sql_store.engine.connect() as conn:
        stored = conn.execute(select(t_conversations.c.title)).scalar_one()
    assert key_id_of(stored) == data_keys.current_id
    assert "Nightjar" not in stored and "机密" not in stored
    assert await titles(sql_store, query="nightjar") == ["Nightjar 机密 plans"]

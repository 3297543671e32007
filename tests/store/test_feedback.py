"""Feedback in every store (in memory, SQLite, PostgreSQL): users rate their own turns.

One rating per user and turn, replaced when given again; only the conversation's owner may
rate its turns; ratings go with their conversation (deletion, erasure, retention), are in
the owner's export, and list per tenant, newest first, for admins. In the SQL stores the
comment is sealed at rest like the messages.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select
from tests.store.conftest import finished_turn

from graft.context import Principal
from graft.crypto import DataKeys, key_id_of
from graft.errors import InvalidRequest, NotFound
from graft.store import Store
from graft.store.base import COMMENT_LENGTH
from graft.store.schema import t_feedback
from graft.store.sql import SQLStore

ALICE = Principal("alice", tenant="acme")
BOB = Principal("bob", tenant="acme")
ALICE_ELSEWHERE = Principal("alice", tenant="globex")


def feedback_rows(store: SQLStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t_feedback)).scalar_one())


# --- giving, replacing, taking back ---------------------------------------------------------


async def test_a_rating_round_trips_and_shows_on_its_conversation(store: Store) -> None:
    cid, tid = await finished_turn(store, ALICE)
    _, other = await finished_turn(store, ALICE, "again", conversation_id=cid)

    given = await store.put_feedback(ALICE, tid, "down", "wrong 北门 gate")

    assert (given.turn_id, given.conversation_id, given.rating) == (tid, cid, "down")
    assert (given.tenant, given.user_id, given.assistant) == ("acme", "alice", "helper")
    assert given.comment == "wrong 北门 gate"
    assert given.id.startswith("fb_") and given.created_at == given.updated_at
    assert given.created_at.utcoffset() == timedelta(0)
    assert await store.get_feedback_for(cid, ALICE) == {tid: given}
    assert other not in await store.get_feedback_for(cid, ALICE)
    assert given.to_json() == {
        "id": given.id,
        "object": "feedback",
        "turn_id": tid,
        "conversation_id": cid,
        "rating": "down",
        "comment": "wrong 北门 gate",
        "created_at": given.created_at.isoformat(),
        "updated_at": given.updated_at.isoformat(),
    }


async def test_giving_it_again_replaces_it_and_keeps_its_id(store: Store) -> None:
    cid, tid = await finished_turn(store, ALICE)
    first = await store.put_feedback(ALICE, tid, "down", "bad")
    await asyncio.sleep(0.01)

    second = await store.put_feedback(ALICE, tid, "up")

    assert (second.id, second.created_at) == (first.id, first.created_at)
    assert (second.rating, second.comment) == ("up", None)
    assert second.updated_at > first.updated_at
    assert await store.get_feedback_for(cid, ALICE) == {tid: second}
    assert [f.id for f in await store.list_feedback("acme")] == [first.id]


async def test_an_empty_comment_is_none_and_the_limit_is_exact(store: Store) -> None:
    _, tid = await finished_turn(store, ALICE)
    assert (await store.put_feedback(ALICE, tid, "up", "")).comment is None
    assert (await store.put_feedback(ALICE, tid, "up", "  \n")).comment is None
    longest = "é" * COMMENT_LENGTH
    assert (await store.put_feedback(ALICE, tid, "up", longest)).comment == longest
    with pytest.raises(InvalidRequest, match="comment is 4001 characters long; the limit is 4000"):
        await store.put_feedback(ALICE, tid, "up", longest + "!")


async def test_a_rating_must_be_up_or_down(store: Store) -> None:
    _, tid = await finished_turn(store, ALICE)
    with pytest.raises(InvalidRequest, match="rating must be 'up' or 'down', not 'meh'") as err:
        await store.put_feedback(ALICE, tid, "meh")  # type: ignore[arg-type]
    assert err.value.param == "rating"
    assert await store.list_feedback("acme") == []


async def test_only_the_owner_of_the_conversation_may_rate_its_turns(store: Store) -> None:
    cid, tid = await finished_turn(store, ALICE)
    for stranger in (BOB, ALICE_ELSEWHERE):
        with pytest.raises(NotFound) as err:
            await store.put_feedback(stranger, tid, "down", "not mine")
        assert err.value.code == "turn_not_found"
        assert await store.get_feedback_for(cid, stranger) == {}
    with pytest.raises(NotFound):
        await store.put_feedback(ALICE, "turn_unknown", "up")
    assert await store.list_feedback("acme") == []
    assert await store.list_feedback("globex") == []


async def test_taking_a_rating_back(store: Store) -> None:
    cid, tid = await finished_turn(store, ALICE)
    await store.put_feedback(ALICE, tid, "up")

    assert await store.delete_feedback(BOB, tid) is False  # not bob's to take back
    assert await store.delete_feedback(ALICE_ELSEWHERE, tid) is False
    assert tid in await store.get_feedback_for(cid, ALICE)

    assert await store.delete_feedback(ALICE, tid) is True
    assert await store.delete_feedback(ALICE, tid) is False
    assert await store.get_feedback_for(cid, ALICE) == {}
    again = await store.put_feedback(ALICE, tid, "down")  # and given anew
    assert again.rating == "down"


# --- the admins' list -----------------------------------------------------------------------


async def test_the_tenants_list_is_newest_first_filtered_and_paged(store: Store) -> None:
    given = []
    for n, (who, rating) in enumerate(
        [(ALICE, "up"), (BOB, "down"), (ALICE, "down"), (BOB, "up"), (ALICE, "up")]
    ):
        _, tid = await finished_turn(store, who, f"question {n}", assistant=f"a{n % 2}")
        given.append(await store.put_feedback(who, tid, rating, f"comment {n}"))
        await asyncio.sleep(0.002)  # ids sort by the millisecond
    _, theirs = await finished_turn(store, ALICE_ELSEWHERE)
    await store.put_feedback(ALICE_ELSEWHERE, theirs, "down", "globex's")
    newest_first = [f.id for f in reversed(given)]

    everything = await store.list_feedback("acme")
    assert [f.id for f in everything] == newest_first
    assert [f.comment for f in everything][:2] == ["comment 4", "comment 3"]
    assert [f.assistant for f in everything] == ["a0", "a1", "a0", "a1", "a0"]
    assert [f.id for f in await store.list_feedback("acme", rating="down")] == [
        given[2].id,
        given[1].id,
    ]
    first = await store.list_feedback("acme", limit=2)
    rest = await store.list_feedback("acme", after=first[-1].id, limit=2)
    last = await store.list_feedback("acme", after=rest[-1].id, limit=2)
    assert [f.id for f in first + rest + last] == newest_first
    assert await store.list_feedback("acme", after=last[-1].id) == []
    assert await store.list_feedback("acme", limit=0) == []
    assert [f.comment for f in await store.list_feedback("globex")] == ["globex's"]
    with pytest.raises(InvalidRequest):
        await store.list_feedback("acme", limit=-1)
    with pytest.raises(InvalidRequest, match="rating must be"):
        await store.list_feedback("acme", rating="sideways")  # type: ignore[arg-type]


# --- going with the conversation ------------------------------------------------------------


async def test_deleting_the_conversation_deletes_its_ratings(store: Store) -> None:
    cid, tid = await finished_turn(store, ALICE)
    _, kept = await finished_turn(store, ALICE, "another")
    await store.put_feedback(ALICE, tid, "down", "gone with it")
    await store.put_feedback(ALICE, kept, "up")

    await store.delete_conversation(cid, ALICE)

    assert [f.turn_id for f in await store.list_feedback("acme")] == [kept]
    assert await store.get_feedback_for(cid, ALICE) == {}
    if isinstance(store, SQLStore):
        assert feedback_rows(store) == 1


async def test_erasure_and_retention_delete_ratings(store: Store) -> None:
    _, alices = await finished_turn(store, ALICE)
    _, bobs = await finished_turn(store, BOB, assistant="short-lived")
    _, elsewhere = await finished_turn(store, ALICE_ELSEWHERE)
    for who, tid in ((ALICE, alices), (BOB, bobs), (ALICE_ELSEWHERE, elsewhere)):
        await store.put_feedback(who, tid, "up", "thanks")

    assert await store.delete_user_data("acme", "alice") == 1
    assert [f.turn_id for f in await store.list_feedback("acme")] == [bobs]

    future = datetime.now(UTC) + timedelta(days=1)
    assert await store.purge_conversations("short-lived", older_than=future) == 1
    assert await store.list_feedback("acme") == []
    assert [f.turn_id for f in await store.list_feedback("globex")] == [elsewhere]


async def test_the_export_has_the_users_rating_of_each_turn(store: Store) -> None:
    cid, rated = await finished_turn(store, ALICE)
    _, unrated = await finished_turn(store, ALICE, "more", conversation_id=cid)
    given = await store.put_feedback(ALICE, rated, "down", "off by one")

    [exported] = (await store.export_user_data("acme", "alice"))["conversations"]

    assert [t["id"] for t in exported["turns"]] == [rated, unrated]
    assert exported["turns"][0]["feedback"] == {
        "rating": "down",
        "comment": "off by one",
        "created_at": given.created_at.isoformat(),
        "updated_at": given.updated_at.isoformat(),
    }
    assert exported["turns"][1]["feedback"] is None


# --- the SQL stores -------------------------------------------------------------------------


async def test_the_comment_is_sealed_at_rest(sql_store: SQLStore, data_keys: DataKeys) -> None:
    cid, tid = await finished_turn(sql_store, ALICE)
    await sql_store.put_feedback(ALICE, tid, "down", "Nightjar: 机密 feedback")
    with sql_store.engine.connect() as conn:
        [(stored, rating)] = conn.execute(select(t_feedback.c.comment, t_feedback.c.rating)).all()
    assert key_id_of(stored) == data_keys.current_id
    assert "Nightjar" not in stored and "机密" not in stored
    assert rating == "down"  # a rating is metadata, stored as is
    [got] = (await sql_store.get_feedback_for(cid, ALICE)).values()
    assert got.comment == "Nightjar: 机密 feedback"


async def test_one_row_per_user_and_turn_under_concurrent_ratings(sql_store: SQLStore) -> None:
    _, tid = await finished_turn(sql_store, ALICE)
    ratings = ["up", "down"] * 5
    done = await asyncio.gather(*(sql_store.put_feedback(ALICE, tid, r) for r in ratings))  # type: ignore[arg-type]
    assert len({f.id for f in done}) == 1
    assert feedback_rows(sql_store) == 1

"""Sentiment tags in every Store (memory, SQLite, PostgreSQL): stored, read, reported, deleted.

The backends come from this folder's ``conftest.py``. Reports need tags dated at known
times: a tag is dated when its turn began, so the tests set the stores' clock
(``graft.store.sql.datetime`` and ``graft.store.memory.datetime``) before each turn.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import pytest
from sqlalchemy import func, select
from tests.store.conftest import finished_turn

from graft.context import Principal
from graft.errors import ConversationNotFound, InvalidRequest, NotFound
from graft.messages import Message
from graft.store import Store
from graft.store import memory as memory_mod
from graft.store import sql as sql_mod
from graft.store.base import SentimentPoint, SentimentTag
from graft.store.schema import t_sentiments
from graft.store.sql import SQLStore

ALICE = Principal("alice", tenant="acme")
BOB = Principal("bob", tenant="acme")
ALICE_ELSEWHERE = Principal("alice", tenant="globex")

SAD = SentimentTag("negative", 0.9, "e5", "sadness")
MEH = SentimentTag("neutral", 0.6, "lexicon (fallback)")
GLAD = SentimentTag("positive", 0.8, "e5", "joy")

# A Monday.
T0 = datetime(2026, 3, 2, 9, 15, tzinfo=UTC)


class Clock(datetime):
    """The stores' ``datetime``: ``now()`` is ``at``, which the test sets."""

    at = T0

    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
        return cls.at if tz is None else cls.at.astimezone(tz)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> type[Clock]:
    monkeypatch.setattr(Clock, "at", T0)
    monkeypatch.setattr(sql_mod, "datetime", Clock)
    monkeypatch.setattr(memory_mod, "datetime", Clock)
    return Clock


async def turn(
    store: Store,
    principal: Principal,
    text: str = "hello",
    *,
    assistant: str = "helper",
    conversation_id: str | None = None,
    tag: SentimentTag | None = None,
    new_messages: list[Message] | None = None,
) -> tuple[str, str]:
    """One finished turn, tagged with ``tag`` if given; ``(conversation_id, turn_id)``."""
    cid, tid = await finished_turn(
        store,
        principal,
        text,
        assistant=assistant,
        conversation_id=conversation_id,
        new_messages=new_messages,
    )
    if tag is not None:
        await store.tag_sentiment(tid, tag)
    return cid, tid


def sentiment_rows(store: SQLStore) -> int:
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(t_sentiments)).scalar_one())


# --- tagging and reading back ---------------------------------------------------------------


async def test_the_tag_shows_on_the_last_user_message_of_its_turn(store: Store) -> None:
    cid, first = await turn(
        store,
        ALICE,
        new_messages=[
            Message("system", "be kind"),
            Message("user", "earlier words"),
            Message("user", "the question"),
        ],
    )
    await turn(store, ALICE, "untagged", conversation_id=cid)
    _, third = await turn(store, ALICE, "again", conversation_id=cid)
    await store.tag_sentiment(first, SAD)
    await store.tag_sentiment(third, GLAD)

    _, messages, _ = await store.get_conversation(cid, ALICE)

    assert [(m.message.content, m.sentiment) for m in messages] == [
        ("be kind", None),
        ("earlier words", None),
        ("the question", SAD),
        ("re: hello", None),
        ("untagged", None),
        ("re: untagged", None),
        ("again", GLAD),
        ("re: again", None),
    ]


async def test_tagging_again_replaces_the_tag(store: Store) -> None:
    cid, tid = await turn(store, ALICE, tag=SAD)
    await store.tag_sentiment(tid, MEH)
    assert await store.recent_sentiments(cid, 5) == [MEH]
    _, messages, _ = await store.get_conversation(cid, ALICE)
    assert messages[0].sentiment == MEH
    if isinstance(store, SQLStore):
        assert sentiment_rows(store) == 1


async def test_a_tag_needs_a_turn_and_a_label_score_and_lengths_the_table_holds(
    store: Store,
) -> None:
    with pytest.raises(NotFound) as caught:
        await store.tag_sentiment("turn_missing", SAD)
    assert caught.value.code == "turn_not_found"
    _, tid = await turn(store, ALICE)
    for bad in (
        SentimentTag("angry", 0.5, "e5"),
        SentimentTag("negative", 1.5, "e5"),
        SentimentTag("negative", float("nan"), "e5"),
        SentimentTag("negative", 0.5, "e5", "x" * 33),
        SentimentTag("negative", 0.5, "x" * 256),
    ):
        with pytest.raises(ValueError):
            await store.tag_sentiment(tid, bad)
    await store.tag_sentiment(tid, SentimentTag("negative", 1.0, "x" * 255, "y" * 32))


async def test_recent_sentiments_are_the_conversations_newest_first(
    store: Store, clock: type[Clock]
) -> None:
    clock.at = T0
    cid, _ = await turn(store, ALICE, tag=SAD)
    clock.at = T0 + timedelta(minutes=1)
    await turn(store, ALICE, conversation_id=cid, tag=MEH)
    clock.at = T0 + timedelta(minutes=2)
    await turn(store, ALICE, conversation_id=cid)  # untagged
    clock.at = T0 + timedelta(minutes=3)
    _, last = await turn(store, ALICE, conversation_id=cid, tag=SAD)
    await turn(store, ALICE, tag=GLAD)  # another conversation
    # Tagged again later: still dated when its turn began, so still the newest.
    await store.tag_sentiment(last, GLAD)

    assert await store.recent_sentiments(cid, 10) == [GLAD, MEH, SAD]
    assert await store.recent_sentiments(cid, 2) == [GLAD, MEH]
    assert await store.recent_sentiments(cid, 0) == []
    assert await store.recent_sentiments("conv_missing", 5) == []
    with pytest.raises(InvalidRequest):
        await store.recent_sentiments(cid, -1)


# --- reports --------------------------------------------------------------------------------


async def test_a_report_counts_and_averages_per_day_and_assistant(
    store: Store, clock: type[Clock]
) -> None:
    clock.at = T0
    alice, _ = await turn(store, ALICE, tag=SAD)
    clock.at = T0 + timedelta(hours=1)
    await turn(store, ALICE, conversation_id=alice, tag=GLAD)
    await turn(store, BOB, tag=MEH)
    await turn(store, BOB, assistant="other", tag=GLAD)
    await turn(store, ALICE)  # untagged: not counted
    clock.at = T0 + timedelta(days=1)
    await turn(store, ALICE, conversation_id=alice, tag=SAD)
    await turn(store, ALICE_ELSEWHERE, tag=GLAD)  # another tenant

    points = await store.sentiment_report("acme")

    day = T0.replace(hour=0, minute=0)
    assert points == [
        SentimentPoint(day, "helper", None, 1, 1, 1, pytest.approx((-0.9 + 0.8) / 3)),
        SentimentPoint(day, "other", None, 0, 0, 1, pytest.approx(0.8)),
        SentimentPoint(day + timedelta(days=1), "helper", None, 1, 0, 0, pytest.approx(-0.9)),
    ]
    assert all(p.start.tzinfo is not None for p in points)
    assert points[0].to_json() == {
        "start": "2026-03-02T00:00:00+00:00",
        "assistant": "helper",
        "conversation_id": None,
        "negative": 1,
        "neutral": 1,
        "positive": 1,
        "mean": -0.0333,
    }
    assert [(p.assistant, p.positive) for p in await store.sentiment_report("globex")] == [
        ("helper", 1)
    ]
    assert await store.sentiment_report("initech") == []


async def test_a_report_narrows_by_assistant_conversation_user_and_time(
    store: Store, clock: type[Clock]
) -> None:
    clock.at = T0
    alice, _ = await turn(store, ALICE, tag=SAD)
    bob, _ = await turn(store, BOB, tag=MEH)
    await turn(store, ALICE, assistant="other", tag=GLAD)
    clock.at = T0 + timedelta(hours=2)
    await turn(store, ALICE, conversation_id=alice, tag=GLAD)
    await turn(store, BOB, conversation_id=bob, tag=SAD)

    def shape(points: list[SentimentPoint]) -> list[tuple[int, str, str | None, int, int, int]]:
        hours = [int((p.start - T0.replace(minute=0)) / timedelta(hours=1)) for p in points]
        return [
            (h, p.assistant, p.conversation_id, p.negative, p.neutral, p.positive)
            for h, p in zip(hours, points, strict=True)
        ]

    by_hour = await store.sentiment_report("acme", bucket="hour")
    assert shape(by_hour) == [
        (0, "helper", None, 1, 1, 0),
        (0, "other", None, 0, 0, 1),
        (2, "helper", None, 1, 0, 1),
    ]
    assert shape(await store.sentiment_report("acme", assistant="other", bucket="hour")) == [
        (0, "other", None, 0, 0, 1)
    ]
    assert shape(await store.sentiment_report("acme", conversation_id=alice, bucket="hour")) == [
        (0, "helper", alice, 1, 0, 0),
        (2, "helper", alice, 0, 0, 1),
    ]
    assert shape(await store.sentiment_report("acme", user_id="bob", bucket="hour")) == [
        (0, "helper", None, 0, 1, 0),
        (2, "helper", None, 1, 0, 0),
    ]
    since = T0 + timedelta(hours=1)
    assert shape(await store.sentiment_report("acme", since=since, bucket="hour")) == [
        (2, "helper", None, 1, 0, 1)
    ]
    # Exactly at ``since`` counts.
    assert len(await store.sentiment_report("acme", since=T0, bucket="hour")) == 3
    # Another tenant's report never holds acme's, whatever it asks for.
    assert await store.sentiment_report("globex", conversation_id=alice) == []
    assert await store.sentiment_report("globex", user_id="alice") == []


async def test_a_report_ends_before_until(store: Store, clock: type[Clock]) -> None:
    clock.at = T0
    cid, _ = await turn(store, ALICE, tag=SAD)
    clock.at = T0 + timedelta(hours=2)
    await turn(store, ALICE, conversation_id=cid, tag=GLAD)
    clock.at = T0 + timedelta(days=1)
    await turn(store, ALICE, conversation_id=cid, tag=MEH)

    def counts(points: list[SentimentPoint]) -> list[tuple[int, int, int]]:
        return [(p.negative, p.neutral, p.positive) for p in points]

    hour = timedelta(hours=1)
    assert counts(await store.sentiment_report("acme", until=T0 + hour, bucket="hour")) == [
        (1, 0, 0)
    ]
    # Exactly at ``until`` does not count: [since, until) ranges never overlap.
    assert counts(await store.sentiment_report("acme", until=T0 + 2 * hour, bucket="hour")) == [
        (1, 0, 0)
    ]
    between = await store.sentiment_report(
        "acme", since=T0 + hour, until=T0 + timedelta(days=1), bucket="day"
    )
    assert counts(between) == [(0, 0, 1)]
    assert await store.sentiment_report("acme", since=T0, until=T0) == []  # an empty range
    assert counts(await store.sentiment_report("acme", until=T0 + timedelta(days=2))) == [
        (1, 0, 1),
        (0, 1, 0),
    ]
    # A zone other than UTC names the same moment.
    berlin = timezone(timedelta(hours=1))
    assert counts(
        await store.sentiment_report("acme", until=(T0 + hour).astimezone(berlin), bucket="hour")
    ) == [(1, 0, 0)]


async def test_weeks_start_on_monday_and_days_at_utc_midnight(
    store: Store, clock: type[Clock]
) -> None:
    sunday_night = T0 - timedelta(hours=10)  # Sunday 23:15 UTC, Monday in Berlin
    clock.at = sunday_night
    cid, _ = await turn(store, ALICE, tag=SAD)
    clock.at = T0  # Monday
    await turn(store, ALICE, conversation_id=cid, tag=GLAD)
    clock.at = T0 + timedelta(days=6, hours=14)  # Sunday 23:15
    await turn(store, ALICE, conversation_id=cid, tag=GLAD)

    weeks = await store.sentiment_report("acme", bucket="week")
    assert [(p.start, p.negative, p.positive) for p in weeks] == [
        (datetime(2026, 2, 23, tzinfo=UTC), 1, 0),
        (datetime(2026, 3, 2, tzinfo=UTC), 0, 2),
    ]
    days = await store.sentiment_report("acme", bucket="day")
    assert [p.start.day for p in days] == [1, 2, 8]
    hours = await store.sentiment_report("acme", bucket="hour")
    assert hours[0].start == datetime(2026, 3, 1, 23, tzinfo=UTC)


async def test_a_report_refuses_a_naive_since_and_an_unknown_bucket(store: Store) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        await store.sentiment_report("acme", since=datetime(2026, 3, 2))
    with pytest.raises(ValueError, match="until must be timezone-aware"):
        await store.sentiment_report("acme", until=datetime(2026, 3, 2))
    with pytest.raises(InvalidRequest) as caught:
        await store.sentiment_report("acme", since=T0, until=T0 - timedelta(seconds=1))
    assert caught.value.message == (
        "until (2026-03-02T09:14:59+00:00) is before since (2026-03-02T09:15:00+00:00)"
    )
    assert caught.value.param == "until"
    with pytest.raises(InvalidRequest):
        await store.sentiment_report("acme", bucket="month")  # type: ignore[arg-type]


# --- privacy: tags are the conversation's -------------------------------------------------


async def test_tags_are_unreadable_through_another_users_conversation(store: Store) -> None:
    cid, _ = await turn(store, ALICE, tag=SAD)
    for other in (BOB, ALICE_ELSEWHERE):
        with pytest.raises(ConversationNotFound):
            await store.get_conversation(cid, other)
    assert await store.sentiment_report("acme", user_id="bob") == []
    assert await store.sentiment_report("globex") == []


async def test_tags_go_with_their_conversation(store: Store) -> None:
    gone, _ = await turn(store, ALICE, tag=SAD)
    kept, _ = await turn(store, ALICE, tag=GLAD)
    await store.delete_conversation(gone, ALICE)
    assert await store.recent_sentiments(gone, 5) == []
    assert await store.recent_sentiments(kept, 5) == [GLAD]
    assert [(p.negative, p.positive) for p in await store.sentiment_report("acme")] == [(0, 1)]
    if isinstance(store, SQLStore):
        assert sentiment_rows(store) == 1


async def test_erasure_and_purge_take_the_tags(store: Store) -> None:
    alice, _ = await turn(store, ALICE, tag=SAD)
    bob, _ = await turn(store, BOB, tag=MEH)
    old, _ = await turn(store, BOB, assistant="other", tag=GLAD)
    assert await store.delete_user_data("acme", "alice") == 1
    assert await store.recent_sentiments(alice, 5) == []
    assert await store.purge_conversations("other", datetime.now(UTC) + timedelta(1)) == 1
    assert await store.recent_sentiments(old, 5) == []
    points = await store.sentiment_report("acme")
    assert [(p.assistant, p.negative, p.neutral, p.positive) for p in points] == [
        ("helper", 0, 1, 0)
    ]
    assert await store.recent_sentiments(bob, 5) == [MEH]
    if isinstance(store, SQLStore):
        assert sentiment_rows(store) == 1


async def test_sqlite_enforces_the_foreign_keys_that_cascade(sql_store: SQLStore) -> None:
    if sql_store.engine.dialect.name == "sqlite":
        with sql_store.engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar_one() == 1
    cid, _ = await turn(sql_store, ALICE, tag=SAD)
    await sql_store.delete_conversation(cid, ALICE)
    assert sentiment_rows(sql_store) == 0


async def test_the_export_holds_each_tagged_messages_sentiment(store: Store) -> None:
    cid, tid = await turn(store, ALICE, "so sad", tag=SAD)
    await turn(store, ALICE, "fine", conversation_id=cid)
    await turn(store, BOB, "bob's", tag=GLAD)

    document = await store.export_user_data("acme", "alice")

    assert json.loads(json.dumps(document)) == document
    [record] = document["conversations"]
    assert [m.get("sentiment") for m in record["messages"]] == [
        {"label": "negative", "score": 0.9, "backend": "e5", "emotion": "sadness"},
        None,
        None,
        None,
    ]
    assert record["messages"][0]["turn_id"] == tid
    assert set(record["messages"][2]) == {"role", "content", "turn_id", "created_at"}

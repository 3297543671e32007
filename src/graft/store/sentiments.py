"""Sentiment tags of user messages: their SQL, and the parts every store shares.

A tag belongs to a turn: the sentiment of the user message that started it (the last user
message of the turn, the one the turn answers). It is one row per turn in
``graft.store.schema.t_sentiments``, with copies of its conversation's tenant, user and
assistant so a report reads that table alone, and it is dated when its turn began, so a tag
stored late (or stored again, which replaces it) still counts when the user wrote. It goes
with its turn and conversation (``ON DELETE CASCADE``): deleting a conversation, a user's
erasure and a retention purge take the tags along.

The SQL side follows ``graft.store.sessions``: one function per transaction, run by
``SQLStore``. ``MemoryStore`` shares the checks, the bucketing, the placing of tags on
messages and the export from here, so every store answers alike.

A report counts the tags dated from ``since`` on and before ``until`` (either may be left
open): ``[since, until)``, so consecutive ranges never count a tag twice.

**Reports bucket in Python.** The tags in range are read in time order through the
``(tenant, assistant, created_at)`` index and counted into UTC hours, days or weeks here.
SQL would need a dialect each (``date_trunc`` answers in PostgreSQL's session time zone,
SQLite has only ``strftime``, and the two start weeks differently), and the rows are small:
one timestamp, two names, a label and a score per tagged turn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Integer, Select, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from graft.errors import InvalidRequest, NotFound
from graft.store.base import SentimentBucket, SentimentPoint, SentimentTag, StoredMessage
from graft.store.schema import t_conversations, t_sentiments, t_turns

__all__ = [
    "BUCKETS",
    "LABELS",
    "ReportRow",
    "attach",
    "bucket_start",
    "check_report",
    "check_tag",
    "conversation_tags",
    "recent_sentiments",
    "report_points",
    "sentiment_report",
    "tag_sentiment",
]

LABELS = ("negative", "neutral", "positive")
"""The labels a tag may have."""

BUCKETS = ("hour", "day", "week")
"""The spans a report counts in."""

ReportRow = tuple[datetime, str, str, str, float]
"""What a report reads of a tag: created_at, assistant, conversation id, label, score."""

# --- statements, built once (parameter names start with "b_", as in graft.store.sql) ------

_S = t_sentiments.c
_TAG = (_S.label, _S.score, _S.backend, _S.emotion)

# The conversation first, then the turn (the insert's foreign-key check), in the order
# delete_conversation takes them: see LOCK_TURNS_CONVERSATION in graft.store.conversations.
_OWNER = (
    select(
        t_conversations.c.id,
        t_conversations.c.tenant,
        t_conversations.c.user_id,
        t_conversations.c.assistant,
        t_turns.c.started_at,
    )
    .select_from(t_turns.join(t_conversations, t_turns.c.conversation_id == t_conversations.c.id))
    .where(t_turns.c.id == bindparam("b_tid"))
    .with_for_update(key_share=True, of=t_conversations)
)


def _upsert(stmt: Any) -> Any:
    """Insert a tag, or replace the label, score, backend and emotion of the turn's tag."""
    return stmt.on_conflict_do_update(
        index_elements=[_S.turn_id],
        set_={name: stmt.excluded[name] for name in ("label", "score", "backend", "emotion")},
    )


_UPSERT = {
    "postgresql": _upsert(postgresql.insert(t_sentiments)),
    "sqlite": _upsert(sqlite.insert(t_sentiments)),
}
_RECENT = (
    select(*_TAG)
    .where(_S.conversation_id == bindparam("b_cid"))
    .order_by(_S.created_at.desc(), _S.turn_id.desc())
    .limit(bindparam("b_limit", type_=Integer()))
)
_CONVERSATION_TAGS = select(_S.turn_id, *_TAG).where(_S.conversation_id == bindparam("b_cid"))


# --- checks, bucketing and placing tags: every store's -------------------------------------


def check_tag(tag: SentimentTag) -> None:
    """Refuse a tag the table cannot hold, before any store stores it.

    Raises:
        ValueError: The label is not one of ``LABELS``, the score is not within 0 and 1, or
            the backend (255) or emotion (32) is longer than its column.
    """
    if tag.label not in LABELS:
        raise ValueError(f"sentiment label must be one of {', '.join(LABELS)}: {tag.label!r}")
    if not 0.0 <= tag.score <= 1.0:  # NaN too
        raise ValueError(f"sentiment score must be within 0 and 1: {tag.score!r}")
    if len(tag.backend) > 255 or (tag.emotion is not None and len(tag.emotion) > 32):
        raise ValueError("sentiment backend (255) or emotion (32) is too long")


def check_report(since: datetime | None, bucket: str, until: datetime | None = None) -> None:
    """Refuse naive times (stored times are UTC), an ``until`` before ``since``, a bad bucket.

    Raises:
        ValueError: ``since`` or ``until`` has no time zone.
        InvalidRequest: ``until`` is before ``since``, or ``bucket`` is not one of
            ``BUCKETS``.
    """
    for name, moment in (("since", since), ("until", until)):
        if moment is not None and (moment.tzinfo is None or moment.utcoffset() is None):
            raise ValueError(f"{name} must be timezone-aware")
    if since is not None and until is not None and until < since:
        raise InvalidRequest(
            f"until ({until.isoformat()}) is before since ({since.isoformat()})", param="until"
        )
    if bucket not in BUCKETS:
        raise InvalidRequest(f"bucket must be one of {', '.join(BUCKETS)}", param="bucket")


def bucket_start(at: datetime, bucket: SentimentBucket) -> datetime:
    """The start of the UTC hour, day or week (from Monday) that ``at`` (UTC) falls in."""
    start = at.replace(minute=0, second=0, microsecond=0)
    if bucket == "hour":
        return start
    start = start.replace(hour=0)
    return start if bucket == "day" else start - timedelta(days=start.weekday())


def report_points(
    rows: Iterable[ReportRow], bucket: SentimentBucket, *, per_conversation: bool
) -> list[SentimentPoint]:
    """Count tags into points per bucket and assistant (and conversation), oldest first.

    Args:
        rows: The tags in range, in time order (so sums add up alike on every store).
        bucket: The span of a point.
        per_conversation: Whether points are per conversation too.
    """
    found: dict[tuple[datetime, str, str | None], list[float]] = {}
    for created_at, assistant, conversation_id, label, score in rows:
        start = bucket_start(created_at, bucket)
        key = (start, assistant, conversation_id if per_conversation else None)
        counts = found.setdefault(key, [0, 0, 0, 0.0])  # negative, neutral, positive, sum
        index = LABELS.index(label)
        counts[index] += 1
        counts[3] += (index - 1) * score
    return [
        SentimentPoint(
            start,
            assistant,
            conversation_id,
            int(negative),
            int(neutral),
            int(positive),
            total / (negative + neutral + positive),
        )
        for (start, assistant, conversation_id), (negative, neutral, positive, total) in sorted(
            found.items(), key=lambda item: (item[0][0], item[0][1], item[0][2] or "")
        )
    ]


def attach(messages: list[StoredMessage], tags: Mapping[str, SentimentTag]) -> None:
    """Set each tagged turn's tag on that turn's last user message, in place."""
    last: dict[str, StoredMessage] = {}
    for stored in messages:
        if stored.message.role == "user":
            last[stored.turn_id] = stored
    for turn_id, stored in last.items():
        stored.sentiment = tags.get(turn_id)


# --- SQL, one transaction each ------------------------------------------------------------


def tag_sentiment(conn: Connection, *, turn_id: str, tag: SentimentTag) -> None:
    """Store the turn's tag, replacing any, dated when the turn began (write).

    Raises:
        NotFound: No turn has this id (code ``turn_not_found``).
    """
    owner = conn.execute(_OWNER, {"b_tid": turn_id}).first()
    if owner is None:
        raise NotFound(f"no turn {turn_id!r}", code="turn_not_found")
    conn.execute(
        _UPSERT[conn.dialect.name],
        {
            "turn_id": turn_id,
            "conversation_id": owner.id,
            "tenant": owner.tenant,
            "user_id": owner.user_id,
            "assistant": owner.assistant,
            "label": tag.label,
            "score": tag.score,
            "emotion": tag.emotion,
            "backend": tag.backend,
            "created_at": owner.started_at,
        },
    )


def recent_sentiments(conn: Connection, *, conversation_id: str, limit: int) -> list[SentimentTag]:
    """The conversation's latest ``limit`` tags, newest first (read)."""
    params = {"b_cid": conversation_id, "b_limit": limit}
    return [SentimentTag(*row) for row in conn.execute(_RECENT, params)]


def conversation_tags(conn: Connection, conversation_id: str) -> dict[str, SentimentTag]:
    """The conversation's tags by turn id (read, within ``get_conversation``'s)."""
    rows = conn.execute(_CONVERSATION_TAGS, {"b_cid": conversation_id})
    return {row.turn_id: SentimentTag(*row[1:]) for row in rows}


def sentiment_report(
    conn: Connection,
    *,
    tenant: str,
    assistant: str | None,
    conversation_id: str | None,
    user_id: str | None,
    since: datetime | None,
    bucket: SentimentBucket,
    until: datetime | None = None,
) -> list[SentimentPoint]:
    """Points of ``tenant``'s tags, narrowed by the others given (read; ``report_points``)."""
    query: Select[Any] = (
        select(_S.created_at, _S.assistant, _S.conversation_id, _S.label, _S.score)
        .where(_S.tenant == tenant)
        .order_by(_S.created_at, _S.turn_id)
    )
    if assistant is not None:
        query = query.where(_S.assistant == assistant)
    if conversation_id is not None:
        query = query.where(_S.conversation_id == conversation_id)
    if user_id is not None:
        query = query.where(_S.user_id == user_id)
    if since is not None:
        query = query.where(_S.created_at >= since)
    if until is not None:
        query = query.where(_S.created_at < until)
    rows: list[ReportRow] = [
        (r.created_at, r.assistant, r.conversation_id, r.label, r.score)
        for r in conn.execute(query)
    ]
    return report_points(rows, bucket, per_conversation=conversation_id is not None)

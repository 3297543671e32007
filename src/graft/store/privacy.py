"""Privacy in the store: a user's export and erasure, retention, and admins' metadata view.

The SQL side follows ``graft.store.users``: one function per transaction, run by
``SQLStore`` on the connection of a transaction it began (a read or a write, as each says).
The export document's shape is defined here too, once, for every store
(``export_conversations`` reads it through the ``Store`` protocol itself).

**Deleting many conversations** (a user's erasure, a retention purge) goes in batches of
``BATCH``: the ids of a batch are found in a read transaction (on SQLite that scan runs beside
the writer, not in it), then deleted by id in a write transaction of their own, which checks
the condition again, so a conversation that got a new turn in between stays. SQLite's one
writer is held for one batch at a time and the turns queued meanwhile run between two
batches. Deleting a conversation deletes its turns, messages and ratings (feedback), and
with the turns their tool runs (``ON DELETE CASCADE`` in ``graft.store.schema``).

**Admins see metadata, never contents.** ``list_tenant_conversations`` never selects the
title: a title is the first user message, cut short, so it is content.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Integer, bindparam, delete, func, select
from sqlalchemy.engine import Connection

from graft.context import Principal
from graft.errors import ConversationNotFound
from graft.store.base import ConversationInfo, Store, StoredFeedback, StoredMessage, TurnInfo
from graft.store.schema import t_conversations, t_messages

__all__ = [
    "BATCH",
    "EXPORT_FORMAT",
    "check_aware",
    "conversation_record",
    "delete_expired_conversations",
    "delete_user_conversations",
    "expired_conversation_ids",
    "export_conversations",
    "export_document",
    "list_tenant_conversations",
    "user_conversation_ids",
]

BATCH = 500
"""Conversations deleted per write transaction."""

EXPORT_FORMAT = 1
"""The version of the export document's shape; raised when the shape changes."""

# --- statements, built once (parameter names start with "b_", as in graft.store.sql) ------

_C = t_conversations.c
_LIMIT = bindparam("b_limit", type_=Integer())
_USERS = (_C.tenant == bindparam("b_tenant")) & (_C.user_id == bindparam("b_user"))
_EXPIRED = (_C.assistant == bindparam("b_assistant")) & (_C.updated_at < bindparam("b_before"))
_IDS = _C.id.in_(bindparam("b_ids", expanding=True))

_USER_IDS = select(_C.id).where(_USERS).order_by(_C.created_at, _C.id)
_USER_IDS_PAGE = _USER_IDS.limit(_LIMIT)
_DELETE_USERS = delete(t_conversations).where(_IDS & _USERS)
_EXPIRED_IDS = select(_C.id).where(_EXPIRED).limit(_LIMIT)
_DELETE_EXPIRED = delete(t_conversations).where(_IDS & _EXPIRED)

# The page first, then its messages counted: a count for this page's rows only.
_TENANT_PAGE = (
    select(_C.id, _C.user_id, _C.tenant, _C.assistant, _C.created_at, _C.updated_at)
    .where(_C.tenant == bindparam("b_tenant"))
    .order_by(_C.updated_at.desc(), _C.id.desc())
    .limit(_LIMIT)
    .offset(bindparam("b_offset", type_=Integer()))
    .subquery()
)
_TENANT_CONVERSATIONS = select(
    _TENANT_PAGE,
    select(func.count())
    .where(t_messages.c.conversation_id == _TENANT_PAGE.c.id)
    .scalar_subquery()
    .label("message_count"),
).order_by(_TENANT_PAGE.c.updated_at.desc(), _TENANT_PAGE.c.id.desc())


# --- the export document, the same from every store ---------------------------------------


def _when(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def conversation_record(
    info: ConversationInfo,
    messages: list[StoredMessage],
    turns: list[TurnInfo],
    feedback: Mapping[str, StoredFeedback] | None = None,
) -> dict[str, Any]:
    """One conversation as the export has it: header, messages, turns with their tool runs.

    Args:
        info: The conversation's header.
        messages: Its messages, oldest first.
        turns: Its turns, by start time.
        feedback: The owner's ratings of its turns, by turn id; each turn's is its
            ``feedback`` (``None`` if it has none).

    Returns:
        A JSON-serialisable dict. Messages are in the OpenAI shape, with the name of any
        message that has one, the turn that wrote it and when, and a user message's
        sentiment tag if it has one; each turn has the ``citations`` its answer cited.
    """
    return {
        "id": info.id,
        "title": info.title,
        "assistant": info.assistant,
        "created_at": _when(info.created_at),
        "updated_at": _when(info.updated_at),
        "messages": [
            {
                **m.message.to_openai(),
                **({"name": m.message.name} if m.message.name is not None else {}),
                "turn_id": m.turn_id,
                "created_at": _when(m.created_at),
                # Only on user messages the sentiment middleware tagged.
                **({"sentiment": m.sentiment.to_json()} if m.sentiment is not None else {}),
            }
            for m in messages
        ],
        "turns": [
            {
                "id": t.id,
                "status": t.status,
                "model": t.model,
                "started_at": _when(t.started_at),
                "finished_at": _when(t.finished_at),
                "duration_ms": t.duration_ms,
                "finish_reason": t.finish_reason,
                "error": t.error,
                "usage": t.usage.to_openai(),
                "tool_runs": [
                    {
                        "call_id": r.call_id,
                        "name": r.name,
                        "arguments": r.arguments,
                        "result": r.result,
                        "is_error": r.is_error,
                        "duration_ms": r.duration_ms,
                    }
                    for r in t.tool_runs
                ],
                "citations": t.citations,  # the passages the answer cited, if any
                "feedback": _feedback((feedback or {}).get(t.id)),
            }
            for t in turns
        ],
    }


def _feedback(given: StoredFeedback | None) -> dict[str, Any] | None:
    if given is None:
        return None
    return {
        "rating": given.rating,
        "comment": given.comment,
        "created_at": _when(given.created_at),
        "updated_at": _when(given.updated_at),
    }


def export_document(
    tenant: str, user: str, conversations: Iterable[dict[str, Any]], *, now: datetime | None = None
) -> dict[str, Any]:
    """The export of one user: who, when, and their conversations (``conversation_record``)."""
    return {
        "object": "user_data_export",
        "format": EXPORT_FORMAT,
        "tenant": tenant,
        "user": user,
        "exported_at": (now or datetime.now(UTC)).isoformat(),
        "conversations": list(conversations),
    }


async def export_conversations(
    store: Store, tenant: str, user: str, conversation_ids: Iterable[str]
) -> dict[str, Any]:
    """The export document of ``user``, read one conversation at a time.

    Each conversation is read in one transaction, and the user's ratings of its turns in
    another. A conversation deleted while the export runs is left out, not an error.
    """
    owner = Principal(user, tenant=tenant)
    records = []
    for conversation_id in conversation_ids:
        try:
            found = await store.get_conversation(conversation_id, owner)
        except ConversationNotFound:
            continue
        feedback = await store.get_feedback_for(conversation_id, owner)
        records.append(conversation_record(*found, feedback))
    return export_document(tenant, user, records)


def check_aware(older_than: datetime) -> None:
    """Refuse a naive ``older_than``: stored times are UTC, and a naive one would be a guess.

    Raises:
        ValueError: ``older_than`` has no time zone.
    """
    if older_than.tzinfo is None or older_than.utcoffset() is None:
        raise ValueError("older_than must be timezone-aware")


# --- SQL, one transaction each ------------------------------------------------------------


def user_conversation_ids(
    conn: Connection, *, tenant: str, user: str, limit: int | None = None
) -> list[str]:
    """Ids of one user's conversations, oldest first; at most ``limit`` (read)."""
    params: dict[str, Any] = {"b_tenant": tenant, "b_user": user}
    if limit is None:
        return list(conn.scalars(_USER_IDS, params))
    return list(conn.scalars(_USER_IDS_PAGE, {**params, "b_limit": limit}))


def delete_user_conversations(conn: Connection, *, tenant: str, user: str, ids: list[str]) -> int:
    """Delete those of ``ids`` that are the user's conversations (write); return how many."""
    result = conn.execute(_DELETE_USERS, {"b_ids": ids, "b_tenant": tenant, "b_user": user})
    return result.rowcount


def expired_conversation_ids(
    conn: Connection, *, assistant: str, older_than: datetime, limit: int
) -> list[str]:
    """Ids of up to ``limit`` of the assistant's conversations not updated since (read)."""
    params = {"b_assistant": assistant, "b_before": older_than, "b_limit": limit}
    return list(conn.scalars(_EXPIRED_IDS, params))


def delete_expired_conversations(
    conn: Connection, *, assistant: str, older_than: datetime, ids: list[str]
) -> int:
    """Delete those of ``ids`` that are still expired (write); return how many."""
    params = {"b_ids": ids, "b_assistant": assistant, "b_before": older_than}
    return conn.execute(_DELETE_EXPIRED, params).rowcount


def list_tenant_conversations(
    conn: Connection, *, tenant: str, limit: int, offset: int
) -> list[ConversationInfo]:
    """A page of a tenant's conversations as metadata, title left empty (read)."""
    params = {"b_tenant": tenant, "b_limit": limit, "b_offset": offset}
    return [
        ConversationInfo(
            id=row.id,
            user_id=row.user_id,
            tenant=row.tenant,
            assistant=row.assistant,
            title="",
            created_at=row.created_at,
            updated_at=row.updated_at,
            message_count=row.message_count,
        )
        for row in conn.execute(_TENANT_CONVERSATIONS, params)
    ]

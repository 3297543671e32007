"""The SQL side of feedback: users' ratings of the turns of their own conversations.

A rating is one row of ``graft.store.schema.t_feedback`` per user and turn: up or down, and
a comment, encrypted at rest like the messages (``graft.store.encrypted.FEEDBACK``, owned by
the conversation, whose id is part of the comment's associated data). Giving a rating again
replaces its rating, comment and ``updated_at`` in one statement (an upsert in each dialect,
no read first), and keeps its id and ``created_at``. A rating goes with its turn and its
conversation (``ON DELETE CASCADE``): deleting a conversation, a user's erasure and a
retention purge take the ratings along.

Only the owner of a conversation may rate its turns: the turn is looked up through its
conversation, scoped to the principal, and locked as ``graft.store.sentiments`` locks it
(the conversation first, in the order ``delete_conversation`` takes them), so a rating
never lands on a conversation being deleted.

Ids sort by creation time (``graft.messages.new_id``), so the admins' list pages newest
first by id alone: ``after`` is the id of the last rating of the previous page.

``FeedbackMethods`` is the part of ``SQLStore`` (``graft.store.sql``) that runs these
functions, mixed into that class so that the store stays one object; the functions follow
``graft.store.sessions``: one per transaction, run on the connection of a transaction the
store began.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Integer, Row, Select, bindparam, delete, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from graft.context import Principal
from graft.crypto import DataKeys
from graft.errors import NotFound
from graft.messages import new_id
from graft.store.base import (
    FeedbackRating,
    StoredFeedback,
    check_comment,
    check_page,
    check_rating,
)
from graft.store.encrypted import FEEDBACK, reveal, seal
from graft.store.schema import t_conversations, t_feedback, t_turns

__all__ = [
    "FeedbackMethods",
    "as_feedback",
    "delete_feedback",
    "feedback_for",
    "list_feedback",
    "put_feedback",
]

T = TypeVar("T")

# --- statements, built once (parameter names start with "b_", as in graft.store.sql) ------

_F = t_feedback.c
_C = t_conversations.c
_MINE = (_F.tenant == bindparam("b_tenant")) & (_F.user_id == bindparam("b_user"))

# The turn's conversation, if it is the principal's; locked as graft.store.sentiments does.
_OWNED_TURN = (
    select(_C.id, _C.assistant)
    .select_from(t_turns.join(t_conversations, t_turns.c.conversation_id == _C.id))
    .where(
        (t_turns.c.id == bindparam("b_tid"))
        & (_C.tenant == bindparam("b_tenant"))
        & (_C.user_id == bindparam("b_user"))
    )
    .with_for_update(key_share=True, of=t_conversations)
)


def _upsert(stmt: Any) -> Any:
    """Insert a rating, or replace the rating, comment and ``updated_at`` of the stored one."""
    return stmt.on_conflict_do_update(
        index_elements=[_F.turn_id, _F.tenant, _F.user_id],
        set_={name: stmt.excluded[name] for name in ("rating", "comment", "updated_at")},
    )


_UPSERT = {
    "postgresql": _upsert(postgresql.insert(t_feedback)),
    "sqlite": _upsert(sqlite.insert(t_feedback)),
}
_WITH_ASSISTANT = select(t_feedback, _C.assistant).select_from(
    t_feedback.join(t_conversations, _F.conversation_id == _C.id)
)
_STORED = _WITH_ASSISTANT.where(_MINE & (_F.turn_id == bindparam("b_tid")))
_OF_CONVERSATION = _WITH_ASSISTANT.where(_MINE & (_F.conversation_id == bindparam("b_cid")))
_DELETE = delete(t_feedback).where(_MINE & (_F.turn_id == bindparam("b_tid")))
_LIMIT = bindparam("b_limit", type_=Integer())


def as_feedback(row: Row[Any], keys: DataKeys | None) -> StoredFeedback:
    """A ``feedback`` row, with its conversation's assistant, as ``StoredFeedback``."""
    return StoredFeedback(
        id=row.id,
        tenant=row.tenant,
        user_id=row.user_id,
        conversation_id=row.conversation_id,
        turn_id=row.turn_id,
        assistant=row.assistant,
        rating=check_rating(row.rating),
        comment=reveal(keys, row.comment, FEEDBACK.context("comment", row.conversation_id)),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


# --- SQL, one transaction each ------------------------------------------------------------


def put_feedback(
    conn: Connection,
    *,
    principal: Principal,
    turn_id: str,
    rating: FeedbackRating,
    comment: str | None,
    keys: DataKeys | None,
) -> StoredFeedback:
    """Store the principal's rating of the turn, replacing theirs (write).

    Raises:
        NotFound: The turn is not in one of the principal's conversations (code
            ``turn_not_found``).
    """
    owner = {"b_tenant": principal.tenant, "b_user": principal.user_id}
    found = conn.execute(_OWNED_TURN, {**owner, "b_tid": turn_id}).first()
    if found is None:
        raise NotFound(f"no turn {turn_id!r} in your conversations", code="turn_not_found")
    now = datetime.now(UTC)
    conn.execute(
        _UPSERT[conn.dialect.name],
        {
            "id": new_id("fb"),
            "tenant": principal.tenant,
            "user_id": principal.user_id,
            "conversation_id": found.id,
            "turn_id": turn_id,
            "rating": rating,
            # Sealed now that the conversation is known; the plaintext stays as it was.
            "comment": seal(keys, comment, FEEDBACK.context("comment", found.id)),
            "created_at": now,
            "updated_at": now,
        },
    )
    row = conn.execute(_STORED, {**owner, "b_tid": turn_id}).one()
    return as_feedback(row, keys)


def delete_feedback(conn: Connection, *, principal: Principal, turn_id: str) -> bool:
    """Delete the principal's rating of the turn (write); whether there was one."""
    params = {"b_tenant": principal.tenant, "b_user": principal.user_id, "b_tid": turn_id}
    return conn.execute(_DELETE, params).rowcount > 0


def feedback_for(
    conn: Connection, *, conversation_id: str, principal: Principal, keys: DataKeys | None
) -> dict[str, StoredFeedback]:
    """The principal's ratings of the conversation's turns, by turn id (read)."""
    params = {"b_tenant": principal.tenant, "b_user": principal.user_id, "b_cid": conversation_id}
    return {row.turn_id: as_feedback(row, keys) for row in conn.execute(_OF_CONVERSATION, params)}


def list_feedback(
    conn: Connection,
    *,
    tenant: str,
    rating: FeedbackRating | None,
    after: str | None,
    limit: int,
    keys: DataKeys | None,
) -> list[StoredFeedback]:
    """A page of the tenant's ratings, newest first, from after the id ``after`` (read)."""
    query: Select[Any] = _WITH_ASSISTANT.where(_F.tenant == tenant)
    if rating is not None:
        query = query.where(_F.rating == rating)
    if after is not None:
        query = query.where(_F.id < after)
    query = query.order_by(_F.id.desc()).limit(_LIMIT)
    return [as_feedback(row, keys) for row in conn.execute(query, {"b_limit": limit})]


# --- SQLStore's methods -------------------------------------------------------------------


class FeedbackMethods:
    """The feedback methods of ``SQLStore``, which provides the transactions and the keys."""

    if TYPE_CHECKING:
        _keys: DataKeys | None

        async def _read(self, fn: Callable[[Connection], T]) -> T: ...

        async def _write(
            self, fn: Callable[[Connection], T], *, alone: bool = False, size: int = 0
        ) -> T: ...

    async def put_feedback(
        self,
        principal: Principal,
        turn_id: str,
        rating: FeedbackRating,
        comment: str | None = None,
    ) -> StoredFeedback:
        """Store the principal's rating of a turn of their conversation; again replaces it.

        Raises:
            NotFound: The turn is not in one of the principal's conversations.
            InvalidRequest: Another rating, or a comment longer than ``COMMENT_LENGTH``.
        """
        rating, comment = check_rating(rating), check_comment(comment)
        work = partial(
            put_feedback,
            principal=principal,
            turn_id=turn_id,
            rating=rating,
            comment=comment,
            keys=self._keys,
        )
        return await self._write(work, size=len(comment or ""))

    async def delete_feedback(self, principal: Principal, turn_id: str) -> bool:
        """Delete the principal's rating of a turn; whether there was one."""
        return await self._write(partial(delete_feedback, principal=principal, turn_id=turn_id))

    async def get_feedback_for(
        self, conversation_id: str, principal: Principal
    ) -> dict[str, StoredFeedback]:
        """The principal's ratings of the conversation's turns, by turn id."""
        work = partial(
            feedback_for, conversation_id=conversation_id, principal=principal, keys=self._keys
        )
        return await self._read(work)

    async def list_feedback(
        self,
        tenant: str,
        *,
        rating: FeedbackRating | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[StoredFeedback]:
        """A page of the tenant's ratings, newest first.

        Raises:
            InvalidRequest: Another rating, or a negative ``limit``.
        """
        check_page(limit, 0)
        work = partial(
            list_feedback,
            tenant=tenant,
            rating=None if rating is None else check_rating(rating),
            after=after,
            limit=limit,
            keys=self._keys,
        )
        return await self._read(work)

"""Conversation titles their owners set and search: the SQL, run by ``SQLStore``.

A conversation is titled after its first user message (``graft.store.base.make_title``);
its owner may rename it, and find theirs by a piece of the title. Titles are encrypted at
rest (``graft.store.encrypted.CONVERSATIONS``), sealed with a fresh nonce each time, so the
database cannot compare them: a search reads the owner's conversations in list order (most
recently updated first), decrypts each title and keeps those that contain the query,
ignoring case, until it has the page asked for. One user's conversations are a few
thousand rows at most, each a short title; the rows are read in the transaction's own
snapshot, so pages of one search agree with each other like those of a plain listing.

Renaming leaves ``updated_at`` alone: it is when the conversation's latest turn began, which
orders the list, and a new name is not a new turn.
"""

from __future__ import annotations

from sqlalchemy import bindparam, update
from sqlalchemy.engine import Connection

from graft.context import Principal
from graft.crypto import DataKeys
from graft.store.base import ConversationInfo, check_title
from graft.store.conversations import (
    LIST_CONVERSATIONS,
    OWNED,
    SELECT_CONVERSATION,
    as_conversation,
    not_found,
    owner_params,
)
from graft.store.encrypted import CONVERSATIONS, seal
from graft.store.schema import t_conversations

__all__ = ["list_conversations", "rename_conversation", "stored_title"]

_LIST_ALL = LIST_CONVERSATIONS.limit(None).offset(None)
_RENAME = update(t_conversations).where(OWNED).values(title=bindparam("b_title"))


def list_conversations(
    conn: Connection,
    *,
    principal: Principal,
    limit: int,
    offset: int,
    query: str | None,
    keys: DataKeys | None,
) -> list[ConversationInfo]:
    """A page of the principal's conversations, only those titled with ``query`` if given.

    The caller has checked the page (read).
    """
    params = {"b_tenant": principal.tenant, "b_user": principal.user_id}
    if not query:
        page = {**params, "b_limit": limit, "b_offset": offset}
        return [as_conversation(r, keys) for r in conn.execute(LIST_CONVERSATIONS, page)]
    wanted = query.casefold()
    found: list[ConversationInfo] = []
    skip = offset
    if limit == 0:
        return found
    for row in conn.execute(_LIST_ALL, params):
        info = as_conversation(row, keys)
        if wanted not in info.title.casefold():
            continue
        if skip:
            skip -= 1
            continue
        found.append(info)
        if len(found) == limit:
            break
    return found


def stored_title(keys: DataKeys | None, conversation_id: str, title: str) -> str:
    """A new title as the column keeps it: one line (``check_title``), sealed if ``keys`` encrypt.

    Raises:
        InvalidRequest: It is empty, or longer than ``TITLE_MAX``.
    """
    line = check_title(title)
    return seal(keys, line, CONVERSATIONS.context("title", conversation_id)) or line


def rename_conversation(
    conn: Connection,
    *,
    conversation_id: str,
    principal: Principal,
    title: str,
    keys: DataKeys | None,
) -> ConversationInfo:
    """Store ``title`` (sealed already) as the principal's conversation's; its header (write).

    Raises:
        ConversationNotFound: The conversation is not the principal's.
    """
    params = owner_params(conversation_id, principal)
    if conn.execute(_RENAME, {**params, "b_title": title}).rowcount == 0:
        raise not_found(conversation_id)
    return as_conversation(conn.execute(SELECT_CONVERSATION, params).one(), keys)

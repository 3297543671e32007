"""The SQL of conversations: statements built once, and rows to and from graft's objects.

``SQLStore`` (``graft.store.sql``) runs these in its transactions. Every statement is built
once, at import, with ``bindparam()`` placeholders and executed with plain parameter dicts:
building and coercing a statement on every call cost more CPU than SQLite took to run it.
The writes of every turn are ``Prepared`` statements (SQLAlchemy's SQL on the DBAPI cursor,
see ``graft.store.prepared``). Message contents and tool arguments and results are sealed
on the way in and revealed on the way out when the store has data keys
(``graft.store.encrypted``), and so are the turn's citations (``graft.store.turn_citations``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Row, String, bindparam, delete, func, insert, select, update
from sqlalchemy.engine import Connection

from graft.context import Principal
from graft.crypto import DataKeys
from graft.errors import ConversationNotFound
from graft.messages import Message, ToolCall, Usage
from graft.store.base import ConversationInfo, ToolRun, TurnInfo
from graft.store.encrypted import CONVERSATIONS, MESSAGES, TOOL_RUNS, reveal, seal
from graft.store.prepared import Prepared
from graft.store.schema import t_conversations, t_messages, t_tool_runs, t_turns
from graft.store.turn_citations import reveal_citations

# --- statements, built once -----------------------------------------------------------------
# Parameter names start with "b_": SQLAlchemy reserves column names for VALUES and SET.

OWNED = (
    (t_conversations.c.id == bindparam("b_cid"))
    & (t_conversations.c.tenant == bindparam("b_tenant"))
    & (t_conversations.c.user_id == bindparam("b_user"))
)
"""The conversation ``b_cid``, if it belongs to ``b_tenant`` and ``b_user``."""

# The writes of every turn run as ``Prepared`` statements: SQLAlchemy's SQL on the DBAPI
# cursor (see graft/store/prepared.py for why and what it keeps).
INSERT_CONVERSATION = Prepared(
    insert(t_conversations).inline(),
    keys=["id", "tenant", "user_id", "assistant", "title", "created_at", "updated_at"],
)
INSERT_TURN = Prepared(
    insert(t_turns).inline(),
    keys=[
        "id",
        "conversation_id",
        "status",
        "model",
        "prompt_tokens",
        "completion_tokens",
        "started_at",
        "worker_id",
    ],
)
INSERT_MESSAGES = Prepared(
    insert(t_messages).inline(),
    keys=[
        "conversation_id",
        "turn_id",
        "role",
        "content",
        "tool_calls",
        "tool_call_id",
        "name",
        "created_at",
    ],
)
INSERT_TOOL_RUNS = Prepared(
    insert(t_tool_runs).inline(),
    keys=[
        "turn_id",
        "conversation_id",
        "call_id",
        "name",
        "arguments",
        "result",
        "is_error",
        "duration_ms",
        "created_at",
    ],
)

# NO KEY UPDATE holds off a concurrent delete but lets the foreign-key checks of other turns
# in this conversation through.
LOCK_CONVERSATION = Prepared(
    select(t_conversations.c.title).where(OWNED).with_for_update(key_share=True)
)
TOUCH = (
    update(t_conversations)
    .where(t_conversations.c.id == bindparam("b_cid"))
    .values(updated_at=bindparam("b_now"))
)
TOUCH_CONVERSATION = Prepared(TOUCH)
TOUCH_AND_TITLE_CONVERSATION = Prepared(TOUCH.values(title=bindparam("b_title")))
# finish_turn locks the conversation before the turn, in the order delete_conversation takes
# them (its cascade reaches the turn last); the other order deadlocks on PostgreSQL when a
# conversation is deleted while its turn finishes. KEY SHARE is enough to hold off the
# delete, and it writes nothing (on SQLite, where one writer excludes the rest, the select
# is just a read).
LOCK_TURNS_CONVERSATION = Prepared(
    select(t_conversations.c.id)
    .where(
        t_conversations.c.id
        == select(t_turns.c.conversation_id)
        .where(t_turns.c.id == bindparam("b_tid"))
        .scalar_subquery()
    )
    .with_for_update(key_share=True)
)
FINISH_TURN = Prepared(
    update(t_turns)
    .where((t_turns.c.id == bindparam("b_tid")) & (t_turns.c.status == "running"))
    .values(
        status=bindparam("b_status"),
        finish_reason=bindparam("b_finish_reason"),
        error=bindparam("b_error"),
        prompt_tokens=bindparam("b_prompt_tokens"),
        completion_tokens=bindparam("b_completion_tokens"),
        finished_at=bindparam("b_now"),
        duration_ms=bindparam("b_duration_ms"),
        citations=bindparam("b_citations"),
        model=func.coalesce(bindparam("b_model", type_=String()), t_turns.c.model),
        route=bindparam("b_route"),
        first_token_ms=bindparam("b_first_token_ms"),
    )
)

# One query for history and ownership: the conversation outer-joined with its messages, so
# an empty conversation is one row without a message and a missing one is no row at all.
HISTORY = (
    select(
        t_conversations.c.id,
        t_messages.c.role,
        t_messages.c.content,
        t_messages.c.tool_calls,
        t_messages.c.tool_call_id,
        t_messages.c.name,
    )
    .select_from(
        t_conversations.outerjoin(t_messages, t_messages.c.conversation_id == t_conversations.c.id)
    )
    .where(OWNED)
    .order_by(t_messages.c.id)
)
SELECT_CONVERSATION = select(t_conversations).where(OWNED)
LIST_CONVERSATIONS = (
    select(t_conversations)
    .where(
        t_conversations.c.tenant == bindparam("b_tenant"),
        t_conversations.c.user_id == bindparam("b_user"),
    )
    .order_by(t_conversations.c.updated_at.desc(), t_conversations.c.id.desc())
    .limit(bindparam("b_limit", type_=Integer()))
    .offset(bindparam("b_offset", type_=Integer()))
)
SELECT_MESSAGES = (
    select(t_messages)
    .where(t_messages.c.conversation_id == bindparam("b_cid"))
    .order_by(t_messages.c.id)
)
SELECT_TOOL_RUNS = (
    select(t_tool_runs)
    .where(t_tool_runs.c.conversation_id == bindparam("b_cid"))
    .order_by(t_tool_runs.c.id)
)
SELECT_TURNS = (
    select(t_turns)
    .where(t_turns.c.conversation_id == bindparam("b_cid"))
    .order_by(t_turns.c.started_at, t_turns.c.id)
)
DELETE_CONVERSATION = delete(t_conversations).where(OWNED)


def owner_params(conversation_id: str, principal: Principal) -> dict[str, str]:
    """The parameters of ``OWNED``: the conversation, if it is the principal's."""
    return {"b_cid": conversation_id, "b_tenant": principal.tenant, "b_user": principal.user_id}


def not_found(conversation_id: str) -> ConversationNotFound:
    """The error for a conversation that is not the principal's."""
    return ConversationNotFound(f"conversation {conversation_id!r} not found")


def message_row(message: Message) -> dict[str, Any]:
    """A ``messages`` row without its conversation, turn and time."""
    return {
        "role": message.role,
        "content": message.content,
        "tool_calls": dump_calls(message.tool_calls),
        "tool_call_id": message.tool_call_id,
        "name": message.name,
    }


def insert_messages(
    conn: Connection, cid: str, tid: str, rows: list[dict[str, Any]], now: datetime
) -> None:
    """Insert message rows of conversation ``cid`` and turn ``tid``."""
    if not rows:
        return
    for row in rows:
        row["conversation_id"] = cid
        row["turn_id"] = tid
        row["created_at"] = now
    INSERT_MESSAGES.executemany(conn, rows)


def tool_run_rows(turn_id: str, tool_runs: list[ToolRun]) -> list[dict[str, Any]]:
    """``tool_runs`` rows of turn ``turn_id`` without their conversation and time."""
    return [
        {
            "turn_id": turn_id,
            "call_id": run.call_id,
            "name": run.name,
            "arguments": run.arguments,
            "result": run.result,
            "is_error": run.is_error,
            "duration_ms": run.duration_ms,
        }
        for run in tool_runs
    ]


def payload_size(rows: list[dict[str, Any]]) -> int:
    """About how many characters storing these message rows writes."""
    return sum(len(r["content"] or "") + len(r["tool_calls"] or "") for r in rows)


def dump_calls(calls: list[ToolCall]) -> str | None:
    """Tool calls as the JSON text a message row stores, or ``None``."""
    if not calls:
        return None
    return json.dumps(
        [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls],
        ensure_ascii=False,
    )


# The contexts of the values a turn writes, less the conversation id that ends them.
_CONTENT = MESSAGES.context("content", "")
_TOOL_CALLS = MESSAGES.context("tool_calls", "")
_ARGUMENTS = TOOL_RUNS.context("arguments", "")
_RESULT = TOOL_RUNS.context("result", "")


def seal_message(keys: DataKeys, row: dict[str, Any], cid: str) -> dict[str, Any]:
    """Seal a message row's content and tool calls, in place; return it."""
    if row["content"]:
        row["content"] = keys.encrypt(row["content"], _CONTENT + cid)
    if row["tool_calls"]:
        row["tool_calls"] = keys.encrypt(row["tool_calls"], _TOOL_CALLS + cid)
    return row


def seal_run(keys: DataKeys, run: dict[str, Any], cid: str) -> dict[str, Any]:
    """Seal a tool run row's arguments and result, in place; return it."""
    run["arguments"] = seal(keys, run["arguments"], _ARGUMENTS + cid)
    run["result"] = seal(keys, run["result"], _RESULT + cid)
    return run


def as_message(row: Row[*tuple[Any, ...]], keys: DataKeys | None, cid: str) -> Message:
    """A ``messages`` row as a ``Message``, its sealed values revealed."""
    tool_calls = reveal(keys, row.tool_calls, MESSAGES.context("tool_calls", cid))
    calls = json.loads(tool_calls) if tool_calls else []
    return Message(
        role=row.role,
        content=reveal(keys, row.content, MESSAGES.context("content", cid)),
        tool_calls=[ToolCall(c["id"], c["name"], c["arguments"]) for c in calls],
        tool_call_id=row.tool_call_id,
        name=row.name,
    )


def as_tool_run(row: Row[Any], keys: DataKeys | None) -> ToolRun:
    """A ``tool_runs`` row as a ``ToolRun``, its sealed values revealed."""
    cid = row.conversation_id
    return ToolRun(
        row.call_id,
        row.name,
        reveal(keys, row.arguments, TOOL_RUNS.context("arguments", cid)) or "",
        reveal(keys, row.result, TOOL_RUNS.context("result", cid)) or "",
        row.is_error,
        row.duration_ms,
    )


def as_conversation(row: Row[Any], keys: DataKeys | None) -> ConversationInfo:
    """A ``conversations`` row as a ``ConversationInfo``, its title revealed."""
    return ConversationInfo(
        id=row.id,
        user_id=row.user_id,
        tenant=row.tenant,
        assistant=row.assistant,
        title=reveal(keys, row.title, CONVERSATIONS.context("title", row.id)) or "",
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def as_turn(row: Row[Any], runs: list[ToolRun], keys: DataKeys | None = None) -> TurnInfo:
    """A ``turns`` row with its tool runs as a ``TurnInfo``, its citations revealed."""
    return TurnInfo(
        id=row.id,
        conversation_id=row.conversation_id,
        status=row.status,
        model=row.model,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_ms=row.duration_ms,
        finish_reason=row.finish_reason,
        error=row.error,
        usage=Usage(row.prompt_tokens, row.completion_tokens),
        tool_runs=runs,
        citations=reveal_citations(keys, row.citations, row.conversation_id),
        route=row.route,
        first_token_ms=row.first_token_ms,
    )

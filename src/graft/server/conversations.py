"""Stored conversations over REST: list and search, read, rename, delete; scoped to the caller.

``GET /v1/conversations?q=`` keeps the conversations whose title contains ``q``, ignoring
case (titles are encrypted at rest, so the store compares them decrypted:
``graft.store.titles``); ``limit`` and ``offset`` page through the matches. ``PATCH`` renames
one (the title on one line, 1 to ``TITLE_MAX`` characters). A conversation read shows each
turn's ``feedback``: the caller's rating of it (``graft.server.feedback``), or ``null``; and
its ``citations``: the passages its answer cited, as the stream's ``cited`` event listed them
(``graft.store.turn_citations``), so a reloaded answer shows the same footnotes; ``[]`` if none.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from graft.server.deps import CurrentGraft, CurrentPrincipal
from graft.store.base import TITLE_MAX, ConversationInfo, StoredMessage

__all__ = ["router"]

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


class RenameRequest(BaseModel):
    """``PATCH /v1/conversations/{id}``."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(
        max_length=4 * TITLE_MAX,  # whitespace runs become one space: the store checks the rest
        description=f"The new title: 1 to {TITLE_MAX} characters on one line.",
    )


def _header(info: ConversationInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "object": "conversation",
        "title": info.title,
        "assistant": info.assistant,
        "created_at": info.created_at.isoformat(),
        "updated_at": info.updated_at.isoformat(),
    }


@router.get("", summary="List your conversations, most recent first")
async def list_conversations(
    graft: CurrentGraft,
    principal: CurrentPrincipal,
    limit: int = Query(50, ge=1, le=200),
    offset: int = Query(0, ge=0),
    q: str | None = Query(
        None, max_length=TITLE_MAX, description="Only titles that contain this, ignoring case."
    ),
) -> dict[str, Any]:
    """A page of the caller's conversations (of those titled with ``q``, if given)."""
    await graft.pending.wait()
    query = q.strip() if q else None
    infos = await graft.store.list_conversations(
        principal, limit=limit, offset=offset, query=query or None
    )
    return {"object": "list", "data": [_header(i) for i in infos]}


@router.get("/{conversation_id}", summary="Read one conversation with its messages and turns")
async def get_conversation(
    conversation_id: str, graft: CurrentGraft, principal: CurrentPrincipal
) -> dict[str, Any]:
    """One conversation: header, messages (OpenAI shape) and turns."""
    await graft.pending.wait(conversation_id)
    info, messages, turns = await graft.store.get_conversation(conversation_id, principal)
    feedback = await graft.store.get_feedback_for(conversation_id, principal)
    return {
        **_header(info),
        "messages": [_message(m) for m in messages],
        "turns": [
            {
                "id": t.id,
                "status": t.status,
                "model": t.model,
                "route": t.route,
                "finish_reason": t.finish_reason,
                "error": t.error,
                "started_at": t.started_at.isoformat(),
                "duration_ms": None if t.duration_ms is None else round(t.duration_ms, 3),
                "usage": t.usage.to_openai(),
                "tool_runs": [
                    {
                        "call_id": r.call_id,
                        "name": r.name,
                        "arguments": r.arguments,
                        "result": r.result,
                        "is_error": r.is_error,
                        "duration_ms": round(r.duration_ms, 3),
                    }
                    for r in t.tool_runs
                ],
                "citations": t.citations,
                "feedback": feedback[t.id].to_json() if t.id in feedback else None,
            }
            for t in turns
        ],
    }


def _message(stored: StoredMessage) -> dict[str, Any]:
    out = {
        **stored.message.to_openai(),
        "turn_id": stored.turn_id,
        "created_at": stored.created_at.isoformat(),
    }
    if stored.sentiment is not None:  # the sentiment middleware's tag of a user message
        out["sentiment"] = stored.sentiment.to_json()
    return out


@router.patch("/{conversation_id}", summary="Rename one conversation")
async def rename_conversation(
    conversation_id: str, body: RenameRequest, graft: CurrentGraft, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Set the conversation's title; answer its header."""
    await graft.pending.wait(conversation_id)
    info = await graft.store.rename_conversation(conversation_id, principal, body.title)
    return _header(info)


@router.delete("/{conversation_id}", summary="Delete one conversation")
async def delete_conversation(
    conversation_id: str, graft: CurrentGraft, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Delete a conversation and everything in it."""
    await graft.pending.wait(conversation_id)
    await graft.store.delete_conversation(conversation_id, principal)
    return {"id": conversation_id, "object": "conversation.deleted", "deleted": True}

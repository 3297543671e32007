"""``POST /v1/conversations/{id}/cancel``: stop the streamed answer of a conversation.

Closing the connection stops a stream; this stops it from anywhere else: another tab, another
device, or a request that the load balancer sent to another worker than the stream's
(``graft.streams`` publishes the cancel to every worker through Redis). The turn ends as it
does when its client goes away: stored as ``interrupted`` ("the turn was cancelled"), with
its partial answer. 404 when no stream of that conversation runs for the caller (also
someone else's conversation).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from graft.errors import NotFound
from graft.server.deps import CurrentGraft, CurrentPrincipal

__all__ = ["router"]

router = APIRouter(prefix="/v1/conversations", tags=["conversations"])


@router.post(
    "/{conversation_id}/cancel",
    summary="Stop the streamed answer of a conversation",
    responses={404: {"description": "No streamed answer of yours runs in that conversation"}},
)
async def cancel_stream(
    conversation_id: str, graft: CurrentGraft, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Stop the conversation's running streams, on whichever worker they run."""
    if not await graft.streams.cancel(principal, conversation_id[:64]):
        raise NotFound(
            f"no streamed answer is running in conversation {conversation_id[:64]!r}",
            code="stream_not_found",
        )
    return {"id": conversation_id[:64], "object": "conversation.cancel", "cancelled": True}

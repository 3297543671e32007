"""A user's own data over REST, and the one view admins have of other people's chats.

``GET /v1/me/export`` hands the caller everything stored of their conversations (messages,
turns, tool runs) as one JSON attachment; ``DELETE /v1/me/data`` deletes all of it, and
asks for ``{"confirm": "delete my data"}`` so that no stray request does it. Both act on the
caller alone, and both are recorded in the audit log (``graft.audit``) with counts, never
contents. The account and its keys stay (``DELETE /v1/keys/{id}`` revokes a key).

**Chats are private to their owner.** An admin gets ``GET /v1/admin/conversations``: the
conversations of their own tenant as metadata (id, user, assistant, times, message count),
never titles (a title is the first user message) and never messages. Every route under
``/v1/conversations`` is scoped to the conversation's owner, so an admin asking for someone
else's conversation gets 404 like anyone else. No policy grants admins the contents of other
people's conversations today. If one is ever added, it must be documented, and each access
it grants must be recorded in the audit log (who, which conversation, why) before any
content is returned.

As with ``graft.server.admin``, anyone but an admin gets the answer an unknown path gets
(404, for every method, before any parameter is looked at), recorded as ``access.denied``,
and the admin route is left out of the OpenAPI document.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from graft import audit
from graft.errors import InvalidRequest
from graft.server.admin import METHODS, admin_request
from graft.server.deps import CurrentGraft, CurrentPrincipal, int_param
from graft.store.base import ConversationInfo

__all__ = ["CONFIRMATION", "MAX_LIMIT", "router"]

router = APIRouter(tags=["privacy"])

CONFIRMATION = "delete my data"
"""What ``DELETE /v1/me/data`` must carry as ``confirm``."""

MAX_LIMIT = 200
"""The most conversations one page of ``/v1/admin/conversations`` holds."""


class DeleteRequest(BaseModel):
    """``DELETE /v1/me/data``."""

    model_config = ConfigDict(extra="forbid")

    confirm: str = Field(max_length=64, description=f'Exactly "{CONFIRMATION}".')


@router.get("/v1/me/export", summary="Download everything stored of your conversations")
async def export_my_data(graft: CurrentGraft, principal: CurrentPrincipal) -> JSONResponse:
    """Every conversation of the caller, as a JSON file to save."""
    await graft.pending.wait()
    document = await graft.store.export_user_data(principal.tenant, principal.user_id)
    await audit.record(
        graft.store,
        audit.AuditEvent(
            "user_data.export",
            principal.user_id,
            principal.tenant,
            f"user:{principal.user_id}",
            details={"conversations": len(document["conversations"])},
        ),
    )
    name = f"graft-export-{datetime.now(UTC):%Y%m%d}.json"
    return JSONResponse(
        document,
        headers={
            "Content-Disposition": f'attachment; filename="{name}"',
            "Cache-Control": "no-store",
        },
    )


@router.delete("/v1/me/data", summary="Delete every conversation of yours")
async def delete_my_data(
    body: DeleteRequest, graft: CurrentGraft, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Delete all the caller's conversations with everything in them; answer how many."""
    if body.confirm != CONFIRMATION:
        raise InvalidRequest(
            f'deleting all your conversations cannot be undone: send {{"confirm": '
            f'"{CONFIRMATION}"}} to do it',
            param="confirm",
            code="confirmation_required",
        )
    await graft.pending.wait()
    count = await graft.store.delete_user_data(principal.tenant, principal.user_id)
    await audit.record(
        graft.store,
        audit.AuditEvent(
            "user_data.delete",
            principal.user_id,
            principal.tenant,
            f"user:{principal.user_id}",
            details={"conversations": count},
        ),
    )
    return {"object": "user_data.deleted", "deleted": True, "conversations": count}


@router.api_route("/v1/admin/conversations", methods=METHODS, include_in_schema=False)
async def list_tenant_conversations(request: Request) -> dict[str, Any]:
    """Admins: a page of their tenant's conversations, metadata only, newest first."""
    graft, principal = await admin_request(request)
    limit = int_param(request, "limit", 50, 1, MAX_LIMIT)
    offset = int_param(request, "offset", 0, 0, None)
    await graft.pending.wait()
    infos = await graft.store.list_tenant_conversations(
        principal.tenant, limit=limit, offset=offset
    )
    await audit.record(
        graft.store,
        audit.AuditEvent(
            "conversations.list_tenant",
            principal.user_id,
            principal.tenant,
            f"tenant:{principal.tenant}",
            details={"limit": limit, "offset": offset, "returned": len(infos)},
        ),
    )
    return {"object": "list", "data": [_metadata(i) for i in infos]}


def _metadata(info: ConversationInfo) -> dict[str, Any]:
    """What an admin may see of a conversation: never its title or messages."""
    return {
        "id": info.id,
        "object": "conversation.metadata",
        "user": info.user_id,
        "assistant": info.assistant,
        "created_at": info.created_at.isoformat(),
        "updated_at": info.updated_at.isoformat(),
        "message_count": info.message_count,
    }

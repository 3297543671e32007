"""``/v1/approvals``: the user answers a tool call that waits for approval.

A streamed turn announces the wait in a chunk's ``graft`` field (``"event":
"approval_required"`` with the approval's ``id``, the tool's name and arguments); a client
that did not stream, or a second window, finds it with ``GET /v1/approvals``. Only the user
whose turn asked may answer; to anyone else the approval does not exist (404).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from graft.approvals import Approval
from graft.server.deps import CurrentGraft, CurrentPrincipal

__all__ = ["router"]

router = APIRouter(prefix="/v1/approvals", tags=["approvals"])


class Decision(BaseModel):
    """``POST /v1/approvals/{id}``."""

    model_config = ConfigDict(extra="forbid")

    approve: bool
    reason: str = Field(default="", max_length=1000, description="Told to the model if denied.")


def _json(approval: Approval) -> dict[str, Any]:
    return {
        "id": approval.id,
        "object": "approval",
        "conversation_id": approval.conversation_id,
        "call_id": approval.call.id,
        "name": approval.call.name,
        "arguments": approval.call.arguments,
        "created": int(approval.created),
    }


@router.get("", summary="Tool calls waiting for your approval")
async def list_approvals(graft: CurrentGraft, principal: CurrentPrincipal) -> dict[str, Any]:
    """Your pending approvals, oldest first."""
    return {"object": "list", "data": [_json(a) for a in await graft.approvals.listed(principal)]}


@router.post("/{approval_id}", summary="Approve or deny a waiting tool call")
async def decide(
    approval_id: str, decision: Decision, graft: CurrentGraft, principal: CurrentPrincipal
) -> dict[str, Any]:
    """The waiting turn goes on at once: the call runs, or the model hears it was denied."""
    approval = await graft.approvals.answer(
        approval_id[:64], principal, decision.approve, decision.reason
    )
    return {**_json(approval), "approved": decision.approve}

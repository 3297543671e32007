"""Feedback over REST: people rate the turns of their own conversations; admins read them.

``POST /v1/feedback`` stores the caller's rating of one turn, up or down, with an optional
comment (at most ``COMMENT_LENGTH`` characters); posting again for the same turn replaces
it. ``DELETE /v1/feedback/{turn_id}`` takes it back. A turn that is not in one of the
caller's conversations answers 404, as if it did not exist, so turn ids cannot be probed.
The caller's rating of each turn shows in ``GET /v1/conversations/{id}``
(``graft.server.conversations``). Giving and taking back a rating is the user's own
business with their own conversation, as renaming or deleting it is: neither is recorded
in the audit log.

``GET /v1/admin/feedback`` lists the ratings of the admin's tenant, newest first, with who
gave them, to which assistant, and their comments: a comment is written for the people who
run the assistant. It never shows what was said in the conversation rated, only its id
(chats stay private to their owner, ``graft.server.privacy``), and each read is recorded in
the audit log, as the admins' list of conversations is. As with ``graft.server.admin``,
anyone but an admin gets the answer an unknown path gets (404, for every method), and the
route is left out of the OpenAPI document. Pages go by cursor, as OpenAI's lists do:
``after`` is the ``last_id`` of the previous page, and ``has_more`` says whether there is
another.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field

from graft import audit
from graft.errors import InvalidRequest, NotFound
from graft.server.admin import METHODS, admin_request
from graft.server.deps import CurrentGraft, CurrentPrincipal, int_param
from graft.store.base import COMMENT_LENGTH, StoredFeedback, check_rating

__all__ = ["MAX_LIMIT", "router"]

router = APIRouter(tags=["feedback"])

MAX_LIMIT = 500
"""The most ratings one page of ``/v1/admin/feedback`` holds."""


class FeedbackRequest(BaseModel):
    """``POST /v1/feedback``."""

    model_config = ConfigDict(extra="forbid")

    turn_id: str = Field(
        min_length=1, max_length=64, description="The turn rated (a response's turn_id)."
    )
    rating: Literal["up", "down"] = Field(description="Thumbs up or down.")
    comment: str | None = Field(
        default=None,
        max_length=COMMENT_LENGTH,
        description="Why, in the user's words; an empty one is none.",
    )


@router.post("/v1/feedback", summary="Rate a turn of one of your conversations")
async def put_feedback(
    body: FeedbackRequest, graft: CurrentGraft, principal: CurrentPrincipal, request: Request
) -> dict[str, Any]:
    """Store the caller's rating of the turn (again replaces it); 404 unless it is theirs."""
    stored = await graft.store.put_feedback(principal, body.turn_id, body.rating, body.comment)
    answered = await graft.store.turn_model(body.turn_id)  # per-model ratings in /metrics
    if answered is not None:
        request.app.state.metrics.observe_feedback(*answered, body.rating)
    return stored.to_json()


@router.delete("/v1/feedback/{turn_id}", summary="Take back your rating of a turn")
async def delete_feedback(
    turn_id: str, graft: CurrentGraft, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Delete the caller's rating of the turn; 404 if they have none."""
    if not await graft.store.delete_feedback(principal, turn_id):
        raise NotFound(f"you have no feedback on turn {turn_id[:64]!r}", code="feedback_not_found")
    return {"object": "feedback.deleted", "turn_id": turn_id, "deleted": True}


@router.api_route("/v1/admin/feedback", methods=METHODS, include_in_schema=False)
async def list_feedback(request: Request) -> dict[str, Any]:
    """Admins: a page of their tenant's ratings, newest first; ``rating`` keeps one kind."""
    graft, principal = await admin_request(request)
    raw = request.query_params.get("rating")
    rating = None if raw is None else check_rating(raw)
    after = request.query_params.get("after") or None
    if after is not None and len(after) > 64:
        raise InvalidRequest("after must be the id of a feedback (last_id)", param="after")
    limit = int_param(request, "limit", 100, 1, MAX_LIMIT)
    found = await graft.store.list_feedback(
        principal.tenant, rating=rating, after=after, limit=limit + 1
    )
    page = found[:limit]
    await audit.record(
        graft.store,
        audit.AuditEvent(
            "feedback.list_tenant",
            principal.user_id,
            principal.tenant,
            f"tenant:{principal.tenant}",
            details={"rating": rating, "limit": limit, "returned": len(page)},
        ),
    )
    return {
        "object": "list",
        "data": [_for_admin(f) for f in page],
        "first_id": page[0].id if page else None,
        "last_id": page[-1].id if page else None,
        "has_more": len(found) > limit,
    }


def _for_admin(given: StoredFeedback) -> dict[str, Any]:
    """A rating as an admin sees it: who gave it to which assistant; no conversation contents."""
    return {**given.to_json(), "user": given.user_id, "assistant": given.assistant}

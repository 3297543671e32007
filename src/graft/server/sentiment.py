"""``GET /v1/sentiment``: how users' messages felt over time, per assistant or conversation.

The points come from the tags the ``sentiment`` middleware stores with each user message
(``graft.default_plugins.sentiment``). Everyone sees their own conversations; an admin sees
every conversation of their tenant and may narrow it to one user. ``since`` and ``until``
(RFC 3339 date-times with their zone) keep the tags dated from ``since`` on and before
``until``; an ``until`` before ``since`` is refused. The web UI draws it.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query

from graft.errors import InvalidRequest
from graft.policy import ADMIN_ROLE
from graft.server.deps import CurrentGraft, CurrentPrincipal

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["sentiment"])

_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)")


def _moment(value: str, param: str) -> datetime:
    """An RFC 3339 date-time (a zone is required: a report's buckets are UTC)."""
    try:
        if _RFC3339.fullmatch(value):
            return datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:  # well formed, but no such moment (month 13)
        pass
    raise InvalidRequest(
        f"{param} must be a date-time with its zone, such as 2026-11-01T00:00:00Z, not {value!r}",
        param=param,
    )


_MOMENT = Query(
    max_length=40,
    description="RFC 3339 date-time with its zone, e.g. 2026-11-01T00:00:00Z.",
    json_schema_extra={"format": "date-time"},
)


@router.get("/sentiment", summary="Sentiment of users' messages over time")
async def sentiment_report(
    graft: CurrentGraft,
    principal: CurrentPrincipal,
    assistant: Annotated[str | None, Query(max_length=255)] = None,
    conversation_id: Annotated[str | None, Query(max_length=64)] = None,
    user: Annotated[str | None, Query(max_length=255, description="Admins: one user.")] = None,
    since: Annotated[str | None, _MOMENT] = None,
    until: Annotated[str | None, _MOMENT] = None,
    bucket: Literal["hour", "day", "week"] = "day",
) -> dict[str, Any]:
    """Counts per label and the mean signed score per bucket, oldest first.

    The mean counts +score for positive, -score for negative and 0 for neutral; points are
    per assistant, or per conversation when one is named. Tags dated from ``since`` on and
    before ``until`` count.
    """
    admin = ADMIN_ROLE in principal.roles
    if user is not None and not admin:
        raise InvalidRequest("only an admin may ask for another user's report", param="user")
    start = _moment(since, "since") if since is not None else None
    end = _moment(until, "until") if until is not None else None
    if start is not None and end is not None and end < start:
        raise InvalidRequest(f"until ({until}) is before since ({since})", param="until")
    await graft.pending.wait(conversation_id)
    points = await graft.store.sentiment_report(
        principal.tenant,
        assistant=assistant,
        conversation_id=conversation_id,
        user_id=user if admin else principal.user_id,
        since=start,
        until=end,
        bucket=bucket,
    )
    return {"object": "list", "bucket": bucket, "data": [p.to_json() for p in points]}

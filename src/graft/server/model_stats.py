"""``GET /v1/admin/models/stats``: per-model turns, failures, latency, tokens and ratings.

The store's report (``graft.store.model_stats``) of the admin's tenant: finished turns
grouped by assistant, model and route, so that a canary's candidate reads beside its
baseline. ``since`` and ``until`` (RFC 3339 date-times with their zone) bound the turns'
start; ``since`` defaults to seven days ago. ``assistant`` keeps one assistant. The routes
and aliases in force are listed beside the numbers (``graft.model_routing``).

As with ``graft.server.admin``, anyone but an admin gets the answer an unknown path gets
(404, for every method, before any parameter is looked at), and the route is left out of
the OpenAPI document.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request

from graft.errors import InvalidRequest
from graft.model_routing import registry_listing
from graft.server.admin import METHODS, admin_request

__all__ = ["DEFAULT_WINDOW", "router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"], include_in_schema=False)

DEFAULT_WINDOW = timedelta(days=7)
"""How far back a report reaches when ``since`` is not given."""


def _moment(value: str, param: str) -> datetime:
    """An ISO 8601 / RFC 3339 date-time with its zone."""
    try:
        found = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        found = None
    if found is None or found.tzinfo is None:
        raise InvalidRequest(
            f"{param} must be a date-time with its zone, such as 2026-11-01T00:00:00Z, "
            f"not {value[:40]!r}",
            param=param,
        )
    return found


@router.api_route("/models/stats", methods=METHODS)
async def model_stats(request: Request) -> dict[str, Any]:
    """Admins: their tenant's finished turns by assistant, model and route."""
    graft, principal = await admin_request(request)
    query = request.query_params
    since = _moment(query["since"], "since") if "since" in query else None
    until = _moment(query["until"], "until") if "until" in query else None
    since = since or (until or datetime.now(UTC)) - DEFAULT_WINDOW
    assistant = query.get("assistant") or None
    if assistant is not None and len(assistant) > 255:
        raise InvalidRequest("assistant is at most 255 characters", param="assistant")
    rows = await graft.store.model_stats(
        principal.tenant, since=since, until=until, assistant=assistant
    )
    return {
        "object": "list",
        "since": since.isoformat(),
        "until": until.isoformat() if until else None,
        "data": [row.to_json() for row in rows],
        "registry": registry_listing(
            graft.settings,
            [(e.name, e.settings) for e in await graft.catalog.entries(principal, managed=True)],
        ),
    }

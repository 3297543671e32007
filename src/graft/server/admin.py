"""Admin-only REST routes: reading the audit log.

Only a principal with the ``admin`` role sees these routes. Anyone else gets the very answer
an unknown path gets (404, for every method, before any parameter is looked at), so the
routes do not reveal that they exist; they are left out of the OpenAPI document for the same
reason. A refused call is recorded as ``access.denied``. An admin sees their own tenant's
records; ``graft audit tail`` on the server's machine shows every tenant's, and the failed
authentications, which belong to no tenant.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from graft import audit
from graft.policy import ADMIN_ROLE
from graft.server.deps import graft_of, int_param, principal_of

__all__ = ["MAX_LIMIT", "router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"], include_in_schema=False)

MAX_LIMIT = 1000
"""The most records one request returns."""
_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
"""Every method answers alike for a non-admin: a 405 would give the route away."""


@router.api_route("/audit", methods=_METHODS)
async def read_audit(request: Request) -> dict[str, Any]:
    """Audit records oldest first: ``limit`` after ``after``, or the newest ``limit``."""
    graft, principal = graft_of(request), principal_of(request)
    if ADMIN_ROLE not in principal.roles:
        await audit.record_denied(graft.store, principal, f"route:{request.url.path}", "not admin")
        raise StarletteHTTPException(404)
    if request.method not in ("GET", "HEAD"):
        raise StarletteHTTPException(405)
    after = int_param(request, "after", None, 0, None)
    limit = int_param(request, "limit", 100, 1, MAX_LIMIT)
    records = await graft.store.list_audit(after, limit, principal.tenant)
    return {
        "object": "list",
        "data": [r.to_json() for r in records],
        "last_seq": records[-1].seq if records else after,
    }

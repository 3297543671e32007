"""Admin-only REST routes: reading the audit log.

Only a principal with the ``admin`` role sees these routes. Anyone else gets the very answer
an unknown path gets (404, for every method, before any parameter is looked at), so the
routes do not reveal that they exist; they are left out of the OpenAPI document for the same
reason. A refused call is recorded as ``access.denied``. An admin sees their own tenant's
records; ``graft audit tail`` on the server's machine shows every tenant's, and the failed
authentications, which belong to no tenant.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from fastapi import APIRouter, Request
from starlette.exceptions import HTTPException as StarletteHTTPException

from graft import audit
from graft.context import Principal
from graft.policy import ADMIN_ROLE
from graft.runtime import Graft
from graft.server.deps import graft_of, int_param, principal_of

__all__ = ["MAX_LIMIT", "METHODS", "admin_request", "router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"], include_in_schema=False)

MAX_LIMIT = 1000
"""The most records one request returns."""
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
"""Every method answers alike for a non-admin: a 405 would give the route away."""


async def admin_request(
    request: Request, methods: Collection[str] = ("GET", "HEAD")
) -> tuple[Graft, Principal]:
    """The graft and the principal of an admin route's request (read-only: ``methods``).

    Raises:
        HTTPException: 404 for anyone but an admin, whatever the method (recorded as a
            refusal), so that the route gives nothing away; 405 for an admin's request
            with another method than ``methods``.
    """
    graft, principal = graft_of(request), principal_of(request)
    if ADMIN_ROLE not in principal.roles:
        await audit.record_denied(graft.store, principal, f"route:{request.url.path}", "not admin")
        raise StarletteHTTPException(404)
    if request.method not in methods:
        raise StarletteHTTPException(405)
    return graft, principal


@router.api_route("/audit", methods=METHODS)
async def read_audit(request: Request) -> dict[str, Any]:
    """Audit records oldest first: ``limit`` after ``after``, or the newest ``limit``."""
    graft, principal = await admin_request(request)
    after = int_param(request, "after", None, 0, None)
    limit = int_param(request, "limit", 100, 1, MAX_LIMIT)
    records = await graft.store.list_audit(after, limit, principal.tenant)
    return {
        "object": "list",
        "data": [r.to_json() for r in records],
        "last_seq": records[-1].seq if records else after,
    }

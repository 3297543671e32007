"""``/v1/keys``: people manage their own API keys; admins manage their tenant's.

A user lists, creates and revokes their own keys; an admin those of every user of their own
tenant (``POST`` with ``user``: the admin UI's "users and keys"). A key of anyone else
(another user's, for a non-admin; another tenant's, for everyone) answers 404, as if it did
not exist, so ids cannot be probed; so does a non-admin's ``user`` naming someone else, and
an admin's naming a user of another tenant, so user names cannot be probed either. A new
key is in the response once and never again; it carries at most the roles its user has and
its creator may give (``graft.identity.issue_key``). Creating and revoking are recorded in
the audit log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from graft import audit
from graft.context import Principal
from graft.errors import NotFound
from graft.identity import ROLES, issue_key
from graft.policy import ADMIN_ROLE
from graft.server.deps import CurrentGraft, CurrentPrincipal
from graft.store.base import ApiKeyInfo, User
from graft.store.users import user_not_found

__all__ = ["router"]

router = APIRouter(prefix="/v1/keys", tags=["keys"])


class KeyRequest(BaseModel):
    """``POST /v1/keys``."""

    model_config = ConfigDict(extra="forbid")

    user: str | None = Field(default=None, description="Whose key (admins only); default: yours.")
    roles: list[str] | None = Field(
        default=None,
        max_length=len(ROLES),
        description="Roles the key carries; default: every role of the user you may give.",
    )
    name: str = Field(default="", max_length=255, description="A label for listings.")


def _is_admin(principal: Principal) -> bool:
    return ADMIN_ROLE in principal.roles


def _visible(principal: Principal, key: ApiKeyInfo) -> bool:
    """Whether ``principal`` may see ``key`` at all (otherwise it does not exist for them)."""
    if key.tenant != principal.tenant:
        return False
    return _is_admin(principal) or key.user == principal.user_id


def _json(key: ApiKeyInfo) -> dict[str, Any]:
    def when(moment: datetime | None) -> int | None:
        return int(moment.timestamp()) if moment else None

    return {
        "id": key.id,
        "object": "api_key",
        "user": key.user,
        "name": key.name,
        "roles": list(key.roles),
        "created_by": key.created_by,
        "created_at": when(key.created_at),
        "revoked_at": when(key.revoked_at),
    }


@router.get("", summary="List API keys (yours; an admin: the tenant's)")
async def list_keys(
    graft: CurrentGraft,
    principal: CurrentPrincipal,
    user: str | None = Query(default=None, max_length=255, description="Only this user's."),
) -> dict[str, Any]:
    """Keys by their public id, newest first; never the keys themselves."""
    if not _is_admin(principal):
        if user not in (None, principal.user_id):
            return {"object": "list", "data": []}
        user = principal.user_id
    keys = await graft.store.list_keys(principal.tenant, user)
    return {"object": "list", "data": [_json(k) for k in keys if _visible(principal, k)]}


@router.post("", status_code=201, summary="Create an API key (shown once)")
async def create_key(
    body: KeyRequest, graft: CurrentGraft, principal: CurrentPrincipal
) -> JSONResponse:
    """Make a key; the response is the only place the key ever appears."""
    name = body.user or principal.user_id
    if name != principal.user_id and not _is_admin(principal):
        raise user_not_found(principal.tenant, name)
    owner: User = await graft.store.get_user(principal.tenant, name)
    key, info = await issue_key(
        graft.store, owner, creator=principal, roles=body.roles, name=body.name
    )
    details = {"user": info.user, "roles": list(info.roles), "name": info.name}
    event = audit.AuditEvent("key.create", principal.user_id, info.tenant, info.id, "ok", details)
    await audit.record(graft.store, event)
    return JSONResponse({**_json(info), "key": key}, status_code=201)


@router.delete("/{key_id}", summary="Revoke an API key")
async def revoke_key(
    key_id: str, graft: CurrentGraft, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Revoke one of your keys (an admin: any key of the tenant). Others' answer 404."""
    found = await graft.store.find_key(key_id[:64])
    if found is None or not _visible(principal, found.info):
        raise NotFound(f"no API key {key_id[:64]!r}", code="key_not_found")
    info = await graft.store.revoke_key(found.info.id, principal.tenant)
    event = audit.AuditEvent(
        "key.revoke", principal.user_id, info.tenant, info.id, "ok", {"user": info.user}
    )
    await audit.record(graft.store, event)
    return _json(info)

"""Who the caller is, and how one signs in: what a web page asks before it shows anything.

- ``GET /v1/auth/methods`` is public (``graft.server.auth.PUBLIC_PATHS``): a sign-in page
  reads it before it has credentials. It says only which ways in the server offers:
  ``single_user`` (nobody is set up: no key in the settings file and no user in the store,
  so every request is ``auth.default_user`` and no sign-in is needed; as in
  ``graft.default_plugins.api_key_auth``), ``api_key`` (a key made for a user of the store
  signs a browser in: ``POST /v1/auth/session``) and ``oidc`` (``/v1/auth/oidc/login``).
  Nothing about users, keys or the issuer's address.
- ``GET /v1/me``: the caller's principal, and whether they are an admin and a builder (who
  may manage the tenant's assistants and documents: ``graft.assistants.may_manage``), so a
  page knows what to offer; the server checks every request all the same.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from graft.assistants import may_manage
from graft.policy import ADMIN_ROLE
from graft.server.deps import CurrentGraft, CurrentPrincipal

__all__ = ["router"]

router = APIRouter(tags=["auth"])


@router.get("/v1/auth/methods", summary="How one signs in (public)")
async def auth_methods(graft: CurrentGraft) -> dict[str, bool]:
    """Which sign-in methods the login page should offer."""
    has_users = await graft.store.has_users()
    return {
        "single_user": not graft.settings.auth.api_keys and not has_users,
        "api_key": has_users,
        "oidc": graft.settings.auth.oidc_issuer is not None,
    }


@router.get("/v1/me", summary="Who you are")
async def me(principal: CurrentPrincipal) -> dict[str, Any]:
    """Your user, tenant, roles and groups, and whether you are an admin and a builder."""
    return {
        "object": "user",
        "user": principal.user_id,
        "tenant": principal.tenant,
        "roles": sorted(principal.roles),
        "groups": sorted(principal.groups),
        "is_admin": ADMIN_ROLE in principal.roles,
        "is_builder": may_manage(principal),
    }

"""Admin routes that manage users, and one that lists what is plugged in.

- ``GET /v1/admin/users``: the admin's tenant's users;
- ``POST /v1/admin/users`` ``{name, roles, groups}``: add one (what ``graft users add``
  does, in the admin's tenant);
- ``PATCH /v1/admin/users/{name}`` ``{disabled?, roles?, groups?}``: disable a user (their
  keys and browser sessions stop working at once) or enable them again (``graft users
  disable|enable``), and replace their roles or groups (``graft users set-roles|set-groups``).
  A role taken away is gone from the user's keys and sessions at their next request; a role
  given reaches the keys made after (``graft.identity``: a key never carries more than it
  was made with). An admin may neither disable themselves nor take their own admin role;
- ``GET /v1/admin/plugins``: the loaded plugins with the package and version each comes
  from (``graft plugins``), the configured MCP servers with their tools while connected,
  and the configured OpenAPI services. No command, URL query, header or credential.

They behave as ``graft.server.admin``'s routes do (``admin_request``): anyone but an admin
gets what an unknown path gets, for every method, before the body is read; they are left
out of the OpenAPI document. Every change is recorded in the audit log with the admin as
its actor, as the command line records its own.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.responses import JSONResponse

from graft import audit
from graft.errors import InvalidRequest
from graft.identity import ROLES, check_roles
from graft.policy import ADMIN_ROLE
from graft.secrets import mask_secrets
from graft.server.admin import METHODS, admin_request
from graft.server.body import parse_json_body
from graft.store.base import User

__all__ = ["NewUser", "UserChange", "router"]

router = APIRouter(prefix="/v1/admin", tags=["admin"], include_in_schema=False)

_NAME = Field(min_length=1, max_length=255, pattern=r"\S")


class NewUser(BaseModel):
    """``POST /v1/admin/users``."""

    model_config = ConfigDict(extra="forbid")

    name: str = _NAME
    roles: list[str] = Field(default_factory=lambda: ["user"], max_length=len(ROLES))
    groups: list[str] = Field(default_factory=list, max_length=100)


class UserChange(BaseModel):
    """``PATCH /v1/admin/users/{name}``."""

    model_config = ConfigDict(extra="forbid")

    disabled: bool | None = None
    roles: list[str] | None = Field(default=None, min_length=1, max_length=len(ROLES))
    groups: list[str] | None = Field(default=None, max_length=100)


def _user_json(user: User) -> dict[str, Any]:
    return {
        "object": "user",
        "name": user.name,
        "tenant": user.tenant,
        "roles": list(user.roles),
        "groups": list(user.groups),
        "disabled": not user.active,
        "created_at": int(user.created_at.timestamp()),
        "disabled_at": int(user.disabled_at.timestamp()) if user.disabled_at else None,
    }


def _groups(names: list[str]) -> list[str]:
    """Group names without surrounding blanks or duplicates, sorted.

    Raises:
        InvalidRequest: A name is blank or longer than 255 characters.
    """
    groups = sorted({g.strip() for g in names})
    if any(not g or len(g) > 255 for g in groups):
        raise InvalidRequest("a group name has 1 to 255 characters", param="groups")
    return groups


@router.api_route("/users", methods=METHODS)
async def users(request: Request) -> Any:
    """``GET``: the tenant's users by name; ``POST``: add one (201)."""
    graft, principal = await admin_request(request, methods=("GET", "HEAD", "POST"))
    if request.method != "POST":
        found = await graft.store.list_users(principal.tenant)
        return {"object": "list", "data": [_user_json(u) for u in found]}
    max_depth = graft.settings.limits.max_json_depth
    body = await parse_json_body(request, NewUser, max_depth=max_depth)
    user = await graft.store.create_user(
        tenant=principal.tenant,
        name=body.name,
        roles=check_roles(body.roles or ["user"]),
        groups=_groups(body.groups),
    )
    details = {"roles": list(user.roles), "groups": list(user.groups)}
    await audit.record_ok(graft.store, "user.create", principal, user.name, details)
    return JSONResponse(_user_json(user), status_code=201)


@router.api_route("/users/{name}", methods=METHODS)
async def user(request: Request, name: str) -> dict[str, Any]:
    """``GET``: one user; ``PATCH``: change their roles or groups, disable or enable them."""
    graft, principal = await admin_request(request, methods=("GET", "HEAD", "PATCH"))
    if len(name) > 255:
        raise InvalidRequest("a user name has at most 255 characters", param="name")
    found = await graft.store.get_user(principal.tenant, name)  # NotFound: user_not_found
    if request.method != "PATCH":
        return _user_json(found)
    max_depth = graft.settings.limits.max_json_depth
    change = await parse_json_body(request, UserChange, max_depth=max_depth)
    roles = None if change.roles is None else check_roles(change.roles)
    groups = None if change.groups is None else _groups(change.groups)
    if name == principal.user_id:
        if change.disabled:
            raise InvalidRequest("you cannot disable yourself", param="disabled")
        if roles is not None and ADMIN_ROLE not in roles:
            raise InvalidRequest("you cannot take the admin role from yourself", param="roles")
    updated = found
    details: dict[str, Any] = {}
    before: dict[str, Any] = {}
    if roles is not None and sorted(roles) != sorted(found.roles):
        updated = await graft.store.set_user_roles(principal.tenant, name, roles)
        details["roles"], before["roles"] = roles, list(found.roles)
    if groups is not None and groups != sorted(found.groups):
        updated = await graft.store.set_user_groups(principal.tenant, name, groups)
        details["groups"], before["groups"] = groups, list(found.groups)
    if details:
        await audit.record_ok(
            graft.store, "user.update", principal, name, {**details, "before": before}
        )
    if change.disabled is not None and change.disabled == found.active:
        updated = await graft.store.set_user_disabled(principal.tenant, name, change.disabled)
        verb = "disable" if change.disabled else "enable"
        await audit.record_ok(graft.store, f"user.{verb}", principal, name)
    return _user_json(updated)


@router.api_route("/plugins", methods=METHODS)
async def plugins(request: Request) -> dict[str, Any]:
    """The loaded plugins, the MCP servers (their tools while connected), the services."""
    graft, _ = await admin_request(request)
    toolsets = {toolset.name: toolset for toolset in graft.tools.toolsets}
    servers = []
    for name, server in sorted(graft.settings.mcp_servers.items()):
        toolset = toolsets.get(f"mcp:{name}")
        tools = None if toolset is None else _connected_tools(toolset)
        servers.append(
            {
                "name": name,
                "transport": "stdio" if server.command else "http",
                "connected": tools is not None,
                "tools": tools or [],
            }
        )
    services = [
        {
            "name": name,
            "spec": mask_secrets(service.spec),
            "description": service.description_for_model,
        }
        for name, service in sorted(graft.settings.services.items())
    ]
    return {
        "object": "plugins",
        "plugins": [
            {"name": i.name, "package": i.package, "version": i.version, "hooks": i.hooks}
            for i in graft.plugin_infos()
        ],
        "mcp_servers": servers,
        "services": services,
    }


def _connected_tools(toolset: object) -> list[str] | None:
    """The tool names of an MCP server's live session; ``None`` while it has none.

    Connects nothing (``list_tools`` would start the server).
    """
    from graft.mcp_bridge.toolset import MCPToolset  # the mcp extra, there if it made one

    connected = toolset.connected_tools() if isinstance(toolset, MCPToolset) else None
    return None if connected is None else sorted(tool.name for tool in connected)

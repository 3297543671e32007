"""``graft users`` and ``graft keys``: who may use this graft, from the command line.

The command line acts as the operator of the installation: it reads the database the
settings point at, so it may do what an admin may. Users live in the store; a key is printed
once, on standard output alone (``KEY=$(graft keys create --user ann)``), and only its
digest is kept (``graft.identity``).
"""

from __future__ import annotations

import contextlib
import getpass
import json
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import click

from graft.cli_common import async_command, settings_of
from graft.context import Principal
from graft.errors import ConfigError
from graft.identity import ROLES, check_roles, issue_key
from graft.store import Store, open_store
from graft.store.base import ApiKeyInfo, User

__all__ = ["keys", "users"]

_ROLE = click.Choice(ROLES)
_TENANT = click.option("--tenant", default="default", show_default=True, help="The tenant.")


@contextlib.asynccontextmanager
async def _store(ctx: click.Context) -> AsyncIterator[Store]:
    settings = settings_of(ctx)
    if settings.sqlalchemy_url == "memory://":
        raise ConfigError("the store is memory://: users and keys would vanish with this command")
    store = open_store(settings.sqlalchemy_url)
    await store.start()
    try:
        yield store
    finally:
        await store.close()


def _operator() -> Principal:
    """Who acts from the command line: the installation's operator, with every right."""
    try:
        name = getpass.getuser()
    except (KeyError, OSError):  # no user name for this uid (a container)
        name = "operator"
    return Principal(f"cli:{name}", frozenset(ROLES))


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="seconds") if moment else "-"


def _user_json(user: User) -> dict[str, Any]:
    return {
        "tenant": user.tenant,
        "name": user.name,
        "roles": list(user.roles),
        "groups": list(user.groups),
        "created_at": _when(user.created_at),
        "disabled_at": user.disabled_at and _when(user.disabled_at),
    }


def _key_json(key: ApiKeyInfo) -> dict[str, Any]:
    return {
        "id": key.id,
        "tenant": key.tenant,
        "user": key.user,
        "name": key.name,
        "roles": list(key.roles),
        "created_by": key.created_by,
        "created_at": _when(key.created_at),
        "revoked_at": key.revoked_at and _when(key.revoked_at),
    }


@click.group()
def users() -> None:
    """Add, list, disable and enable users."""


@users.command("add")
@click.argument("name")
@click.option("--role", "roles", type=_ROLE, multiple=True, help="A role (default: user).")
@click.option("--group", "groups", multiple=True, help="A group; repeat for several.")
@_TENANT
@click.pass_context
@async_command
async def users_add(
    ctx: click.Context, name: str, roles: tuple[str, ...], groups: tuple[str, ...], tenant: str
) -> None:
    """Add user NAME."""
    if not name.strip() or len(name) > 255:
        raise click.BadParameter("a user name has 1 to 255 characters", param_hint="NAME")
    async with _store(ctx) as store:
        user = await store.create_user(
            tenant=tenant, name=name, roles=check_roles(roles or ["user"]), groups=list(groups)
        )
    click.echo(f"added {user.name!r} in tenant {user.tenant!r}: roles {', '.join(user.roles)}")
    click.echo(f"make a key for them: graft keys create --user {user.name}", err=True)


@users.command("list")
@click.option("--tenant", default=None, help="Only this tenant.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
@click.pass_context
@async_command
async def users_list(ctx: click.Context, tenant: str | None, as_json: bool) -> None:
    """List users."""
    async with _store(ctx) as store:
        found = await store.list_users(tenant)
    if as_json:
        click.echo(json.dumps([_user_json(u) for u in found], ensure_ascii=False, indent=2))
        return
    for user in found:
        state = "disabled" if not user.active else "active"
        click.echo(
            f"{user.tenant:<12} {user.name:<24} {state:<9} {','.join(user.roles):<20} "
            f"{','.join(user.groups)}"
        )


@users.command("disable")
@click.argument("name")
@_TENANT
@click.pass_context
@async_command
async def users_disable(ctx: click.Context, name: str, tenant: str) -> None:
    """Disable user NAME: their keys stop working at once."""
    async with _store(ctx) as store:
        await store.set_user_disabled(tenant, name, True)
    click.echo(f"disabled {name!r} in tenant {tenant!r}")


@users.command("enable")
@click.argument("name")
@_TENANT
@click.pass_context
@async_command
async def users_enable(ctx: click.Context, name: str, tenant: str) -> None:
    """Enable user NAME again."""
    async with _store(ctx) as store:
        await store.set_user_disabled(tenant, name, False)
    click.echo(f"enabled {name!r} in tenant {tenant!r}")


@click.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@click.option("--user", required=True, help="Whose key it is.")
@_TENANT
@click.option(
    "--role", "roles", type=_ROLE, multiple=True, help="A role it carries (default: the user's)."
)
@click.option("--name", default="", help="A label for listings, such as 'laptop' or 'ci'.")
@click.pass_context
@async_command
async def keys_create(
    ctx: click.Context, user: str, tenant: str, roles: tuple[str, ...], name: str
) -> None:
    """Make a key for a user and print it: it is shown this once and never stored."""
    async with _store(ctx) as store:
        owner = await store.get_user(tenant, user)
        key, info = await issue_key(
            store, owner, creator=_operator(), roles=roles or None, name=name
        )
    click.echo(
        f"key {info.id} for {info.user!r} ({', '.join(info.roles) or 'no roles'}); "
        "it is shown once, keep it safe:",
        err=True,
    )
    click.echo(key)


@keys.command("list")
@click.option("--user", default=None, help="Only this user's keys.")
@click.option("--tenant", default=None, help="Only this tenant.")
@click.option("--json", "as_json", is_flag=True, help="One JSON array, for scripts.")
@click.pass_context
@async_command
async def keys_list(
    ctx: click.Context, user: str | None, tenant: str | None, as_json: bool
) -> None:
    """List keys by their public id (never the keys themselves), newest first."""
    async with _store(ctx) as store:
        found = await store.list_keys(tenant, user)
    if as_json:
        click.echo(json.dumps([_key_json(k) for k in found], ensure_ascii=False, indent=2))
        return
    for key in found:
        state = f"revoked {_when(key.revoked_at)}" if key.revoked_at else "active"
        click.echo(
            f"{key.id:<16} {key.tenant:<12} {key.user:<20} {','.join(key.roles):<18} "
            f"{key.name:<12} {state}"
        )


@keys.command("revoke")
@click.argument("key_id")
@click.pass_context
@async_command
async def keys_revoke(ctx: click.Context, key_id: str) -> None:
    """Revoke the key KEY_ID (its public part, gk_ and 12 hex digits)."""
    key_id = key_id[:15]  # a whole key pasted by mistake is cut to its public part
    async with _store(ctx) as store:
        info = await store.revoke_key(key_id)
    click.echo(f"revoked {info.id} of {info.user!r} ({_when(info.revoked_at)})")


@keys.command("new")
@click.option("--user", required=True, help="The user this key authenticates.")
@click.option("--role", "roles", multiple=True, help="A role; repeat for several.")
def keys_new(user: str, roles: tuple[str, ...]) -> None:
    """Print a key and a settings-file entry for it (for setups configured by file alone)."""
    import secrets

    from graft.identity import hash_key

    key = f"gk-{secrets.token_urlsafe(32)}"
    click.echo(f"key (give it to the user; it is not stored): {key}", err=True)
    click.echo("\n[[auth.api_keys]]")
    click.echo(f"user = {json.dumps(user, ensure_ascii=False)}")
    click.echo(f"roles = {json.dumps(list(roles))}")
    click.echo(f'sha256 = "{hash_key(key)}"')

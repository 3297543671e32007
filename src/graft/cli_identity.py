"""``graft users`` and ``graft keys``: who may use this graft, from the command line.

The command line acts as the operator of the installation: it reads the database the
settings point at, so it may do what an admin may. Users live in the store; a key is printed
once, on standard output alone (``KEY=$(graft keys create --user ann)``), and only its
digest is kept (``graft.identity``). Every change is recorded in the audit log, by
``cli:NAME`` (``graft.audit``); a change that could not be recorded makes the command fail.
``graft keys rotate-data-key`` is about another kind of key: the data key that encrypts
conversations at rest (``graft.crypto``), which it replaces, re-encrypting what is stored.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Any

import click

from graft import audit
from graft.cli_common import async_command, opened_store, operator, settings_of
from graft.errors import ConfigError, InvalidRequest
from graft.identity import ROLES, check_roles, issue_key
from graft.store import Store
from graft.store.base import ApiKeyInfo, User

__all__ = ["keys", "users"]

_ROLE = click.Choice(ROLES)
_TENANT = click.option("--tenant", default="default", show_default=True, help="The tenant.")


def _store(ctx: click.Context) -> AbstractAsyncContextManager[Store]:
    return opened_store(settings_of(ctx), if_memory="users and keys would vanish with this command")


async def _audit(
    store: Store, action: str, tenant: str, target: str, details: Mapping[str, Any]
) -> None:
    """Record a change the operator made; fail the command if it cannot be recorded."""
    event = audit.AuditEvent(action, operator().user_id, tenant, target, "ok", details)
    if await audit.record(store, event) is None:
        raise click.ClickException(
            f"{action} {target!r} was done but could not be written to the audit log"
        )


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
    """Add, list, disable and enable users; change their roles and groups."""


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
        details = {"roles": list(user.roles), "groups": list(user.groups)}
        await _audit(store, "user.create", user.tenant, user.name, details)
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


async def _set_disabled(ctx: click.Context, name: str, tenant: str, disabled: bool) -> None:
    verb = "disable" if disabled else "enable"
    async with _store(ctx) as store:
        await store.set_user_disabled(tenant, name, disabled)
        await _audit(store, f"user.{verb}", tenant, name, {})
    click.echo(f"{verb}d {name!r} in tenant {tenant!r}")


@users.command("disable")
@click.argument("name")
@_TENANT
@click.pass_context
@async_command
async def users_disable(ctx: click.Context, name: str, tenant: str) -> None:
    """Disable user NAME: their keys stop working at once."""
    await _set_disabled(ctx, name, tenant, True)


@users.command("enable")
@click.argument("name")
@_TENANT
@click.pass_context
@async_command
async def users_enable(ctx: click.Context, name: str, tenant: str) -> None:
    """Enable user NAME again."""
    await _set_disabled(ctx, name, tenant, False)


async def _change(ctx: click.Context, name: str, tenant: str, field: str, value: list[str]) -> User:
    """Replace the user's ``field`` (roles or groups), audited as ``user.update``."""
    async with _store(ctx) as store:
        found = await store.get_user(tenant, name)
        before = list(found.roles if field == "roles" else found.groups)
        if sorted(before) == sorted(value):
            return found
        if field == "roles":
            user = await store.set_user_roles(tenant, name, value)
        else:
            user = await store.set_user_groups(tenant, name, value)
        details = {field: value, "before": {field: before}}
        await _audit(store, "user.update", tenant, name, details)
    return user


@users.command("set-roles")
@click.argument("name")
@click.argument("roles", nargs=-1, required=True)
@_TENANT
@click.pass_context
@async_command
async def users_set_roles(
    ctx: click.Context, name: str, roles: tuple[str, ...], tenant: str
) -> None:
    """Give user NAME exactly ROLES (e.g. ``admin,builder`` or ``admin builder``).

    A role taken away is gone from their keys and browser sessions at their next request;
    a role given reaches only the keys made after (make them a new key).
    """
    wanted = [role.strip() for arg in roles for role in arg.split(",") if role.strip()]
    if not wanted:
        raise click.BadParameter("name at least one role", param_hint="ROLES")
    try:
        chosen = check_roles(wanted)
    except InvalidRequest as exc:
        raise click.BadParameter(exc.message, param_hint="ROLES") from None
    user = await _change(ctx, name, tenant, "roles", chosen)
    click.echo(f"{user.name!r} in tenant {user.tenant!r}: roles {', '.join(user.roles)}")


@users.command("set-groups")
@click.argument("name")
@click.argument("groups", nargs=-1)
@_TENANT
@click.pass_context
@async_command
async def users_set_groups(
    ctx: click.Context, name: str, groups: tuple[str, ...], tenant: str
) -> None:
    """Put user NAME in exactly GROUPS (one argument each; none: no group)."""
    wanted = sorted({group.strip() for group in groups})
    if any(not group or len(group) > 255 for group in wanted):
        raise click.BadParameter("a group name has 1 to 255 characters", param_hint="GROUPS")
    user = await _change(ctx, name, tenant, "groups", wanted)
    click.echo(f"{user.name!r} in tenant {user.tenant!r}: groups {', '.join(user.groups) or '-'}")


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
            store, owner, creator=operator(), roles=roles or None, name=name
        )
        details = {"user": info.user, "roles": list(info.roles), "name": info.name}
        await _audit(store, "key.create", info.tenant, info.id, details)
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
        await _audit(store, "key.revoke", info.tenant, info.id, {"user": info.user})
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


@keys.command("rotate-data-key")
@click.option(
    "--drop-old",
    is_flag=True,
    help="After re-encrypting, remove the older keys from the key file. Only once no graft "
    "process runs with them any more: restart or stop the others first.",
)
@click.option(
    "--no-new-key",
    "reuse",
    is_flag=True,
    help="Add no key: re-encrypt with the newest there is (after changing GRAFT_DATA_KEY, "
    "to finish an interrupted run, or to encrypt values stored before encryption was on).",
)
@click.option(
    "--batch-size",
    default=500,
    show_default=True,
    type=click.IntRange(1, 100_000),
    help="Rows per write transaction.",
)
@click.pass_context
@async_command
async def keys_rotate_data_key(
    ctx: click.Context, drop_old: bool, reuse: bool, batch_size: int
) -> None:
    """Add a new data key, re-encrypt every stored value with it, and report counts.

    The key is added to the key file first, so a crash loses nothing: running again (with
    --no-new-key) finishes the work. Older keys stay and keep decrypting until --drop-old.
    Running servers read the changed key file by themselves. With GRAFT_DATA_KEY, which no
    command can change, the new value is printed to be set; then run --no-new-key.
    """
    from graft.crypto import (
        DataKeys,
        KeySource,
        encode_key,
        generate_key,
        key_id,
        parse_keys,
        write_key_file,
    )
    from graft.store.sql import SQLStore

    settings = settings_of(ctx)
    source = KeySource.from_settings(settings)
    if source is None:
        raise ConfigError("the store is memory://: nothing is stored to encrypt")
    if not settings.encrypt_at_rest:
        raise ConfigError("encrypt_at_rest is off: turn it on to encrypt with a data key")
    if source.env is not None and not reuse:
        new = generate_key()
        current = parse_keys(source.env, source="GRAFT_DATA_KEY")
        click.echo("GRAFT_DATA_KEY=" + ",".join(encode_key(k) for k in [new, *current]))
        click.echo(
            f"GRAFT_DATA_KEY comes from the environment, which this command does not change. "
            f"Set it to the value above (new key {key_id(new)} first, the older ones after it) "
            "for every graft process and restart them, then run: "
            "graft keys rotate-data-key --no-new-key",
            err=True,
        )
        return
    loaded = source.load()
    assert loaded is not None  # encrypting: the key file exists now
    if reuse:
        keys = DataKeys(loaded.keys)
    else:
        keys = DataKeys([generate_key(), *loaded.keys])
        write_key_file(source.path, keys.keys)
        click.echo(f"added data key {keys.current_id} to {source.path}", err=True)

    store = SQLStore(settings.sqlalchemy_url, data_keys=keys)
    await store.start()
    try:
        rows = await store.count_encrypted_rows()
        with click.progressbar(
            length=rows, label=f"re-encrypting with {keys.current_id}", file=sys.stderr
        ) as bar:
            done = await store.reencrypt(batch_size=batch_size, progress=bar.update)
        if drop_old:
            # Values a process still on an older key wrote meanwhile: none may be left.
            again = await store.reencrypt(batch_size=batch_size)
            if again.changed:
                raise click.ClickException(
                    f"{again.changed} values were written with an older key meanwhile; the "
                    "older keys are kept. Restart every graft process, then run: graft keys "
                    "rotate-data-key --no-new-key --drop-old"
                )
        dropped = [kid for kid in keys.ids if kid != keys.current_id] if drop_old else []
        details: dict[str, Any] = {
            "key": keys.current_id,
            "dropped": dropped,
            **{name: dataclasses.asdict(c) for name, c in done.counts.items()},
        }
        await _audit(store, "data_key.rotate", "", keys.current_id, details)
    finally:
        await store.close()

    for name, counts in done.counts.items():
        click.echo(
            f"{name:<22} {counts.reencrypted:>8} re-encrypted {counts.encrypted:>8} encrypted "
            f"(were plaintext) {counts.current:>8} already with {keys.current_id}"
        )
    if done.scrubbed is False:
        click.echo(
            "warning: another process kept the SQLite file busy, so older copies may remain in "
            "its free space or WAL until the next checkpoint; run again with --no-new-key when "
            "graft is stopped to remove them",
            err=True,
        )
    elif done.scrubbed is None:
        click.echo(
            "PostgreSQL keeps old row versions until it vacuums: run VACUUM FULL conversations, "
            "messages, tool_runs to remove them from disk now",
            err=True,
        )
    if drop_old:
        if source.env is not None:
            click.echo(f"GRAFT_DATA_KEY={encode_key(keys.keys[0])}")
            click.echo("set GRAFT_DATA_KEY to the value above: only the newest key", err=True)
        else:
            write_key_file(source.path, keys.keys[:1])
            click.echo(
                f"removed data keys {', '.join(dropped) or 'none'} from {source.path}", err=True
            )

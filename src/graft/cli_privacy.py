"""``graft privacy``: a user's data export and erasure, and the retention purge.

Like ``graft users`` and ``graft keys``, the command line acts as the installation's
operator: it opens the database the settings point at and may act on anyone's data (an
export request or an erasure request that reached the operator by other means). ``export``
writes the document ``GET /v1/me/export`` answers with; ``delete`` deletes what
``DELETE /v1/me/data`` deletes, and wants ``--yes``; ``purge`` makes the retention pass that
``graft serve`` makes every hour (``graft.retention``). Each is recorded in the audit log,
with counts and never contents; a deletion that could not be recorded exits non-zero (it
happened all the same).
"""

from __future__ import annotations

import json
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import click

from graft import audit
from graft.cli_common import async_command, opened_store, operator, settings_of, write_private
from graft.config import Settings
from graft.retention import purge_expired, retention_configured
from graft.store import Store

__all__ = ["privacy"]

_TENANT = click.option("--tenant", default="default", show_default=True, help="The tenant.")


def _store(settings: Settings) -> AbstractAsyncContextManager[Store]:
    return opened_store(settings, if_memory="it holds nothing outside a running process")


@click.group()
def privacy() -> None:
    """Export or delete a user's conversations; purge expired ones."""


@privacy.command("export")
@click.option("--user", required=True, help="Whose conversations (their user name).")
@_TENANT
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the JSON to this file (mode 600) instead of standard output.",
)
@click.pass_context
@async_command
async def export(ctx: click.Context, user: str, tenant: str, output: Path | None) -> None:
    """Print (or save) every conversation of a user as one JSON document."""
    async with _store(settings_of(ctx)) as store:
        document = await store.export_user_data(tenant, user)
        count = len(document["conversations"])
        await audit.record(
            store,
            audit.AuditEvent(
                "user_data.export",
                operator().user_id,
                tenant,
                f"user:{user}",
                details={"conversations": count},
            ),
        )
    text = json.dumps(document, ensure_ascii=False, indent=2)
    if output is None:
        click.echo(text)
    else:
        write_private(output, text + "\n")
    where = f" to {output}" if output is not None else ""
    click.echo(
        f"exported {count} conversation(s) of {user!r} in tenant {tenant!r}{where}", err=True
    )


@privacy.command("delete")
@click.option("--user", required=True, help="Whose conversations (their user name).")
@_TENANT
@click.option("--yes", is_flag=True, help="Confirm: the deletion cannot be undone.")
@click.pass_context
@async_command
async def delete(ctx: click.Context, user: str, tenant: str, yes: bool) -> None:
    """Delete every conversation of a user; their account and keys stay."""
    if not yes:
        raise click.UsageError(
            f"this deletes every conversation of {user!r} in tenant {tenant!r} for good; "
            "add --yes to do it"
        )
    async with _store(settings_of(ctx)) as store:
        count = await store.delete_user_data(tenant, user)
        recorded = await audit.record(
            store,
            audit.AuditEvent(
                "user_data.delete",
                operator().user_id,
                tenant,
                f"user:{user}",
                details={"conversations": count},
            ),
        )
    click.echo(f"deleted {count} conversation(s) of {user!r} in tenant {tenant!r}")
    if recorded is None:
        raise click.ClickException("the deletion happened but is not in the audit log")


@privacy.command("purge")
@click.pass_context
@async_command
async def purge(ctx: click.Context) -> None:
    """Delete the conversations past their assistant's retention_days, once."""
    settings = settings_of(ctx)
    if not retention_configured(settings):
        click.echo("no assistant sets retention_days: nothing to purge", err=True)
        return
    async with _store(settings) as store:
        removed = await purge_expired(store, settings, actor=operator().user_id)
    for name, count in removed.items():
        click.echo(f"{name}: removed {count} conversation(s)")

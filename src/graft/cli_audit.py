"""``graft audit``: check the audit log's hash chain and read its newest records.

``graft audit verify`` walks the whole chain (``graft.audit.verify``) and prints the newest
hash: keep it somewhere the database's owner cannot write, and pass it back later with
``--expect-hash`` to detect records deleted from the end or a rewritten log. ``graft audit
tail`` prints the newest records, and with ``--follow`` keeps printing new ones.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable

import anyio
import click

from graft.audit import AuditRecord, VerifyResult, tail, verify
from graft.cli_common import opened_store, run, settings_of
from graft.store import Store

__all__ = ["audit"]

FOLLOW_INTERVAL_S = 1.0
"""How often ``tail --follow`` looks for new records."""
_IF_MEMORY = "it has no audit log to read"


@click.group()
def audit() -> None:
    """Check and read the audit log."""


@audit.command("verify")
@click.option(
    "--expect-hash",
    "anchor",
    default=None,
    metavar="HASH",
    help="A hash an earlier verify printed: fail unless the log still holds that record.",
)
@click.pass_context
def audit_verify(ctx: click.Context, anchor: str | None) -> None:
    """Check every record's hash and link; exit 1 naming the first bad record."""

    async def check() -> VerifyResult:
        async with opened_store(settings_of(ctx), if_memory=_IF_MEMORY) as store:
            return await verify(store, anchor=anchor)

    result = run(check())
    if result.ok:
        click.echo(f"ok: {result.count} records, latest hash {result.latest_hash}")
        return
    where = f"record {result.bad_seq}" if result.bad_seq is not None else "the end of the log"
    click.echo(f"FAILED at {where} ({result.problem}): {result.reason}", err=True)
    click.echo(
        f"the {result.count} records before it hold together; the last good one is record "
        f"{result.latest_seq}, hash {result.latest_hash}",
        err=True,
    )
    sys.exit(1)


@audit.command("tail")
@click.option("-n", "--lines", "count", default=20, show_default=True, help="Records to show.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new records (Ctrl-C stops).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line, for scripts.")
@click.option("--tenant", default=None, help="Only this tenant's records.")
@click.pass_context
def audit_tail(
    ctx: click.Context, count: int, follow: bool, as_json: bool, tenant: str | None
) -> None:
    """Print the newest records, oldest first."""
    if count < 0:
        raise click.BadParameter("must not be negative", param_hint="-n")

    def show(record: AuditRecord) -> None:
        click.echo(_json_line(record) if as_json else _text_line(record))

    async def read() -> None:
        async with opened_store(settings_of(ctx), if_memory=_IF_MEMORY) as store:
            found = await tail(store, count, tenant=tenant)
            for record in found:
                show(record)
            if follow:
                after = found[-1].seq if found else await _newest_seq(store)
                await _follow(store, after, tenant, show)

    with contextlib.suppress(KeyboardInterrupt):
        run(read())


async def _newest_seq(store: Store) -> int:
    newest = await store.list_audit(None, 1)
    return newest[-1].seq if newest else 0


async def _follow(
    store: Store, after: int, tenant: str | None, show: Callable[[AuditRecord], None]
) -> None:
    """Print every record after ``after`` as it arrives, until interrupted."""
    while True:
        await anyio.sleep(FOLLOW_INTERVAL_S)
        # Tenant filtering on the page, not in the query: ``after`` must move past every
        # record, or a busy other tenant would make this read the same page forever.
        page = await store.list_audit(after, 500)
        for record in page:
            if tenant in (None, record.tenant):
                show(record)
        if page:
            after = page[-1].seq


def _json_line(record: AuditRecord) -> str:
    return json.dumps(record.to_json(), ensure_ascii=False, separators=(",", ":"))


def _text_line(record: AuditRecord) -> str:
    at = record.at.isoformat(timespec="seconds")
    target = f" {record.target}" if record.target else ""
    details = f" {record.details}" if record.details != "{}" else ""
    return (
        f"{record.seq:>6} {at} {record.tenant or '-':<10} {record.actor:<16} "
        f"{record.action:<14} {record.outcome:<6}{target}{details}"
    )

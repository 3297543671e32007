"""``graft ingest`` and ``graft knowledge ...``: documents into collections, and searching them.

``graft ingest PATH|URL... --collection NAME [--groups g1,g2] [--users u1] [--tenant T]``
ingests files, folders (walked for the supported types) and URLs (through the network
guard) with a progress bar, incrementally: unchanged files are skipped by their hash,
changed ones replaced, and files gone from an ingested folder removed. Without ``--groups``
or ``--users`` every user of the tenant may read the documents.

``graft knowledge search "QUERY" [--collection C] [--user U]`` searches as a user would, with
the same access filter, and ``graft knowledge collections [--user U]`` lists what a user may
read: both are for checking who sees what before an assistant does.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import anyio.to_thread
import click

from graft.cli_common import async_command, opened_store, settings_of
from graft.config import Settings
from graft.runtime import Graft

if TYPE_CHECKING:
    from graft.knowledge.index import KnowledgeIndex
    from graft.store import Store


class IndexIn(NamedTuple):
    """An opened store and the document index in it."""

    store: Store
    knowledge: KnowledgeIndex


__all__ = ["ingest", "knowledge"]


@contextlib.asynccontextmanager
async def _opened_index(settings: Settings, *, if_memory: str) -> AsyncIterator[IndexIn]:
    """The store the settings point at and the document index in it, started."""
    from graft.knowledge.index import open_index

    async with opened_store(settings, if_memory=if_memory) as store:
        index = await open_index(store)
        assert index is not None  # every store but memory:// is an SQL store
        yield IndexIn(store, index)


def _names(text: str | None) -> frozenset[str]:
    return frozenset(n.strip() for n in (text or "").split(",") if n.strip())


@click.command()
@click.argument("targets", nargs=-1, required=True)
@click.option("-c", "--collection", required=True, help="The collection to ingest into.")
@click.option("--groups", default=None, help="Groups that may read them, comma-separated.")
@click.option("--users", default=None, help="Users who may read them, comma-separated.")
@click.option("--tenant", default=None, help="Their tenant (default: the local user's).")
@click.pass_context
@async_command
async def ingest(
    ctx: click.Context,
    targets: tuple[str, ...],
    collection: str,
    groups: str | None,
    users: str | None,
    tenant: str | None,
) -> None:
    """Ingest files, folders and URLs into a document collection."""
    from graft.embeddings import embedder_for
    from graft.knowledge.index import Readers
    from graft.knowledge.ingest import Ingestion, expand
    from graft.netguard import audit_blocked

    settings = settings_of(ctx)
    graft = Graft(settings, entry_points=False)
    readers = Readers(
        tenant or graft.principal_for(None).tenant,
        users=_names(users),
        groups=_names(groups),
        everyone=not (groups or users),
    )
    async with _opened_index(settings, if_memory="the documents would be lost") as (
        store,
        index,
    ):
        run = Ingestion(
            index,
            embedder_for(settings, store=store),
            collection=collection,
            readers=readers,
            policy=settings.network.policy(),
            on_blocked=audit_blocked(store, actor="cli", tenant=readers.tenant, service="ingest"),
        )
        files = expand(targets)
        with click.progressbar(length=len(files), label=f"ingesting into {collection}") as bar:
            report = await run.run_files(files, progress=lambda _: bar.update(1))
    click.echo(
        f"{len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.unchanged)} unchanged, {len(report.removed)} removed, "
        f"{len(report.failed)} failed; {report.chunks} chunks"
    )
    for source, why in report.failed.items():
        click.echo(f"failed: {source}: {why}", err=True)
    if report.failed:
        ctx.exit(1)


@click.group()
def knowledge() -> None:
    """Search document collections as a user would."""


@knowledge.command("search")
@click.argument("query")
@click.option("-c", "--collection", "collections", multiple=True, help="Search only these.")
@click.option("--user", default=None, help="Search as this user (default: the local user).")
@click.option("-k", "--top", default=5, show_default=True)
@click.pass_context
@async_command
async def knowledge_search(
    ctx: click.Context, query: str, collections: tuple[str, ...], user: str | None, top: int
) -> None:
    """Search the documents a user may read."""
    from graft.embeddings import embedder_for

    settings = settings_of(ctx)
    principal = Graft(settings, entry_points=False).principal_for(user)
    async with _opened_index(settings, if_memory="there are no documents") as (store, index):
        vector = await embedder_for(settings, store=store).embed_query(query)
        hits = await anyio.to_thread.run_sync(
            lambda: index.search(
                principal, query, vector, collections=list(collections) or None, k=top
            )
        )
    if not hits:
        click.echo("no document this user may read matches")
    for number, hit in enumerate(hits, start=1):
        where = " · ".join(x for x in (hit.heading, f"page {hit.page}" if hit.page else "") if x)
        click.echo(f"[{number}] {hit.title} ({hit.collection}: {Path(hit.source).name}) {where}")
        click.echo(f"    {hit.text[:200].replace(chr(10), ' ')}")


@knowledge.command("collections")
@click.option("--user", default=None, help="As this user (default: the local user).")
@click.pass_context
@async_command
async def knowledge_collections(ctx: click.Context, user: str | None) -> None:
    """List the collections, with the documents a user may read in each."""
    settings = settings_of(ctx)
    principal = Graft(settings, entry_points=False).principal_for(user)
    async with _opened_index(settings, if_memory="there are no documents") as (_, index):
        counts = await anyio.to_thread.run_sync(index.collections, principal)
    if not counts:
        click.echo("no collection holds a document this user may read")
    for name, count in sorted(counts.items()):
        click.echo(f"{name:<24} {count} documents")

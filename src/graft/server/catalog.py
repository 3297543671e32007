"""``/v1/tools`` and ``/v1/sources``: what the caller may put to work, for building assistants.

- ``GET /v1/tools``: the tools the caller may use, as ``graft tools list`` finds them
  (``Graft.toolbox``: every toolset's tools, each checked by ``graft.policy.tool_allowed``
  against ``[access.tools]``), with the name of the toolset (plugin) each comes from and its
  JSON-schema parameters. With ``?assistant=NAME``, those of that assistant (one the caller
  may use); without, those of a new assistant that names no tools, which is every tool the
  caller's access rules let in: what a builder may choose from.
- ``GET /v1/sources``: the data sources (``[sources.NAME]``) the caller may query, by
  ``graft.sources.access.visible_sources``, with the database's dialect and, when the source
  lists its tables, those the caller may read. No URL, user or password ever leaves.

Nothing here connects to a data source; listing tools may start an MCP server, as the first
turn that could use it would.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from graft.config import AssistantSettings
from graft.context import Context, Principal
from graft.runtime import Graft
from graft.server.deps import CurrentGraft, CurrentPrincipal

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["catalog"])

AssistantName = Annotated[
    str | None,
    Query(
        min_length=1,
        max_length=255,
        description="As this assistant would offer them; default: every one you may use.",
    ),
]


async def _context(graft: Graft, principal: Principal, assistant: str | None) -> Context:
    """The context of ``assistant``, or of a new one that names no tools and no sources."""
    if assistant is not None:
        return await graft.open_context(principal, assistant)
    return graft.context(principal, "", AssistantSettings())


@router.get("/tools", summary="The tools you may use")
async def tools(
    graft: CurrentGraft, principal: CurrentPrincipal, assistant: AssistantName = None
) -> dict[str, Any]:
    """Each tool's name, description, plugin (its toolset) and parameters, by name."""
    box = await graft.toolbox(await _context(graft, principal, assistant))
    data = [
        {
            "name": definition.name,
            "description": definition.description,
            "plugin": box.owners[definition.name].name,
            "parameters": definition.parameters,
            "read_only": definition.read_only,
        }
        for definition in sorted(box.definitions, key=lambda d: d.name)
    ]
    return {"object": "list", "data": data}


@router.get("/sources", summary="The data sources you may query")
async def sources(
    graft: CurrentGraft, principal: CurrentPrincipal, assistant: AssistantName = None
) -> dict[str, Any]:
    """Each source's name, description, dialect and (when it lists them) readable tables."""
    from graft.sources.access import readable_tables, visible_sources

    ctx = await _context(graft, principal, assistant)
    data = []
    for name in visible_sources(ctx):
        source = ctx.settings.sources[name]
        entry: dict[str, Any] = {
            "name": name,
            "description": source.description,
            "dialect": _dialect(source.url),
        }
        if source.tables is not None:
            entry["tables"] = sorted(readable_tables(source, ctx, source.tables))
        data.append(entry)
    return {"object": "list", "data": data}


def _dialect(url: str) -> str | None:
    """The database kind of a SQLAlchemy URL (``postgresql``, ``sqlite``, ``mysql``)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).get_backend_name()
    except (ArgumentError, ValueError):
        return None

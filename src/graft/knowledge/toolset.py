"""``search_knowledge``: the tool an assistant searches its document collections with.

An assistant offers the tool when its settings name ``collections``; each call searches those
collections (or one of them) as the turn's principal, so the access filter of
``graft.knowledge.index`` applies: a user never sees a chunk, a title or a source of a
document they may not read, whoever built the assistant.

The model reads the results numbered ``[1]``, ``[2]``, ... with their title, section and
page, and is asked to cite them that way; the client gets the same numbers mapped to the
document, the place in it and the chunk's text in the ``tool_result`` event's ``data``, to
show citations as footnotes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import anyio.to_thread

from graft.embeddings import Embedder, embedder_for
from graft.errors import ConfigError, ToolError, ToolNotFound
from graft.knowledge.index import Hit, KnowledgeIndex
from graft.tools.base import ToolDef, ToolOutput

if TYPE_CHECKING:
    from graft.context import Context

__all__ = ["KnowledgeToolset", "format_hits"]

_RESULTS: Final = 6
_EXCERPT_CHARS: Final = 1200


def format_hits(hits: list[Hit]) -> ToolOutput:
    """The hits as numbered sources for the model, and as citations for the client."""
    if not hits:
        return ToolOutput("no document you may read matches this search", {"citations": []})
    parts = []
    citations: list[dict[str, Any]] = []
    for number, hit in enumerate(hits, start=1):
        where = " · ".join(x for x in (hit.heading, f"page {hit.page}" if hit.page else "") if x)
        excerpt = hit.text[:_EXCERPT_CHARS]
        parts.append(f"[{number}] {hit.title}" + (f" ({where})" if where else "") + f"\n{excerpt}")
        citations.append(
            {
                "n": number,
                "document_id": hit.document_id,
                "collection": hit.collection,
                "title": hit.title,
                "source": hit.source,
                "section": hit.heading,
                "page": hit.page,
                "char_start": hit.char_start,
                "char_end": hit.char_end,
                "text": excerpt,
            }
        )
    text = (
        "\n\n".join(parts)
        + "\n\nCite the sources you use as [1], [2], ... right after the sentence they support."
    )
    return ToolOutput(text, {"type": "knowledge_results", "citations": citations})


class KnowledgeToolset:
    """``search_knowledge`` over the collections an assistant names (module docstring)."""

    name = "knowledge"

    def __init__(self) -> None:
        self._index: KnowledgeIndex | None = None
        self._embedder: Embedder | None = None

    async def list_tools(self, ctx: Context) -> list[ToolDef]:
        """The tool, when the assistant names collections."""
        collections = ctx.assistant.collections
        if not collections:
            return []
        return [
            ToolDef(
                "search_knowledge",
                "Search the organisation's documents ("
                + ", ".join(collections)
                + ") and return the passages that best match, numbered for citation.",
                {
                    "type": "object",
                    "properties": {
                        "query": {"type": "string", "maxLength": 500},
                        "collection": {"type": "string", "enum": list(collections)},
                    },
                    "required": ["query"],
                },
                read_only=True,
            )
        ]

    async def call_tool(self, name: str, arguments: dict[str, Any], ctx: Context) -> ToolOutput:
        """Search as the turn's principal."""
        if name != "search_knowledge":
            raise ToolNotFound(f"no tool named {name!r} is available")
        query = str(arguments.get("query", "")).strip()
        if not query:
            raise ToolError("search_knowledge needs a query")
        collections = list(ctx.assistant.collections or [])
        wanted = arguments.get("collection")
        if wanted is not None:
            if wanted not in collections:
                raise ToolError(f"collection {wanted!r} is not one of {collections}")
            collections = [wanted]
        return format_hits(await self.search(ctx, query, collections))

    async def search(self, ctx: Context, query: str, collections: list[str]) -> list[Hit]:
        """The best chunks for ``query`` in ``collections`` that the principal may read."""
        index = await self.index(ctx)
        embedder = self._embedder = self._embedder or embedder_for(ctx.settings, store=ctx.store)
        vector = await embedder.embed_query(query)
        return await anyio.to_thread.run_sync(
            lambda: index.search(ctx.principal, query, vector, collections=collections, k=_RESULTS)
        )

    async def index(self, ctx: Context) -> KnowledgeIndex:
        """The index in the turn's store (made and started on first use)."""
        if self._index is None:
            engine = getattr(ctx.store, "engine", None)
            if engine is None:
                raise ConfigError("document knowledge needs the SQL store (not memory://)")
            index = KnowledgeIndex(engine)
            await anyio.to_thread.run_sync(index.start)
            self._index = index
        return self._index

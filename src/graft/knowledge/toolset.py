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

from collections import OrderedDict
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

import anyio.to_thread

from graft.agent import wrap_untrusted
from graft.embeddings import Embedder, embedder_for
from graft.errors import ConfigError, ToolError, ToolNotFound
from graft.events import Citations
from graft.knowledge.index import Hit, KnowledgeIndex, open_index
from graft.messages import Message
from graft.tools.base import ToolDef, ToolOutput

if TYPE_CHECKING:
    from graft.context import Context

__all__ = ["KnowledgeToolset", "format_hits", "retrieve_for_turn", "source_link"]

_RESULTS: Final = 6
_TURNS_REMEMBERED: Final = 1024
_EXCERPT_CHARS: Final = 1200


def source_link(hit: Hit) -> str:
    """Where a citation opens: the page for a URL, else graft's view of the passage."""
    if hit.source.startswith(("http://", "https://")):
        return hit.source
    return f"/v1/knowledge/documents/{hit.document_id}#chunk-{hit.chunk_id}"


def format_hits(hits: list[Hit], *, start: int = 1) -> ToolOutput:
    """The hits as numbered sources for the model, and as citations for the client."""
    if not hits:
        return ToolOutput("no document you may read matches this search", {"citations": []})
    parts = []
    citations: list[dict[str, Any]] = []
    for number, hit in enumerate(hits, start=start):
        where = " · ".join(x for x in (hit.heading, f"page {hit.page}" if hit.page else "") if x)
        excerpt = hit.text[:_EXCERPT_CHARS]
        parts.append(f"[{number}] {hit.title}" + (f" ({where})" if where else "") + f"\n{excerpt}")
        citations.append(
            {
                "n": number,
                "document_id": hit.document_id,
                "chunk_id": hit.chunk_id,
                "link": source_link(hit),
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
        self._embedder: Embedder | None = None
        self._numbers: OrderedDict[str, int] = OrderedDict()
        """Per turn, the next passage number: a second search goes on from [7], not [1]."""

    def _numbered(self, ctx: Context, hits: list[Hit]) -> ToolOutput:
        key = ctx.turn_id or ""
        start = self._numbers.pop(key, 1)
        self._numbers[key] = start + len(hits)
        while len(self._numbers) > _TURNS_REMEMBERED:
            self._numbers.popitem(last=False)
        return format_hits(hits, start=start)

    async def retrieve(self, ctx: Context, query: str) -> ToolOutput | None:
        """Passages for ``query`` from all the assistant's collections (automatic retrieval)."""
        collections = list(ctx.assistant.collections)
        if not collections or not query.strip():
            return None
        hits = await self.search(ctx, query, collections)
        return self._numbered(ctx, hits) if hits else None

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
        return self._numbered(ctx, await self.search(ctx, query, collections))

    async def search(self, ctx: Context, query: str, collections: list[str]) -> list[Hit]:
        """The best chunks for ``query`` in ``collections`` that the principal may read."""
        index = await self.index(ctx)
        embedder = self._embedder = self._embedder or embedder_for(ctx.settings, store=ctx.store)
        vector = await embedder.embed_query(query)
        return await anyio.to_thread.run_sync(
            lambda: index.search(ctx.principal, query, vector, collections=collections, k=_RESULTS)
        )

    async def index(self, ctx: Context) -> KnowledgeIndex:
        """The index in the turn's store (``graft.knowledge.index.open_index``)."""
        index = await open_index(ctx.store)
        if index is None:
            raise ConfigError("document knowledge needs the SQL store (not memory://)")
        return index


async def retrieve_for_turn(
    toolsets: Iterable[object], ctx: Context, messages: list[Message]
) -> tuple[list[Message], Citations | None]:
    """Automatic retrieval (``retrieval = "always"``) for the last user message.

    The best passages are added to the system message as untrusted data, and the event that
    lists them is returned with the messages. ``messages`` are what input middleware made of
    the turn (a translated question is searched in the assistant's language); they come back
    unchanged when nothing matches.
    """
    knowledge = next((t for t in toolsets if isinstance(t, KnowledgeToolset)), None)
    question = next((m.content for m in reversed(messages) if m.role == "user"), None)
    if knowledge is None or not question or messages[0].role != "system":
        return messages, None
    found = await knowledge.retrieve(ctx, question)
    if found is None or not found.data:
        return messages, None
    passages = wrap_untrusted("search_knowledge", found.text)
    system = Message("system", f"{messages[0].content}\n\nPassages for this question:\n{passages}")
    return [system, *messages[1:]], Citations(found.data["citations"], "retrieved")

"""``/v1/knowledge``: the documents a user may read, searched and opened over HTTP.

- ``GET /v1/knowledge/collections``: each collection with the number of documents the caller
  may read in it;
- ``GET /v1/knowledge/search?q=...``: the passages ``search_knowledge`` would give the caller,
  with the same citation fields;
- ``GET /v1/knowledge/collections/{collection}/documents``: the documents of a collection
  the caller may read, without their passages;
- ``GET /v1/knowledge/documents/{id}``: a document and its passages in order, where a
  citation's ``link`` points (``#chunk-<id>``).

Uploading and deleting documents are ``graft.server.uploads``'s.

Every route runs as the caller through the index's access filter (``graft.knowledge.index``):
a document the caller may not read answers 404, exactly like one that does not exist. The
in-memory store holds no documents: there the lists are empty.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Path, Query

from graft.errors import NotFound
from graft.server.deps import CurrentGraft, CurrentPrincipal

if TYPE_CHECKING:  # numpy and the parsers load on the first request, not with the app
    from graft.knowledge.index import KnowledgeIndex
    from graft.runtime import Graft

__all__ = ["open_documents", "router"]

router = APIRouter(prefix="/v1/knowledge", tags=["knowledge"])


async def open_documents(graft: Graft) -> KnowledgeIndex | None:
    """The index in graft's store; None for the in-memory store, which holds no documents."""
    from graft.knowledge.index import open_index

    return await open_index(graft.store)


@router.get("/collections", summary="Collections and the documents the caller may read")
async def collections(graft: CurrentGraft, principal: CurrentPrincipal) -> dict[str, Any]:
    """Each collection with the number of documents the caller may read in it."""
    index = await open_documents(graft)
    if index is None:
        return {"object": "list", "data": []}
    counts = await anyio.to_thread.run_sync(index.collections, principal)
    data = [{"name": name, "documents": n} for name, n in sorted(counts.items())]
    return {"object": "list", "data": data}


@router.get(
    "/collections/{collection}/documents",
    summary="The documents of a collection that the caller may read",
)
async def documents(
    graft: CurrentGraft,
    principal: CurrentPrincipal,
    collection: Annotated[str, Path(min_length=1, max_length=255)],
) -> dict[str, Any]:
    """Each document's id, title, source, passages (``chunks``) and ``updated_at``, by title."""
    index = await open_documents(graft)
    if index is None:
        return {"object": "list", "data": []}
    found = await anyio.to_thread.run_sync(index.documents, principal, collection)
    return {"object": "list", "data": found}


@router.get("/search", summary="Search the documents the caller may read")
async def search(
    graft: CurrentGraft,
    principal: CurrentPrincipal,
    q: Annotated[str, Query(min_length=1, max_length=500)],
    collection: Annotated[list[str] | None, Query(max_length=20)] = None,
    k: Annotated[int, Query(ge=1, le=50)] = 6,
) -> dict[str, Any]:
    """The best passages for ``q``, numbered as ``search_knowledge`` numbers them."""
    from graft.embeddings import embedder_for
    from graft.knowledge.toolset import format_hits

    index = await open_documents(graft)
    if index is None:
        return {"object": "list", "data": []}
    vector = await embedder_for(graft.settings, store=graft.store).embed_query(q)
    hits = await anyio.to_thread.run_sync(
        lambda: index.search(principal, q, vector, collections=collection, k=k)
    )
    data = format_hits(hits).data or {}
    return {"object": "list", "data": data.get("citations", [])}


@router.get("/documents/{document_id}", summary="A document and its passages")
async def document(
    graft: CurrentGraft,
    principal: CurrentPrincipal,
    document_id: Annotated[str, Path(max_length=64)],
) -> dict[str, Any]:
    """The document, if the caller may read it; 404 otherwise."""
    index = await open_documents(graft)
    found = None
    if index is not None:
        found = await anyio.to_thread.run_sync(index.document, principal, document_id)
    if found is None:
        raise NotFound(f"no document {document_id!r}")
    return found

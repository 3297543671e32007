"""Documents into and out of collections over HTTP: uploads and deletions, for builders.

- ``POST /v1/knowledge/collections/{collection}/documents``: ``multipart/form-data`` with one
  or more ``file`` parts. Each file goes through the one ingestion path there is
  (``graft.knowledge.ingest.Ingestion.ingest_bytes``: the parser's checks, chunking,
  embedding, incremental by content hash), under its file name, into the caller's tenant,
  readable by everyone in it. The answer says per file what became of it (``added``,
  ``updated``, ``unchanged`` or ``failed`` with the reason: an unsupported type, an empty
  file, a damaged one...); one bad file does not stop the others.
- ``DELETE /v1/knowledge/documents/{id}``: removes a document the caller may read.

Only builders and admins (``graft.assistants.may_manage``) may do either, and only with the
collections ``[access.collections]`` lets them use; everyone else gets 403 before the body is
read. A document the caller may not read answers 404, as on the read routes
(``graft.server.knowledge``), and an upload may not replace one: a file named like a
document the caller may not read fails rather than overwrite it. Every file uploaded and
every document deleted is recorded in the audit log (``document.upload``,
``document.delete``), with the collection and the file's name, never its content.

An upload may be far larger than any other request: ``knowledge.max_upload_bytes`` (50 MiB
by default) is its body limit instead of ``limits.max_body_bytes``; ``UPLOAD_PATH`` is what
the app gives ``graft.server.limits.BodySizeLimit`` so that it still refuses a larger body
before reading it. The parts are spooled to temporary files as they arrive, and parsing and
embedding run in worker threads, off the event loop.
"""

from __future__ import annotations

import re
import unicodedata
from pathlib import PurePath
from typing import TYPE_CHECKING, Annotated, Any, Final

import anyio.to_thread
from fastapi import APIRouter, Path, Request
from starlette.datastructures import UploadFile
from starlette.requests import ClientDisconnect

from graft import audit
from graft.assistants import NAME_PATTERN, may_manage
from graft.context import Principal
from graft.errors import ClientGone, InvalidRequest, NotFound, PermissionDenied
from graft.policy import authorize
from graft.server.deps import CurrentGraft, CurrentPrincipal
from graft.server.knowledge import open_documents

if TYPE_CHECKING:  # the parsers and numpy load with the first upload, not with the app
    from graft.knowledge.ingest import FileOutcome, Upload
    from graft.runtime import Graft

__all__ = ["MAX_FILES", "UPLOAD_PATH", "router"]

router = APIRouter(prefix="/v1/knowledge", tags=["knowledge"])

UPLOAD_PATH: Final = r"/v1/knowledge/collections/[^/]+/documents"
"""The upload route's paths, as a regular expression (for ``BodySizeLimit``)."""
MAX_FILES: Final = 100
"""Files one upload may carry."""
_MAX_FIELDS: Final = 20
_MAX_NAME: Final = 255
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")

_ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
_FORBIDDEN = {"description": "Not a builder or an admin, or a collection they may not use"}
_UPLOAD_BODY = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file"],
                "properties": {
                    "file": {
                        "type": "array",
                        "items": {"type": "string", "format": "binary"},
                        "description": "The files: PDF, Word, PowerPoint, Excel, CSV, HTML, "
                        "Markdown or text, each under its file name.",
                    }
                },
            }
        }
    },
}
_RESULT = {
    "type": "object",
    "required": ["object", "data"],
    "properties": {
        "object": {"const": "list"},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["filename", "status"],
                "properties": {
                    "filename": {"type": "string"},
                    "status": {"enum": ["added", "updated", "unchanged", "failed"]},
                    "document_id": {"type": "string"},
                    "chunks": {"type": "integer"},
                    "error": {"type": "string"},
                },
            },
        },
    },
}

Collection = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        pattern=NAME_PATTERN,
        description="The collection: letters, digits, `.`, `_` and `-`, as assistants name it.",
    ),
]


class UnsupportedMediaType(InvalidRequest):
    """The body is not ``multipart/form-data``."""

    status = 415
    code = "unsupported_media_type"


def _require_builder(graft: Graft, principal: Principal, collection: str, doing: str) -> None:
    """Raise ``PermissionDenied`` unless ``principal`` may change ``collection``."""
    if not may_manage(principal):
        raise PermissionDenied(f"only builders and admins may {doing}")
    authorize(graft.settings, principal, "collections", collection)


def _file_name(raw: str | None, hidden: set[str], taken: set[str]) -> str:
    """The name a part's file is stored under: the last part of its file name, cleaned.

    Raises:
        InvalidRequest: The part has no file name, nothing is left of it, it is too long,
            it names a document the caller may not read (``hidden``), or an earlier part
            of the upload has it (``taken``).
    """
    if raw is None:
        raise InvalidRequest("the part has no filename: it is not a file")
    name = unicodedata.normalize("NFC", re.split(r"[/\\]", raw)[-1])
    name = _CONTROL.sub("", name).strip()
    if name in ("", ".", ".."):
        raise InvalidRequest(f"{raw!r} is not a file name")
    if len(name) > _MAX_NAME:
        raise InvalidRequest(f"the file name has {len(name)} characters; at most {_MAX_NAME}")
    if name in hidden:
        raise InvalidRequest(
            f"{name!r}: the collection holds a document of that name that you may not read"
        )
    if name in taken:
        raise InvalidRequest(f"{name!r} is in this upload twice")
    return name


@router.post(
    "/collections/{collection}/documents",
    summary="Upload documents into a collection of your tenant (builders and admins)",
    # The body is read by the route itself, after the role check; this documents it.
    openapi_extra={"requestBody": _UPLOAD_BODY},
    responses={
        200: {
            "description": "What became of each file",
            "content": {"application/json": {"schema": _RESULT}},
        },
        403: {**_FORBIDDEN, "content": _ERROR},
        415: {"description": "The body is not multipart/form-data", "content": _ERROR},
    },
)
async def upload(
    collection: Collection, request: Request, graft: CurrentGraft, principal: CurrentPrincipal
) -> dict[str, Any]:
    """Ingest each ``file`` part into ``collection``, readable by everyone in your tenant."""
    from graft.embeddings import embedder_for
    from graft.knowledge.index import Readers
    from graft.knowledge.ingest import Ingestion, Upload
    from graft.knowledge.parse import SUPPORTED

    _require_builder(graft, principal, collection, "upload documents")
    content_type = request.headers.get("content-type", "")
    if content_type.split(";")[0].strip().lower() != "multipart/form-data":
        raise UnsupportedMediaType(
            "send the files as multipart/form-data, one part named `file` for each"
        )
    index = await open_documents(graft)
    if index is None:
        raise InvalidRequest(
            "this server keeps no documents: its store is memory://", code="no_document_store"
        )
    limit = graft.settings.knowledge.max_upload_bytes
    results: list[dict[str, Any]] = []
    uploads: dict[int, Upload] = {}  # position in ``results`` to the file ingested there
    try:
        async with request.form(max_files=MAX_FILES, max_fields=_MAX_FIELDS) as form:
            parts = form.getlist("file")
            if not parts:
                raise InvalidRequest("no file: send one or more parts named `file`", param="file")
            known = await anyio.to_thread.run_sync(
                index.content_hashes, principal.tenant, collection
            )
            documents = await anyio.to_thread.run_sync(index.documents, principal, collection)
            hidden = set(known) - {d["source"] for d in documents}
            for part in parts:
                filename = part.filename if isinstance(part, UploadFile) else None
                try:
                    name = _file_name(filename, hidden, {u.source for u in uploads.values()})
                except InvalidRequest as exc:
                    results.append(
                        {"filename": filename or "", "status": "failed", "error": exc.message}
                    )
                    continue
                assert isinstance(part, UploadFile)
                # A browser's part type is the OS's guess from the extension (a .csv can come as
                # application/vnd.ms-excel): a supported extension, checked against the
                # content by the parser, says more. Without one the declared type decides.
                declared = None if PurePath(name).suffix.lower() in SUPPORTED else part.content_type
                uploads[len(results)] = Upload(name, await part.read(), declared)
                results.append({"filename": name, "status": "failed"})
    except ClientDisconnect:
        raise ClientGone("the client went away while sending its files") from None
    ingestion = Ingestion(
        index,
        embedder_for(graft.settings, store=graft.store),
        collection=collection,
        readers=Readers(principal.tenant, everyone=True),
        max_bytes=limit,
    )
    outcomes = await ingestion.ingest_bytes(list(uploads.values()))
    for position, outcome in zip(uploads, outcomes, strict=True):
        results[position] = _result(outcome)
    for result in results:
        await _record_upload(graft, principal, collection, result)
    return {"object": "list", "data": results}


def _result(outcome: FileOutcome) -> dict[str, Any]:
    result: dict[str, Any] = {"filename": outcome.source, "status": outcome.status}
    if outcome.document_id is not None:
        result["document_id"] = outcome.document_id
    if outcome.chunks is not None:
        result["chunks"] = outcome.chunks
    if outcome.error is not None:
        result["error"] = outcome.error
    return result


async def _record_upload(
    graft: Graft, principal: Principal, collection: str, result: dict[str, Any]
) -> None:
    failed = result["status"] == "failed"
    details = {"collection": collection, "name": result["filename"], "status": result["status"]}
    details |= {"error": result["error"]} if failed else {"chunks": result.get("chunks")}
    event = audit.AuditEvent(
        "document.upload",
        principal.user_id,
        principal.tenant,
        result.get("document_id") or result["filename"],
        "error" if failed else "ok",
        details,
    )
    await audit.record(graft.store, event)


@router.delete(
    "/documents/{document_id}",
    summary="Delete a document of your tenant (builders and admins)",
    responses={403: {**_FORBIDDEN, "content": _ERROR}},
)
async def delete_document(
    graft: CurrentGraft,
    principal: CurrentPrincipal,
    document_id: Annotated[str, Path(max_length=64)],
) -> dict[str, Any]:
    """Remove the document and its passages from the index and from every search."""
    if not may_manage(principal):
        raise PermissionDenied("only builders and admins may delete documents")
    index = await open_documents(graft)
    if index is None:
        raise NotFound(f"no document {document_id!r}")
    found = await anyio.to_thread.run_sync(index.summary, principal, document_id)
    if found is None:
        raise NotFound(f"no document {document_id!r}")
    authorize(graft.settings, principal, "collections", found["collection"])
    if await anyio.to_thread.run_sync(index.delete, principal, document_id) is None:
        raise NotFound(f"no document {document_id!r}")  # deleted meanwhile
    details = {"collection": found["collection"], "name": found["source"]}
    event = audit.AuditEvent(
        "document.delete", principal.user_id, principal.tenant, document_id, "ok", details
    )
    await audit.record(graft.store, event)
    return {"object": "document.deleted", "id": document_id, "deleted": True}

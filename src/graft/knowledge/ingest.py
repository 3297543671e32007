"""Ingestion: files, folders and URLs into a collection of the index, incrementally.

``Ingestion.run(targets)`` takes each target in turn:

- a file is read, hashed (SHA-256 of its bytes) and skipped when the collection holds the
  same source with the same hash; otherwise parsed (``graft.knowledge.parse``), chunked
  (``graft.knowledge.chunk``), embedded (``graft.embeddings``) and stored, replacing the
  earlier version (``graft.knowledge.index``);
- a folder is walked for the supported file types; afterwards the documents of the
  collection that came from under that folder and are no longer there are removed;
- a URL is fetched through the network guard (``graft.netguard``, redirects re-checked hop by
  hop, refusals audited), with a size cap, and ingested like a file under its URL.

``Ingestion.ingest_bytes(uploads)`` takes files that arrived as bytes (an HTTP upload,
``graft.server.uploads``) the same way, each under the name it came with, and says per file
what became of it (``FileOutcome``).

A target that fails (unreadable, unsupported, refused) is reported with its reason and the
others go on: one broken PDF in a folder of a thousand does not stop the rest. ``progress``
is called once per file, for the command line's progress bar.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

import anyio.to_thread

from graft.embeddings import Embedder
from graft.errors import GraftError, InvalidRequest
from graft.knowledge.chunk import Chunk, chunk_document
from graft.knowledge.index import ChunkRow, DocumentRow, KnowledgeIndex, Readers
from graft.knowledge.parse import SUPPORTED, parse_bytes
from graft.netguard import NetworkPolicy, OnBlocked, guarded_client

__all__ = ["FileOutcome", "Ingestion", "IngestReport", "Upload", "expand"]

MAX_BYTES: Final = 50 * 1024 * 1024
"""The largest file or download ingested."""


@dataclass
class IngestReport:
    """What one run did, per source."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    chunks: int = 0


@dataclass(frozen=True, slots=True)
class Upload:
    """A file that arrived as bytes: its source (a file name), content and declared type."""

    source: str
    data: bytes
    media_type: str | None = None


@dataclass(frozen=True, slots=True)
class FileOutcome:
    """What became of one file: its document and chunks, or why it failed."""

    source: str
    status: Literal["added", "updated", "unchanged", "failed"]
    document_id: str | None = None
    chunks: int | None = None
    error: str | None = None


def _is_url(target: str) -> bool:
    return target.startswith(("http://", "https://"))


def expand(targets: Iterable[str]) -> list[tuple[str, Path | None]]:
    """Each file of the targets as ``(source, folder it came from)``; URLs as they are."""
    found: list[tuple[str, Path | None]] = []
    for target in targets:
        if _is_url(target):
            found.append((target, None))
            continue
        path = Path(target).expanduser().resolve()
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                for name in sorted(files):
                    if not name.startswith(".") and Path(name).suffix.lower() in SUPPORTED:
                        found.append((str(Path(root) / name), path))
        else:
            found.append((str(path), None))
    return found


class Ingestion:
    """Ingest into one collection, for readers of one tenant (see the module docstring)."""

    def __init__(
        self,
        index: KnowledgeIndex,
        embedder: Embedder,
        *,
        collection: str,
        readers: Readers,
        policy: NetworkPolicy | None = None,
        on_blocked: OnBlocked | None = None,
        max_bytes: int = MAX_BYTES,
    ) -> None:
        self.index = index
        self.embedder = embedder
        self.collection = collection
        self.readers = readers
        self.policy = policy or NetworkPolicy()
        self.on_blocked = on_blocked
        self.max_bytes = max_bytes

    async def run(
        self, targets: Sequence[str], progress: Callable[[str], None] | None = None
    ) -> IngestReport:
        """Ingest ``targets`` (files, folders, URLs); see the module docstring."""
        return await self.run_files(expand(targets), progress)

    async def run_files(
        self,
        files: Sequence[tuple[str, Path | None]],
        progress: Callable[[str], None] | None = None,
    ) -> IngestReport:
        """Ingest what ``expand`` found (a caller that counted the files first)."""
        report = IngestReport()
        known = await anyio.to_thread.run_sync(
            self.index.content_hashes, self.readers.tenant, self.collection
        )
        for source, _ in files:
            try:
                await self._one(source, known.get(source), report)
            except GraftError as exc:
                report.failed[source] = exc.message
            except OSError as exc:
                report.failed[source] = f"cannot read it: {exc.strerror or exc}"
            if progress is not None:
                progress(source)
        folders = {folder for _, folder in files if folder is not None}
        seen = {source for source, _ in files}
        gone = [
            source
            for source in known
            if source not in seen and any(_under(source, folder) for folder in folders)
        ]
        if gone:
            await anyio.to_thread.run_sync(
                self.index.remove, self.readers.tenant, self.collection, gone
            )
            report.removed.extend(sorted(gone))
        return report

    async def ingest_bytes(self, uploads: Sequence[Upload]) -> list[FileOutcome]:
        """Ingest files that arrived as bytes; a failed one is in its outcome, not raised."""
        known = await anyio.to_thread.run_sync(
            self.index.content_hashes, self.readers.tenant, self.collection
        )
        outcomes = []
        for upload in uploads:
            try:
                outcome = await self._ingest(
                    upload.source, upload.data, None, upload.media_type, known.get(upload.source)
                )
            except GraftError as exc:
                outcome = FileOutcome(upload.source, "failed", error=exc.message)
            outcomes.append(outcome)
        return outcomes

    async def _one(self, source: str, known_hash: str | None, report: IngestReport) -> None:
        data, modified, media_type = await (
            self._fetch(source) if _is_url(source) else self._read(source)
        )
        outcome = await self._ingest(source, data, modified, media_type, known_hash)
        if outcome.status == "unchanged":
            report.unchanged.append(source)
            return
        (report.updated if outcome.status == "updated" else report.added).append(source)
        report.chunks += outcome.chunks or 0

    async def _ingest(
        self,
        source: str,
        data: bytes,
        modified: datetime | None,
        media_type: str | None,
        known_hash: str | None,
    ) -> FileOutcome:
        """Parse, chunk, embed and store one file, unless its hash says it is unchanged."""
        digest = await anyio.to_thread.run_sync(lambda: hashlib.sha256(data).hexdigest())
        if digest == known_hash:
            return FileOutcome(source, "unchanged")
        name = source.rsplit("/", 1)[-1] or source
        parsed = await anyio.to_thread.run_sync(
            lambda: parse_bytes(data, name=name, media_type=media_type, max_bytes=self.max_bytes)
        )
        chunks: list[Chunk] = await anyio.to_thread.run_sync(chunk_document, parsed)
        vectors = await self.embedder.embed_documents([chunk.text for chunk in chunks])
        row = DocumentRow(
            self.collection,
            source,
            parsed.title,
            parsed.media_type,
            digest,
            parsed.modified or modified,
            self.readers,
        )
        rows = [
            ChunkRow(
                chunk.text,
                " > ".join(chunk.heading_path),
                chunk.page,
                chunk.char_start,
                chunk.char_end,
            )
            for chunk in chunks
        ]
        document_id = await anyio.to_thread.run_sync(
            self.index.put, row, rows, vectors if rows else None
        )
        status: Literal["added", "updated"] = "updated" if known_hash is not None else "added"
        return FileOutcome(source, status, document_id, len(rows))

    async def _read(self, source: str) -> tuple[bytes, datetime | None, str | None]:
        def read() -> tuple[bytes, datetime]:
            path = Path(source)
            found = path.stat()
            if found.st_size > self.max_bytes:
                raise InvalidRequest(
                    f"{source}: {found.st_size} bytes, over the {self.max_bytes} limit"
                )
            return path.read_bytes(), datetime.fromtimestamp(found.st_mtime, UTC)

        data, modified = await anyio.to_thread.run_sync(read)
        return data, modified, None

    async def _fetch(self, url: str) -> tuple[bytes, datetime | None, str | None]:
        async with (
            guarded_client(self.policy, on_blocked=self.on_blocked, follow_redirects=True) as http,
            http.stream("GET", url) as response,
        ):
            if response.status_code != 200:
                raise InvalidRequest(f"{url}: the server answered {response.status_code}")
            body = bytearray()
            async for piece in response.aiter_bytes():
                body += piece
                if len(body) > self.max_bytes:
                    raise InvalidRequest(f"{url}: over the {self.max_bytes}-byte limit")
            # The whole header: parse_bytes reads the charset from it too.
            media_type = response.headers.get("content-type", "").strip()
        return bytes(body), None, media_type or None


def _under(source: str, folder: Path) -> bool:
    return not _is_url(source) and Path(source).is_relative_to(folder)

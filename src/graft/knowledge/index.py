"""The document index: documents, their readers and chunks, searched by words and by meaning.

Documents live in the store's own database (``knowledge_documents``, ``knowledge_readers``,
``knowledge_chunks``; migration 0007). Search is hybrid: a full-text ranking (SQLite FTS5,
BM25) and a vector ranking (cosine over the chunks' embeddings) fused by reciprocal rank
fusion, ``score = Σ 1 / (60 + rank)``, so that neither scale has to be calibrated against
the other.

**Access control is part of the query.** Every document carries its tenant and the users and
groups who may read it (or ``everyone`` in the tenant). Both rankings run only over chunks of
documents the principal may read, in the collections asked for: the filter is in the SQL
that selects the candidates, before anything is ranked, so a chunk, title or source the
principal may not read never leaves the database for this principal, however the query is
phrased. ``admin`` reads every document of its own tenant, as in ``graft.policy``; no one
reads another tenant's.

**Chinese without a segmenter.** FTS5's ``unicode61`` tokenizer takes a run of CJK characters
for one token, so ``员工手册`` would match only itself. The indexed text therefore spells
each CJK run as its characters and its character bigrams (``员 工 手 册 员工 工手 手册``),
the way CJK analyzers of search engines do; a query is spelled as bigrams (a single
character as itself), so ``手册`` and ``病假`` find their documents, and BM25's IDF ranks
the rarer bigrams up. Latin text is tokenized by ``unicode61`` as usual.

The full-text tables are derived from the chunks and made when the index starts: FTS5 on
SQLite, a ``tsvector`` table with a GIN index on PostgreSQL (the ``simple`` configuration
over the same spelling, so Chinese works there too). On SQLite the vectors are compared in
memory, over the candidates the access filter let through, which suits the embedded default
up to some 10^5 chunks. On PostgreSQL with pgvector the ranking by meaning runs in the
database instead, with the same access filter and the same order, near exact once HNSW takes
over (``graft.knowledge.pgvector``: a derived ``knowledge_vec`` table with an HNSW index per
dimension); a PostgreSQL without the extension, and without the right to create it, ranks
in memory as SQLite does, and says so once in the log when the index starts.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final
from weakref import WeakKeyDictionary

import anyio.to_thread
from sqlalchemy import (
    Engine,
    and_,
    column,
    delete,
    exists,
    false,
    func,
    insert,
    or_,
    select,
    table,
    text,
    true,
)
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from graft.context import Principal
from graft.errors import ConfigError
from graft.knowledge import pgvector

if TYPE_CHECKING:  # numpy loads with the first document, not with every graft process
    import numpy as np
from graft.messages import new_id
from graft.policy import ADMIN_ROLE
from graft.store.schema import t_knowledge_chunks, t_knowledge_documents, t_knowledge_readers

__all__ = [
    "RRF_K",
    "open_index",
    "ChunkRow",
    "DocumentRow",
    "Hit",
    "KnowledgeIndex",
    "Readers",
    "fts_query",
    "fts_text",
]

RRF_K: Final = 60
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+")
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
_MAX_QUERY_TERMS: Final = 48
_CANDIDATES: Final = 50
"""How many chunks each ranking contributes to the fusion."""

_FTS = table("knowledge_fts", column("rowid"), column("body"))
"""The FTS5 table (SQLite): ``rowid`` is the chunk's id, ``body`` its text as indexed."""
_TSV = table("knowledge_tsv", column("chunk_id"), column("body"))
"""The full-text table on PostgreSQL: a ``tsvector`` per chunk, with a GIN index."""
_TSV_LOCK: Final = 0x6772_6166_7474_7376  # "grafttsv"
"""The advisory lock key that serializes making ``knowledge_tsv`` (PostgreSQL)."""
_VEC = table("knowledge_vec", column("chunk_id"))
"""pgvector's table (PostgreSQL with the extension): a chunk's embedding as a ``vector``."""

d = t_knowledge_documents
r = t_knowledge_readers
c = t_knowledge_chunks


def _bigrams(run: str) -> list[str]:
    return [run] if len(run) == 1 else [run[i : i + 2] for i in range(len(run) - 1)]


def fts_text(body: str) -> str:
    """``body`` as it is indexed: each CJK run as its characters and its bigrams."""
    return _CJK.sub(lambda m: f" {' '.join([*m.group(), *_bigrams(m.group())])} ", body)


def fts_query(query: str) -> str | None:
    """An FTS5 ``MATCH`` expression for ``query``: its terms, OR-ed; None if it has none."""
    terms: list[str] = []
    for word in _WORD.findall(query.lower()):
        for part in re.split(f"({_CJK.pattern})", word):
            if not part:
                continue
            terms.extend(_bigrams(part) if _CJK.fullmatch(part) else [part])
    unique = list(dict.fromkeys(terms))[:_MAX_QUERY_TERMS]
    return " OR ".join(f'"{term}"' for term in unique) if unique else None


@dataclass(frozen=True, slots=True)
class Readers:
    """Who may read a document: users and groups of one tenant, or everyone in it."""

    tenant: str
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()
    everyone: bool = False


@dataclass(frozen=True, slots=True)
class DocumentRow:
    """A document as ingested (its chunks apart)."""

    collection: str
    source: str
    title: str
    media_type: str
    content_hash: str
    modified_at: datetime | None
    readers: Readers


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """One chunk to store: its text, where it is, and its embedding (or None)."""

    text: str
    heading: str
    page: int | None
    char_start: int
    char_end: int


@dataclass(frozen=True, slots=True)
class Hit:
    """A chunk found for a query, with what a citation needs."""

    chunk_id: int
    document_id: str
    collection: str
    source: str
    title: str
    text: str
    heading: str
    page: int | None
    char_start: int
    char_end: int
    score: float


def readable_by(principal: Principal) -> ColumnElement[bool]:
    """The condition on ``knowledge_documents`` that ``principal`` may read a document."""
    same_tenant = d.c.tenant == principal.tenant
    if principal.has_any_role([ADMIN_ROLE]):
        return same_tenant
    named = [and_(r.c.kind == "user", r.c.name == principal.user_id)]
    if principal.groups:
        named.append(and_(r.c.kind == "group", r.c.name.in_(sorted(principal.groups))))
    listed = exists(select(1).where(r.c.document_id == d.c.id, or_(*named)))
    return and_(same_tenant, or_(d.c.everyone == true(), listed))


def _summary(row: Any) -> dict[str, Any]:
    """A ``knowledge_documents`` row as the HTTP API lists it."""
    return {
        "id": row.id,
        "collection": row.collection,
        "title": row.title,
        "source": row.source,
        "media_type": row.media_type,
        "chunks": row.chunk_count,
        "modified_at": row.modified_at.isoformat() if row.modified_at else None,
        "updated_at": row.ingested_at.isoformat(),
    }


_OPENED: WeakKeyDictionary[Engine, KnowledgeIndex] = WeakKeyDictionary()


async def open_index(store: object) -> KnowledgeIndex | None:
    """The index in ``store``'s database, started once per process; None for ``memory://``."""
    engine = getattr(store, "engine", None)
    if not isinstance(engine, Engine):
        return None
    index = _OPENED.get(engine)
    if index is None:
        index = KnowledgeIndex(engine)
        await anyio.to_thread.run_sync(index.start)
        index = _OPENED.setdefault(engine, index)
    return index


class KnowledgeIndex:
    """Documents and chunks in ``engine``'s database; every method is sync (run in a thread).

    The store runs on SQLite or PostgreSQL, and so does the index.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.fts = engine.dialect.name == "sqlite"
        if not self.fts and engine.dialect.name != "postgresql":
            raise ConfigError(f"documents need SQLite or PostgreSQL, not {engine.dialect.name}")
        self.vectors = False
        """Whether meaning is ranked in the database (PostgreSQL with pgvector; see start)."""
        self._vector_dims: set[int] = set()
        self._iterative = False

    def start(self) -> None:
        """Make the derived tables (full text; pgvector's) if missing, filled from the chunks."""
        with self.engine.begin() as conn:
            if self.fts:
                probe = "SELECT 1 FROM sqlite_master WHERE name = 'knowledge_fts'"
                create = ["CREATE VIRTUAL TABLE knowledge_fts USING fts5(body)"]
            else:
                # Workers starting together: one makes and fills the table, the others
                # then find it (the lock ends with the transaction).
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _TSV_LOCK})
                probe = "SELECT to_regclass('knowledge_tsv')::text"
                create = [
                    "CREATE TABLE knowledge_tsv (chunk_id BIGINT PRIMARY KEY REFERENCES "
                    "knowledge_chunks (id) ON DELETE CASCADE, body TSVECTOR NOT NULL)",
                    "CREATE INDEX ix_knowledge_tsv_body ON knowledge_tsv USING GIN (body)",
                ]
            found = conn.execute(text(probe)).scalar()
            if found is None:
                for statement in create:
                    conn.execute(text(statement))
                rows = conn.execute(select(c.c.id, c.c.heading, c.c.text)).all()
                self._index_fts(conn, [(row.id, f"{row.heading}\n{row.text}") for row in rows])
        version = None if self.fts else pgvector.enable(self.engine)
        if version is not None:
            with self.engine.begin() as conn:
                self._vector_dims = pgvector.start(conn)
            self.vectors, self._iterative = True, version >= (0, 8)

    # --- writing ----------------------------------------------------------------------------

    def content_hashes(self, tenant: str, collection: str) -> dict[str, str]:
        """Source to content hash of every document of a collection (incremental ingestion)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(d.c.source, d.c.content_hash).where(
                    d.c.tenant == tenant, d.c.collection == collection
                )
            )
            return {row.source: row.content_hash for row in rows}

    def put(
        self, document: DocumentRow, chunks: Sequence[ChunkRow], embeddings: np.ndarray | None
    ) -> str:
        """Store ``document`` and its chunks, replacing an earlier version of the same source."""
        import numpy as np

        if embeddings is not None and len(embeddings) != len(chunks):
            raise ValueError(f"{len(chunks)} chunks but {len(embeddings)} embeddings")
        readers = document.readers
        document_id = new_id("doc")
        with self.engine.begin() as conn:
            self._remove(conn, readers.tenant, document.collection, [document.source])
            conn.execute(
                insert(d).values(
                    id=document_id,
                    tenant=readers.tenant,
                    collection=document.collection,
                    source=document.source,
                    title=document.title,
                    media_type=document.media_type,
                    content_hash=document.content_hash,
                    modified_at=document.modified_at,
                    ingested_at=datetime.now(UTC),
                    everyone=readers.everyone,
                    chunk_count=len(chunks),
                )
            )
            names = [("user", u) for u in sorted(readers.users)]
            names += [("group", g) for g in sorted(readers.groups)]
            if names:
                conn.execute(
                    insert(r),
                    [{"document_id": document_id, "kind": k, "name": n} for k, n in names],
                )
            ids: list[tuple[int, str]] = []
            vectors: list[tuple[int, bytes]] = []
            for position, chunk in enumerate(chunks):
                vector = None if embeddings is None else embeddings[position]
                blob = None if vector is None else np.asarray(vector, dtype=np.float32).tobytes()
                row_id = conn.execute(
                    insert(c).values(
                        document_id=document_id,
                        position=position,
                        text=chunk.text,
                        heading=chunk.heading,
                        page=chunk.page,
                        char_start=chunk.char_start,
                        char_end=chunk.char_end,
                        embedding=blob,
                    )
                ).inserted_primary_key
                assert row_id is not None
                ids.append((int(row_id[0]), f"{chunk.heading}\n{chunk.text}"))
                if blob is not None:
                    vectors.append((int(row_id[0]), blob))
            self._index_fts(conn, ids)
            if self.vectors:
                pgvector.store(conn, vectors, self._vector_dims)
        return document_id

    def remove(self, tenant: str, collection: str, sources: Iterable[str]) -> int:
        """Remove the documents of these sources; returns how many there were."""
        with self.engine.begin() as conn:
            return self._remove(conn, tenant, collection, list(sources))

    def _remove(self, conn: Connection, tenant: str, collection: str, sources: list[str]) -> int:
        if not sources:
            return 0
        where = and_(d.c.tenant == tenant, d.c.collection == collection, d.c.source.in_(sources))
        ids = [row.id for row in conn.execute(select(d.c.id).where(where))]
        if not ids:
            return 0
        chunk_ids = select(c.c.id).where(c.c.document_id.in_(ids))
        if self.fts:
            conn.execute(delete(_FTS).where(_FTS.c.rowid.in_(chunk_ids)))
        else:
            conn.execute(delete(_TSV).where(_TSV.c.chunk_id.in_(chunk_ids)))
            if self.vectors:
                conn.execute(delete(_VEC).where(_VEC.c.chunk_id.in_(chunk_ids)))
        # Explicit deletes: SQLite enforces ON DELETE CASCADE only with foreign_keys on.
        conn.execute(delete(c).where(c.c.document_id.in_(ids)))
        conn.execute(delete(r).where(r.c.document_id.in_(ids)))
        conn.execute(delete(d).where(d.c.id.in_(ids)))
        return len(ids)

    def delete(self, principal: Principal, document_id: str) -> dict[str, Any] | None:
        """Remove a document ``principal`` may read; its summary, or None if there is none."""
        with self.engine.begin() as conn:
            found = conn.execute(
                select(d).where(d.c.id == document_id, readable_by(principal))
            ).first()
            if found is None:
                return None
            self._remove(conn, found.tenant, found.collection, [found.source])
        return _summary(found)

    def _index_fts(self, conn: Connection, rows: Sequence[tuple[int, str]]) -> None:
        if not rows:
            return
        insert_sql = (
            "INSERT INTO knowledge_fts(rowid, body) VALUES (:id, :body)"
            if self.fts
            else "INSERT INTO knowledge_tsv (chunk_id, body) "
            "VALUES (:id, to_tsvector('simple', :body))"
        )
        conn.execute(
            text(insert_sql),
            [{"id": chunk_id, "body": fts_text(body)} for chunk_id, body in rows],
        )

    # --- reading ----------------------------------------------------------------------------

    def collections(self, principal: Principal) -> dict[str, int]:
        """Collection to the number of documents ``principal`` may read in it."""
        with self.engine.connect() as conn:
            rows = conn.execute(select(d.c.collection, d.c.id).where(readable_by(principal))).all()
        counts: dict[str, int] = {}
        for row in rows:
            counts[row.collection] = counts.get(row.collection, 0) + 1
        return counts

    def document(self, principal: Principal, document_id: str) -> dict[str, Any] | None:
        """A document and its chunks in order, or None if it is missing or not readable."""
        with self.engine.connect() as conn:
            found = conn.execute(
                select(d).where(d.c.id == document_id, readable_by(principal))
            ).first()
            if found is None:
                return None
            chunks = conn.execute(
                select(c.c.id, c.c.position, c.c.heading, c.c.page, c.c.text)
                .where(c.c.document_id == document_id)
                .order_by(c.c.position)
            ).all()
        return {
            "id": found.id,
            "collection": found.collection,
            "title": found.title,
            "source": found.source,
            "media_type": found.media_type,
            "modified_at": found.modified_at.isoformat() if found.modified_at else None,
            "ingested_at": found.ingested_at.isoformat(),
            "chunks": [
                {
                    "id": row.id,
                    "position": row.position,
                    "heading": row.heading,
                    "page": row.page,
                    "text": row.text,
                }
                for row in chunks
            ],
        }

    def documents(self, principal: Principal, collection: str) -> list[dict[str, Any]]:
        """The documents of a collection that ``principal`` may read, by title (no chunks)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(d)
                .where(d.c.collection == collection, readable_by(principal))
                .order_by(func.lower(d.c.title), d.c.id)
            ).all()
        return [_summary(row) for row in rows]

    def summary(self, principal: Principal, document_id: str) -> dict[str, Any] | None:
        """A document ``principal`` may read, without its chunks; None otherwise."""
        with self.engine.connect() as conn:
            found = conn.execute(
                select(d).where(d.c.id == document_id, readable_by(principal))
            ).first()
        return None if found is None else _summary(found)

    def search(
        self,
        principal: Principal,
        query: str,
        vector: np.ndarray | None,
        *,
        collections: Sequence[str] | None = None,
        k: int = 8,
    ) -> list[Hit]:
        """The ``k`` best chunks for ``query`` that ``principal`` may read (module docstring)."""
        allowed = readable_by(principal)
        if collections is not None:
            allowed = and_(
                allowed, d.c.collection.in_(list(collections)) if collections else false()
            )
        candidates = select(c.c.id).join(d, d.c.id == c.c.document_id).where(allowed)
        with self.engine.connect() as conn:
            ranked = [self._words(conn, query, candidates)]
            if vector is not None and self.vectors:
                ranked.append(
                    pgvector.rank(conn, vector, allowed, _CANDIDATES, iterative=self._iterative)
                )
            elif vector is not None:
                ranked.append(self._meaning(conn, vector, allowed))
            scores: dict[int, float] = {}
            for ranking in ranked:
                for rank, chunk_id in enumerate(ranking, start=1):
                    scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
            best = sorted(scores, key=lambda i: (-scores[i], i))[:k]
            if not best:
                return []
            rows = conn.execute(
                select(c, d.c.collection, d.c.source, d.c.title)
                .join(d, d.c.id == c.c.document_id)
                .where(c.c.id.in_(best), allowed)  # checked again with the rows read
            ).all()
        by_id: Mapping[int, Any] = {row.id: row for row in rows}
        return [
            Hit(
                chunk_id=i,
                document_id=by_id[i].document_id,
                collection=by_id[i].collection,
                source=by_id[i].source,
                title=by_id[i].title,
                text=by_id[i].text,
                heading=by_id[i].heading,
                page=by_id[i].page,
                char_start=by_id[i].char_start,
                char_end=by_id[i].char_end,
                score=scores[i],
            )
            for i in best
            if i in by_id
        ]

    def _words(self, conn: Connection, query: str, candidates: Any) -> list[int]:
        match = fts_query(query)
        if match is None:
            return []
        if self.fts:
            ranked = (
                select(_FTS.c.rowid)
                .where(
                    text("knowledge_fts MATCH :match").bindparams(match=match),
                    _FTS.c.rowid.in_(candidates),
                )
                .order_by(text("bm25(knowledge_fts)"))
                .limit(_CANDIDATES)
            )
            return [row[0] for row in conn.execute(ranked)]
        terms = [t.strip('"') for t in match.split(" OR ")]
        # 'simple': no stemming or stop words, the same for Chinese pairs and English.
        query_text = " | ".join(f"'{term}'" for term in terms)
        tsquery = text("to_tsquery('simple', :q)").bindparams(q=query_text)
        ranked = (
            select(_TSV.c.chunk_id)
            .where(_TSV.c.body.op("@@")(tsquery), _TSV.c.chunk_id.in_(candidates))
            .order_by(func.ts_rank(_TSV.c.body, tsquery).desc())
            .limit(_CANDIDATES)
        )
        return [row[0] for row in conn.execute(ranked)]

    def _meaning(self, conn: Connection, vector: np.ndarray, allowed: Any) -> list[int]:
        import numpy as np

        rows = conn.execute(
            select(c.c.id, c.c.embedding)
            .join(d, d.c.id == c.c.document_id)
            .where(allowed, c.c.embedding.is_not(None))
        ).all()
        if not rows:
            return []
        matrix = np.frombuffer(b"".join(row.embedding for row in rows), dtype=np.float32)
        matrix = matrix.reshape(len(rows), -1)
        if matrix.shape[1] != len(vector):
            return []  # embedded with another model: only the words rank these
        scores = matrix @ np.asarray(vector, dtype=np.float32)
        order = np.argsort(-scores)[:_CANDIDATES]
        return [int(rows[i].id) for i in order]

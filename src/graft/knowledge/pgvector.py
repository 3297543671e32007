"""Ranking by meaning inside PostgreSQL with pgvector, when the server has it.

The chunks keep their embeddings as float32 bytes (``knowledge_chunks.embedding``), the form
SQLite and a PostgreSQL without pgvector rank in memory. Where the ``vector`` extension is
there (or ``CREATE EXTENSION vector`` is allowed), the index keeps a derived table beside the
chunks, made and filled when the index starts, written with every chunk::

    knowledge_vec (chunk_id BIGINT PRIMARY KEY REFERENCES knowledge_chunks ON DELETE CASCADE,
                   dims INT NOT NULL, embedding vector NOT NULL)

One table holds every dimension (documents embedded by different models may share it); each
dimension gets its own HNSW index, a partial expression index made when vectors of that
dimension are first stored::

    CREATE INDEX ix_knowledge_vec_hnsw_384 ON knowledge_vec
        USING hnsw ((embedding::vector(384)) vector_ip_ops) WHERE dims = 384

and a search names the same expression and the same ``dims = 384`` (as literals, so the
planner can prove the index's predicate, also in the generic plan of a statement psycopg has
prepared). The order is the in-memory one's: the inner product of the stored vectors with
the query (``<#>``, its negation, ascending), which for graft's L2-normalised embeddings is
also the cosine order; exact where the planner scans the table (small collections), near
exact through HNSW (see ``_EF_SEARCH``). The access filter stays in the query; with HNSW
that would let an index scan stop short of ``limit`` readable rows, so the query's
transaction sets pgvector's ``hnsw.iterative_scan = relaxed_order`` (0.8+), which keeps
scanning until enough rows pass the filter, and the rows are put back in exact order after.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import (
    Float,
    bindparam,
    cast,
    column,
    func,
    literal_column,
    select,
    table,
    text,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.types import UserDefinedType

from graft.store.schema import t_knowledge_chunks, t_knowledge_documents

if TYPE_CHECKING:
    import numpy as np

__all__ = [
    "FILL_BATCH",
    "HNSW_MAX_DIMS",
    "PROGRESS_EVERY",
    "enable",
    "literal",
    "query",
    "rank",
    "start",
    "store",
]

log = logging.getLogger(__name__)

HNSW_MAX_DIMS: Final = 2000
"""pgvector indexes ``vector`` columns of up to 2,000 dimensions; wider ones are scanned."""
_EF_SEARCH: Final = 200
"""HNSW's candidate list per search (pgvector's default, 40, is below graft's 50 candidates).

Measured on 10^4 chunks of 384 dimensions (2 cores): clustered vectors, as embeddings are,
find 98-100% of the exact 50 at 100 or 200 alike; random ones, HNSW's worst case, 55% at
100 and 72-76% at 200, for the same ~13 ms per search (the ranking in memory: 100-190 ms)."""

FILL_BATCH: Final = 2000
"""Chunks read and written per statement when ``knowledge_vec`` is filled from the chunks."""
PROGRESS_EVERY: Final = 10.0
"""Seconds between two progress lines while ``knowledge_vec`` is filled."""

_START_LOCK: Final = 0x6772_6166_7476_6563  # "graftvec"
"""The advisory lock key that serializes making ``knowledge_vec``."""

_VEC = table("knowledge_vec", column("chunk_id"), column("dims"), column("embedding"))
_CREATE = (
    "CREATE TABLE knowledge_vec (chunk_id BIGINT PRIMARY KEY REFERENCES knowledge_chunks (id) "
    "ON DELETE CASCADE, dims INT NOT NULL, embedding vector NOT NULL)"
)


class _Vector(UserDefinedType[Any]):
    """pgvector's ``vector(n)``, for casts in queries (values travel as text: ``[1,2,3]``)."""

    cache_ok = True

    def __init__(self, dims: int) -> None:
        self.dims = dims

    def get_col_spec(self, **kw: Any) -> str:
        return f"vector({self.dims})"


def literal(vector: np.ndarray) -> str:
    """``vector`` in pgvector's text form; exact for float32 (each value's shortest repr)."""
    import numpy as np

    return "[" + ",".join(map(repr, np.asarray(vector, dtype=np.float32).tolist())) + "]"


def enable(engine: Engine) -> tuple[int, int] | None:
    """The ``vector`` extension's version, creating it if allowed; None (logged) without it.

    pgvector before 0.5 has no HNSW, so graft ranks in memory there too.
    """
    probe = text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    with engine.connect() as conn:
        found = conn.execute(probe).scalar()
    if found is None:
        reason = "?"
        try:
            with engine.begin() as conn:
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS vector"))
        except DBAPIError as exc:
            reason = str(exc.orig or exc).strip().splitlines()[0]
        with engine.connect() as conn:  # made now, or by another process meanwhile
            found = conn.execute(probe).scalar()
        if found is None:
            log.warning(
                "pgvector is not available (%s): documents are ranked by meaning in memory",
                reason,
            )
            return None
    version = _version(str(found))
    if version < (0, 5):
        log.warning(
            "pgvector %s has no HNSW (0.5 or newer has): documents are ranked by meaning in memory",
            found,
        )
        return None
    if version < (0, 8):
        log.info(
            "pgvector %s cannot scan HNSW iteratively (0.8 can): a search by meaning that the "
            "access filter narrows may find fewer chunks than it could",
            found,
        )
    return version


def _version(extversion: str) -> tuple[int, int]:
    parts = [int(part) if part.isdigit() else 0 for part in extversion.split(".")[:2]]
    return (parts + [0, 0])[0], (parts + [0, 0])[1]


def start(conn: Connection) -> set[int]:
    """Make ``knowledge_vec`` if it is missing and fill it; the dimensions it holds."""
    # Workers starting together: one makes and fills the table, the others then find it.
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _START_LOCK})
    if conn.execute(text("SELECT to_regclass('knowledge_vec')::text")).scalar() is None:
        conn.execute(text(_CREATE))
        _fill(conn)
    dims = {int(n) for n in conn.execute(select(_VEC.c.dims).distinct()).scalars()}
    for n in dims:
        _index_dims(conn, n)
    return dims


def _fill(conn: Connection) -> None:
    """Copy every chunk's embedding into the new ``knowledge_vec``, ``FILL_BATCH`` at a time.

    The first start on pgvector of a database with documents in it (an upgrade) does this
    once; the batches keep memory flat for any corpus, and the log says how far it is.
    """
    c = t_knowledge_chunks
    with_vectors = c.c.embedding.is_not(None)
    total = conn.execute(select(func.count()).select_from(c).where(with_vectors)).scalar_one()
    if not total:
        return
    log.info("knowledge: copying %d chunks' vectors into knowledge_vec (pgvector)", total)
    started = last_line = time.monotonic()
    done, after = 0, None
    while True:
        batch = select(c.c.id, c.c.embedding).where(with_vectors).order_by(c.c.id)
        if after is not None:
            batch = batch.where(c.c.id > after)  # keyset paging: each batch is a range scan
        rows = conn.execute(batch.limit(FILL_BATCH)).all()
        if not rows:
            break
        _insert(conn, [(row.id, row.embedding) for row in rows])
        done, after = done + len(rows), rows[-1].id
        if time.monotonic() - last_line >= PROGRESS_EVERY:
            last_line = time.monotonic()
            log.info("knowledge: %d of %d vectors copied into knowledge_vec", done, total)
    log.info(
        "knowledge: %d vectors copied into knowledge_vec in %.1f s",
        done,
        time.monotonic() - started,
    )


def store(conn: Connection, rows: Sequence[tuple[int, bytes]], known: set[int]) -> None:
    """Add chunks' float32 embeddings; a new dimension gets its HNSW index (added to ``known``)."""
    for n in _insert(conn, rows) - known:
        _index_dims(conn, n)
        known.add(n)


def _insert(conn: Connection, rows: Sequence[tuple[int, bytes]]) -> set[int]:
    import numpy as np

    if not rows:
        return set()
    values: list[dict[str, Any]] = []
    dims: set[int] = set()
    for chunk_id, blob in rows:
        vector = np.frombuffer(blob, dtype=np.float32)
        values.append({"id": chunk_id, "dims": len(vector), "v": literal(vector)})
        dims.add(len(vector))
    conn.execute(
        text(
            "INSERT INTO knowledge_vec (chunk_id, dims, embedding) "
            "VALUES (:id, :dims, CAST(:v AS vector))"
        ),
        values,
    )
    return dims


def _index_dims(conn: Connection, n: int) -> None:
    if n > HNSW_MAX_DIMS:
        return
    name = f"ix_knowledge_vec_hnsw_{n}"
    if conn.execute(text(f"SELECT to_regclass('{name}')::text")).scalar() is None:
        # Over many vectors this takes a while (minutes for millions): say so first.
        log.info("knowledge: building the HNSW index %s", name)
        conn.execute(
            text(
                f"CREATE INDEX IF NOT EXISTS {name} ON knowledge_vec "
                f"USING hnsw ((embedding::vector({n})) vector_ip_ops) WHERE dims = {n}"
            )
        )


def query(vector: np.ndarray, allowed: Any, limit: int) -> Any:
    """The SELECT of the ``limit`` nearest readable chunks: ``chunk_id`` and ``distance``."""
    n = len(vector)
    kind = _Vector(n)
    stored = cast(_VEC.c.embedding, kind)
    distance = stored.op("<#>", return_type=Float())(
        cast(bindparam("query_vector", literal(vector)), kind)
    )
    c, d = t_knowledge_chunks, t_knowledge_documents
    return (
        select(_VEC.c.chunk_id, distance.label("distance"))
        .select_from(_VEC.join(c, c.c.id == _VEC.c.chunk_id).join(d, d.c.id == c.c.document_id))
        .where(_VEC.c.dims == literal_column(str(int(n))), allowed)
        .order_by(distance)
        .limit(limit)
    )


def rank(
    conn: Connection, vector: np.ndarray, allowed: Any, limit: int, *, iterative: bool = True
) -> list[int]:
    """Ids of the ``limit`` readable chunks nearest to ``vector``, nearest first.

    ``iterative``: pgvector is 0.8 or newer (an older one rejects the setting).
    """
    settings = "set_config('hnsw.ef_search', :ef, true)"
    if iterative:
        settings += ", set_config('hnsw.iterative_scan', 'relaxed_order', true)"
    conn.execute(text(f"SELECT {settings}"), {"ef": str(_EF_SEARCH)})  # for this transaction
    rows = conn.execute(query(vector, allowed, limit)).all()
    # relaxed_order may return the rows slightly out of order: sort them exactly.
    return [int(row.chunk_id) for row in sorted(rows, key=lambda row: row.distance)]

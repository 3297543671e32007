"""Ranking by meaning in PostgreSQL with pgvector: the same order, the same access control.

The server is a real PostgreSQL 18 with pgvector 0.8 (``tests/pgvector_server.py``); the
fallbacks run there as a role that may not create the extension, and on the machine's own
PostgreSQL, which has no pgvector. The vectors are small
random unit vectors, so every chunk has its own distance to a query and the two rankings
(in the database, in memory) can be compared position by position.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import make_url
from tests.pgvector_server import pgvector_server
from tests.postgres_support import fresh_database
from tests.store.conftest import _empty_postgres

from graft.context import Principal
from graft.knowledge import pgvector
from graft.knowledge.index import ChunkRow, DocumentRow, KnowledgeIndex, Readers, readable_by
from graft.store.sql import SQLStore

pytestmark = pytest.mark.integration

DIMS = 16
NO_WORDS = "zzz-nothing-matches"
"""A query no chunk's words match: the results are the ranking by meaning alone."""


def unit(rng: np.random.Generator, rows: int, dims: int = DIMS) -> np.ndarray:
    vectors = rng.standard_normal((rows, dims)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def doc(source: str, readers: Readers, vectors: np.ndarray) -> tuple[DocumentRow, list[ChunkRow]]:
    row = DocumentRow("handbook", source, source.title(), "text/plain", source, None, readers)
    chunks = [ChunkRow(f"{source} part {i}", source, None, 0, 10) for i in range(len(vectors))]
    return row, chunks


def who(user: str, *, roles: tuple[str, ...] = ("user",)) -> Principal:
    return Principal(user, frozenset(roles), frozenset(), "acme")


EVERYONE = Readers("acme", everyone=True)
BOB_ONLY = Readers("acme", users=frozenset({"bob"}))


@pytest.fixture(scope="module")
def server_url() -> Iterator[str]:
    with pgvector_server() as url:
        yield url


@pytest.fixture
async def index(server_url: str) -> AsyncIterator[KnowledgeIndex]:
    _empty_postgres(server_url)  # drops the extension too: each test creates it again
    store = SQLStore(server_url)
    await store.start()
    built = KnowledgeIndex(store.engine)
    built.start()
    yield built
    await store.close()


def in_memory(index: KnowledgeIndex) -> KnowledgeIndex:
    """The same database ranked by meaning the way SQLite and plain PostgreSQL do."""
    plain = KnowledgeIndex(index.engine)
    assert plain.vectors is False
    return plain


def vec_rows(index: KnowledgeIndex) -> dict[int, int]:
    with index.engine.connect() as conn:
        rows = conn.execute(text("SELECT chunk_id, dims FROM knowledge_vec")).all()
    return {row.chunk_id: row.dims for row in rows}


def chunk_ids(index: KnowledgeIndex) -> set[int]:
    with index.engine.connect() as conn:
        sql = "SELECT id FROM knowledge_chunks WHERE embedding IS NOT NULL"
        return set(conn.execute(text(sql)).scalars())


def hnsw_indexes(index: KnowledgeIndex) -> set[str]:
    with index.engine.connect() as conn:
        sql = "SELECT indexname FROM pg_indexes WHERE indexdef LIKE '%USING hnsw%'"
        return set(conn.execute(text(sql)).scalars())


def hnsw_scans(index: KnowledgeIndex) -> int:
    """How often ``ix_knowledge_vec_hnsw_16`` was scanned (as soon as the server has counted)."""
    sql = "SELECT idx_scan FROM pg_stat_user_indexes WHERE indexrelname = :name"
    deadline = time.monotonic() + 10
    while True:  # a backend reports its counts when it idles, within a second or so
        with index.engine.connect() as conn:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))
            count = int(conn.execute(text(sql), {"name": "ix_knowledge_vec_hnsw_16"}).scalar_one())
        if count or time.monotonic() > deadline:
            return count
        time.sleep(0.2)


def test_the_vector_table_is_made_and_filled_from_the_chunks(index: KnowledgeIndex) -> None:
    assert index.vectors is True
    rng = np.random.default_rng(1)
    index.put(*doc("policy", EVERYONE, vectors := unit(rng, 5)), vectors)
    index.put(*doc("narrow", EVERYONE, small := unit(rng, 2, dims=8)), small)
    index.put(*doc("words-only", EVERYONE, unit(rng, 3)), None)
    expected = vec_rows(index)
    assert set(expected) == chunk_ids(index) and sorted(expected.values()) == [8] * 2 + [16] * 5
    with index.engine.begin() as conn:
        conn.execute(text("DROP TABLE knowledge_vec"))  # as a database from before pgvector
    again = KnowledgeIndex(index.engine)
    again.start()
    assert again.vectors is True and vec_rows(again) == expected
    assert hnsw_indexes(again) == {"ix_knowledge_vec_hnsw_8", "ix_knowledge_vec_hnsw_16"}
    with index.engine.connect() as conn:  # the stored vectors are the chunks' float32 values
        stored = conn.execute(text("SELECT embedding::text FROM knowledge_vec")).scalars().all()
    as_read = sorted(np.array(json.loads(v), dtype=np.float32).tobytes() for v in stored)
    assert as_read == sorted(v.tobytes() for v in [*vectors, *small])


def test_a_corpus_is_copied_in_batches_with_progress(
    index: KnowledgeIndex, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    rng = np.random.default_rng(2)
    for name in ("one", "two", "three"):
        index.put(*doc(name, EVERYONE, vectors := unit(rng, 3)), vectors)
    expected = vec_rows(index)
    with index.engine.begin() as conn:
        conn.execute(text("DROP TABLE knowledge_vec"))
    monkeypatch.setattr(pgvector, "FILL_BATCH", 2)  # 9 chunks: five batches, the last of one
    monkeypatch.setattr(pgvector, "PROGRESS_EVERY", 0.0)  # a line after every batch
    statements: list[str] = []
    record = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, sql, ...)
    event.listen(index.engine, "before_cursor_execute", record)
    try:
        with caplog.at_level(logging.INFO, logger="graft.knowledge.pgvector"):
            again = KnowledgeIndex(index.engine)
            again.start()
    finally:
        event.remove(index.engine, "before_cursor_execute", record)
    assert vec_rows(again) == expected and len(expected) == 9
    inserts = [s for s in statements if s.startswith("INSERT INTO knowledge_vec")]
    assert len(inserts) == 5  # one statement per batch, never the whole corpus at once
    lines = [r.getMessage() for r in caplog.records]
    assert "knowledge: copying 9 chunks' vectors into knowledge_vec (pgvector)" in lines
    progress = [line for line in lines if " of 9 vectors copied" in line]
    assert progress == [
        f"knowledge: {n} of 9 vectors copied into knowledge_vec" for n in (2, 4, 6, 8, 9)
    ]
    assert any(
        line.startswith("knowledge: 9 vectors copied into knowledge_vec in ") for line in lines
    )
    assert "knowledge: building the HNSW index ix_knowledge_vec_hnsw_16" in lines


def _no_full_scan(dbapi_connection: Any, _: object) -> None:
    dbapi_connection.execute("SET enable_seqscan = off")
    dbapi_connection.execute("SET enable_sort = off")  # nor a sort of all the distances
    dbapi_connection.commit()  # else the pool's first rollback undoes it


@pytest.mark.parametrize("hnsw", [False, True], ids=["planner", "hnsw"])
@pytest.mark.parametrize("principal", [who("ann"), who("bob"), who("root", roles=("admin",))])
def test_the_database_ranks_as_memory_does(
    index: KnowledgeIndex, principal: Principal, hnsw: bool
) -> None:
    rng = np.random.default_rng(2)
    for number in range(12):
        vectors = unit(rng, 10)
        index.put(*doc(f"doc{number}", BOB_ONLY if number % 3 else EVERYONE, vectors), vectors)
    plain = in_memory(index)
    if hnsw:  # 120 vectors, fewer than HNSW's candidate list: its answer is the exact one
        with index.engine.begin() as conn:
            conn.execute(text("ANALYZE"))
        index.engine.dispose()
        event.listen(index.engine, "connect", _no_full_scan)
    for query in unit(rng, 5):
        by_sql = index.search(principal, NO_WORDS, query, k=60)
        by_memory = plain.search(principal, NO_WORDS, query, k=60)
        assert len(by_sql) == (40 if principal.user_id == "ann" else 50)
        assert [h.chunk_id for h in by_sql] == [h.chunk_id for h in by_memory]
        assert [h.score for h in by_sql] == [h.score for h in by_memory]
    if hnsw:  # the searches above went through the index (the server's own count says so)
        assert hnsw_scans(index) >= 5


def test_the_nearest_chunks_stay_hidden_from_who_may_not_read_them(
    index: KnowledgeIndex,
) -> None:
    rng = np.random.default_rng(3)
    query = unit(rng, 1)[0]
    near = np.stack([query + 0.01 * noise for noise in unit(rng, 300)])
    near /= np.linalg.norm(near, axis=1, keepdims=True)
    index.put(*doc("secret", BOB_ONLY, near), near)
    far = -unit(rng, 5)  # the readable ones point away: they rank after every secret chunk
    index.put(*doc("public", EVERYONE, far), far)
    ann = who("ann")
    with index.engine.connect() as conn:  # make the planner take the HNSW index
        conn.execute(text("ANALYZE"))
        conn.execute(text("SET LOCAL enable_seqscan = off"))
        select = pgvector.query(query, readable_by(ann), 50)
        compiled = select.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True})
        plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {compiled}").scalars())
        assert "ix_knowledge_vec_hnsw_16" in plan, plan
        ranked = pgvector.rank(conn, query, readable_by(ann), 50)
    public = {h.chunk_id for h in index.search(ann, NO_WORDS, query, k=50)}
    assert len(ranked) == 5 and set(ranked) == public  # the filtered scan went on past 300
    ann_hits = index.search(ann, "secret part", query, k=50)
    assert {h.source for h in ann_hits} == {"public"}
    bob_hits = index.search(who("bob"), NO_WORDS, query, k=5)
    assert {h.source for h in bob_hits} == {"secret"}


def test_replacing_and_removing_keep_the_vector_table_in_step(index: KnowledgeIndex) -> None:
    rng = np.random.default_rng(4)
    index.put(*doc("policy", EVERYONE, first := unit(rng, 4)), first)
    index.put(*doc("other", EVERYONE, other := unit(rng, 2)), other)
    old = set(vec_rows(index))
    index.put(*doc("policy", EVERYONE, second := unit(rng, 3)), second)
    assert set(vec_rows(index)) == chunk_ids(index) and len(old & set(vec_rows(index))) == 2
    hits = index.search(who("ann"), NO_WORDS, second[0], k=1)
    assert hits[0].source == "policy" and hits[0].text == "policy part 0"
    assert index.remove("acme", "handbook", ["policy"]) == 1
    assert set(vec_rows(index)) == chunk_ids(index) and len(vec_rows(index)) == 2
    root = who("root", roles=("admin",))
    [other_doc] = index.documents(root, "handbook")
    assert index.delete(root, other_doc["id"]) is not None
    assert vec_rows(index) == {}
    assert index.search(root, NO_WORDS, other[0]) == []


def test_vectors_of_another_dimension_are_left_to_the_words(index: KnowledgeIndex) -> None:
    rng = np.random.default_rng(5)
    index.put(*doc("wide", EVERYONE, wide := unit(rng, 4)), wide)
    index.put(*doc("narrow", EVERYONE, narrow := unit(rng, 4, dims=8)), narrow)
    ann = who("ann")
    assert {h.source for h in index.search(ann, NO_WORDS, wide[0], k=20)} == {"wide"}
    assert {h.source for h in index.search(ann, NO_WORDS, narrow[0], k=20)} == {"narrow"}
    assert index.search(ann, NO_WORDS, unit(rng, 1, dims=3)[0]) == []
    by_words = index.search(ann, "narrow", unit(rng, 1, dims=3)[0], k=20)
    assert {h.source for h in by_words} == {"narrow"}


@pytest.fixture
async def plain_postgres() -> AsyncIterator[KnowledgeIndex]:
    with fresh_database("graft_novector") as url:
        store = SQLStore(url)
        await store.start()
        try:
            yield KnowledgeIndex(store.engine)
        finally:
            await store.close()


def test_without_the_extension_meaning_is_ranked_in_memory(
    plain_postgres: KnowledgeIndex, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="graft.knowledge.pgvector"):
        plain_postgres.start()
    assert plain_postgres.vectors is False
    [record] = [r for r in caplog.records if r.name == "graft.knowledge.pgvector"]
    assert record.levelno == logging.WARNING and "ranked by meaning in memory" in record.message
    rng = np.random.default_rng(6)
    plain_postgres.put(*doc("policy", EVERYONE, vectors := unit(rng, 6)), vectors)
    with plain_postgres.engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('knowledge_vec')")).scalar() is None
    order = np.argsort(-(vectors @ vectors[2]))
    hits = plain_postgres.search(who("ann"), NO_WORDS, vectors[2], k=6)
    assert [h.text for h in hits] == [f"policy part {i}" for i in order]


async def test_without_the_right_to_create_it_meaning_is_ranked_in_memory(
    server_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    admin = create_engine(
        make_url(server_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS graft_app WITH (FORCE)"))
        conn.execute(text("DROP ROLE IF EXISTS app"))
        conn.execute(text("CREATE ROLE app LOGIN"))  # no superuser: pgvector is not trusted
        conn.execute(text("CREATE DATABASE graft_app OWNER app"))
    admin.dispose()
    url = make_url(server_url).set(username="app", database="graft_app")
    store = SQLStore(url.render_as_string(hide_password=False))
    await store.start()
    try:
        plain = KnowledgeIndex(store.engine)
        with caplog.at_level(logging.INFO, logger="graft.knowledge.pgvector"):
            plain.start()
        assert plain.vectors is False
        [record] = [r for r in caplog.records if r.name == "graft.knowledge.pgvector"]
        assert "permission denied" in record.message and "in memory" in record.message
        rng = np.random.default_rng(7)
        plain.put(*doc("policy", EVERYONE, vectors := unit(rng, 4)), vectors)
        hits = plain.search(who("ann"), NO_WORDS, vectors[1], k=1)
        assert [h.text for h in hits] == ["policy part 1"]
    finally:
        await store.close()

"""The document index on the store's real database (SQLite, PostgreSQL): search and who sees what.

Every chunk gets the same embedding, so the vector ranking would return every chunk it is
given: a document a principal may not read can only stay out of the results if the access
filter runs before the ranking, in the query.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import text
from tests.store.conftest import POSTGRES, _url_for, postgres_database  # noqa: F401

from graft.context import Principal
from graft.knowledge.index import (
    ChunkRow,
    DocumentRow,
    KnowledgeIndex,
    Readers,
    fts_query,
    fts_text,
)
from graft.store.sql import SQLStore

VECTOR = np.ones(4, dtype=np.float32) / 2.0


def doc(
    source: str, readers: Readers, *texts: str, collection: str = "handbook"
) -> tuple[DocumentRow, list[ChunkRow], np.ndarray]:
    row = DocumentRow(collection, source, source.title(), "text/markdown", source, None, readers)
    chunks = [ChunkRow(t, f"{source} > part {i}", i + 1, 0, len(t)) for i, t in enumerate(texts)]
    return row, chunks, np.stack([VECTOR] * len(texts))


@pytest.fixture(params=["sqlite", POSTGRES])
async def index(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[KnowledgeIndex]:
    store = SQLStore(_url_for(request.param, tmp_path, request))
    await store.start()
    built = KnowledgeIndex(store.engine)
    built.start()
    acme = "acme"
    for row, chunks, vectors in [
        doc(
            "policy",
            Readers(acme, everyone=True),
            "Travel policy: book economy class.",
            "员工手册：病假需要提交医生证明。",
        ),
        doc("salaries", Readers(acme, groups=frozenset({"hr"})), "Salary bands: policy for pay."),
        doc("bobs-notes", Readers(acme, users=frozenset({"bob"})), "Bob's policy notes."),
        doc("globex-policy", Readers("globex", everyone=True), "Globex travel policy."),
        doc("board", Readers(acme, everyone=True), "Board policy minutes.", collection="board"),
    ]:
        built.put(row, chunks, vectors)
    yield built
    await store.close()


def who(
    user: str,
    *,
    tenant: str = "acme",
    roles: tuple[str, ...] = ("user",),
    groups: tuple[str, ...] = (),
) -> Principal:
    return Principal(user, frozenset(roles), frozenset(groups), tenant)


def sources(hits: list) -> set[str]:
    return {hit.source for hit in hits}


@pytest.mark.parametrize(
    ("principal", "expected"),
    [
        (who("ann"), {"policy", "board"}),
        (who("hana", groups=("hr",)), {"policy", "salaries", "board"}),
        (who("bob"), {"policy", "bobs-notes", "board"}),
        (who("root", roles=("admin",)), {"policy", "salaries", "bobs-notes", "board"}),
        (who("gus", tenant="globex"), {"globex-policy"}),
        (who("eve", tenant="initech", roles=("admin",)), set()),
    ],
)
async def test_a_principal_finds_only_what_it_may_read(
    index: KnowledgeIndex, principal: Principal, expected: set[str]
) -> None:
    by_words = index.search(principal, "policy", None, k=20)
    by_both = index.search(principal, "policy", VECTOR, k=20)
    by_meaning = index.search(principal, "zzz-nothing-matches", VECTOR, k=20)
    assert sources(by_words) == sources(by_both) == expected
    assert sources(by_meaning) == expected  # the vectors alone: still filtered
    assert set(index.collections(principal)) == {h.collection for h in by_both}


async def test_collections_narrow_the_search(index: KnowledgeIndex) -> None:
    ann = who("ann")
    assert sources(index.search(ann, "policy", VECTOR, collections=["board"])) == {"board"}
    assert index.search(ann, "policy", VECTOR, collections=[]) == []


async def test_chinese_is_found_without_spaces(index: KnowledgeIndex) -> None:
    ann = who("ann")
    for query in ("病假", "员工手册", "医生证明需要吗"):
        [hit, *_] = index.search(ann, query, None)
        assert hit.text.startswith("员工手册") and hit.page == 2, query
    assert index.search(ann, "病", None)[0].text.startswith("员工手册")


async def test_a_new_version_replaces_the_old_and_removal_removes(index: KnowledgeIndex) -> None:
    ann = who("ann")
    row, chunks, vectors = doc("policy", Readers("acme", everyone=True), "Remote work rules.")
    index.put(row, chunks, vectors)
    assert index.search(ann, "economy", None) == []  # the old chunk left the FTS index too
    assert sources(index.search(ann, "remote", None)) == {"policy"}
    assert index.content_hashes("acme", "handbook")["policy"] == "policy"
    assert index.remove("acme", "handbook", ["policy", "absent"]) == 1
    assert index.search(ann, "remote", VECTOR, collections=["handbook"]) == []


def test_cjk_runs_are_indexed_as_characters_and_bigrams() -> None:
    assert fts_text("员工手册 v2") == " 员 工 手 册 员工 工手 手册  v2"
    assert fts_query("病假 policy?") == '"病假" OR "policy"'
    assert fts_query("病") == '"病"'
    assert fts_query("?!") is None


def test_a_collections_documents_are_listed_as_the_principal_may_read_them(
    index: KnowledgeIndex,
) -> None:
    listed = index.documents(who("ann"), "handbook")
    assert [(d["title"], d["source"], d["chunks"]) for d in listed] == [("Policy", "policy", 2)]
    assert {"id", "collection", "media_type", "modified_at", "updated_at"} <= set(listed[0])
    hr = index.documents(who("hana", groups=("hr",)), "handbook")
    assert [d["source"] for d in hr] == ["policy", "salaries"]
    admin = index.documents(who("root", roles=("admin",)), "handbook")
    assert [d["source"] for d in admin] == ["bobs-notes", "policy", "salaries"]  # by title
    assert index.documents(who("eve", tenant="globex", roles=("admin",)), "board") == []
    summary = index.summary(who("ann"), listed[0]["id"])
    assert summary == listed[0]
    assert index.summary(who("ann"), admin[2]["id"]) is None  # salaries: hr only


def test_a_document_is_deleted_only_by_one_who_may_read_it(index: KnowledgeIndex) -> None:
    root = who("root", roles=("admin",))
    salaries = next(d for d in index.documents(root, "handbook") if d["source"] == "salaries")
    assert index.delete(who("ann"), salaries["id"]) is None
    assert index.delete(who("eve", tenant="globex", roles=("admin",)), salaries["id"]) is None
    deleted = index.delete(who("hana", groups=("hr",)), salaries["id"])
    assert deleted is not None and deleted["source"] == "salaries"
    assert index.summary(root, salaries["id"]) is None
    assert "salaries" not in sources(index.search(root, "salary bands", VECTOR))
    assert index.content_hashes("acme", "handbook").keys() == {"policy", "bobs-notes"}
    assert index.delete(root, salaries["id"]) is None


@pytest.mark.integration
async def test_workers_starting_together_make_the_full_text_table_once(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    # Several graft processes on one PostgreSQL start their indexes at the same moment: each
    # finds the table missing, and without a lock all but one failed to create it.
    store = SQLStore(_url_for("postgresql", tmp_path, request))
    await store.start()
    try:
        starts = 6
        barrier = threading.Barrier(starts)
        failures: list[BaseException] = []

        def start() -> None:
            index = KnowledgeIndex(store.engine)
            barrier.wait(10)
            try:
                index.start()
            except BaseException as exc:  # noqa: BLE001 - reported below
                failures.append(exc)

        threads = [threading.Thread(target=start) for _ in range(starts)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert failures == []
        with store.engine.connect() as conn:
            assert conn.execute(text("SELECT to_regclass('knowledge_tsv')::text")).scalar()
    finally:
        await store.close()

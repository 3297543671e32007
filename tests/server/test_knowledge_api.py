"""``/v1/knowledge`` through a real server on 127.0.0.1, as users with their own keys.

The store is a real SQLite file; the documents are ingested with the offline e5 embedder,
one readable by everyone in the tenant and one by the ``hr`` group only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

from graft.config import Settings
from graft.context import Principal
from graft.embeddings import embedder_for
from graft.identity import issue_key
from graft.knowledge.index import KnowledgeIndex, Readers
from graft.knowledge.ingest import Ingestion
from graft.runtime import Graft
from graft.store.sql import SQLStore

OPERATOR = Principal("cli:test", frozenset({"admin", "builder", "user"}))


async def test_users_search_and_open_only_what_they_may_read(
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    live_server: Callable[[Graft], Any],
) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "handbook.md").write_text("# Handbook\n\nThe office opens at nine.\n")
    (docs / "pay.md").write_text("# Pay\n\nSalary bands: engineers 80k to 120k.\n")
    settings = settings_factory(database_url=f"sqlite:///{tmp_path / 'graft.db'}")
    graft = Graft(settings, entry_points=False)
    await graft.start()
    try:
        store = graft.store
        assert isinstance(store, SQLStore)
        keys = {}
        for name, groups in (("ann", []), ("hana", ["hr"])):
            user = await store.create_user(tenant="acme", name=name, roles=["user"], groups=groups)
            keys[name], _ = await issue_key(store, user, creator=OPERATOR, name="k")
        index = KnowledgeIndex(store.engine)
        index.start()
        embedder = embedder_for(settings)
        await Ingestion(
            index, embedder, collection="hb", readers=Readers("acme", everyone=True)
        ).run([str(docs / "handbook.md")])
        await Ingestion(
            index, embedder, collection="hb", readers=Readers("acme", groups=frozenset({"hr"}))
        ).run([str(docs / "pay.md")])
        url = live_server(graft).url

        def get(who: str, path: str, **params: Any) -> httpx.Response:
            headers = {"authorization": f"Bearer {keys[who]}"}
            return httpx.get(f"{url}{path}", headers=headers, params=params)

        hana = get("hana", "/v1/knowledge/search", q="salary bands").json()["data"]
        ann = get("ann", "/v1/knowledge/search", q="salary bands").json()["data"]
        [pay] = [c for c in hana if "Salary" in c["text"]]
        assert not any("Salary" in c["text"] for c in ann) and ann
        assert (
            pay["link"] == f"/v1/knowledge/documents/{pay['document_id']}#chunk-{pay['chunk_id']}"
        )
        opened = get("hana", f"/v1/knowledge/documents/{pay['document_id']}")
        assert opened.status_code == 200 and opened.json()["title"] == "Pay"
        assert "80k" in opened.json()["chunks"][0]["text"]
        hidden = get("ann", f"/v1/knowledge/documents/{pay['document_id']}")
        missing = get("ann", "/v1/knowledge/documents/doc_nothing")
        assert hidden.status_code == missing.status_code == 404
        assert hidden.json()["error"]["message"] == f"no document {pay['document_id']!r}"
        assert get("ann", "/v1/knowledge/collections").json()["data"] == [
            {"name": "hb", "documents": 1}
        ]
        assert get("hana", "/v1/knowledge/collections").json()["data"] == [
            {"name": "hb", "documents": 2}
        ]
    finally:
        await graft.aclose()

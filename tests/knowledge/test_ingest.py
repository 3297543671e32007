"""Ingestion into the store's SQLite file, the search_knowledge tool in a turn, and the CLI.

Files are real (Markdown, text, a broken PDF) in a temporary folder; URLs are served by a
real HTTP server on 127.0.0.1, which the network guard must refuse unless allowed. The
embedder is the real offline e5 model where meaning matters, a small deterministic one
elsewhere to keep the tests quick.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

from graft.audit import tail
from graft.cli import cli
from graft.config import Settings
from graft.context import Principal
from graft.embeddings import E5Embedder, embedder_for
from graft.knowledge.index import KnowledgeIndex, Readers
from graft.knowledge.ingest import Ingestion
from graft.netguard import NetworkPolicy, audit_blocked
from graft.runtime import Graft
from graft.store.sql import SQLStore
from graft.testing import FakeModel, call

HANDBOOK = """# Employee handbook

## Leave

### Sick leave
Employees may take up to 10 days of paid sick leave per year.

### 年假
员工每年享有十五天带薪年假。病假超过三天需要提交医生证明。

## Travel
Book economy class for flights under six hours.
"""


class Letters:
    """A deterministic embedder: letter counts, normalised (enough to rank by overlap)."""

    id = "test:letters"
    dimensions = 26

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([self._one(t) for t in texts]) if texts else np.zeros((0, 26))

    async def embed_query(self, text: str) -> np.ndarray:
        return self._one(text)

    def _one(self, text: str) -> np.ndarray:
        vector = np.zeros(26, dtype=np.float32)
        for ch in text.lower():
            if "a" <= ch <= "z":
                vector[ord(ch) - 97] += 1
        norm = float(np.linalg.norm(vector))
        return vector / norm if norm else vector + 1 / np.sqrt(26)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SQLStore]:
    opened = SQLStore(f"sqlite:///{tmp_path / 'graft.db'}")
    await opened.start()
    yield opened
    await opened.close()


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "handbook.md").write_text(HANDBOOK, encoding="utf-8")
    (docs / "salaries.txt").write_text("Salary bands: engineers 80k to 120k.\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7 not really a pdf")
    (docs / ".hidden.md").write_text("# never ingested\n")
    return docs


def index_of(store: SQLStore) -> KnowledgeIndex:
    index = KnowledgeIndex(store.engine)
    index.start()
    return index


async def test_a_folder_is_ingested_incrementally_and_a_broken_file_is_only_reported(
    store: SQLStore, folder: Path
) -> None:
    index = index_of(store)
    run = Ingestion(index, Letters(), collection="hb", readers=Readers("acme", everyone=True))
    seen: list[str] = []
    first = await run.run([str(folder)], progress=seen.append)
    assert sorted(Path(s).name for s in first.added) == ["handbook.md", "salaries.txt"]
    assert [Path(s).name for s in first.failed] == ["broken.pdf"]
    assert len(seen) == 3 and first.chunks >= 3

    (folder / "salaries.txt").write_text("Salary bands: engineers 90k to 130k.\n")
    (folder / "handbook.md").unlink()
    second = await run.run([str(folder)])
    assert [Path(s).name for s in second.updated] == ["salaries.txt"]
    assert [Path(s).name for s in second.removed] == ["handbook.md"]
    assert second.unchanged == [] and second.added == []
    ann = Principal("ann", frozenset({"user"}), tenant="acme")
    hits = index.search(ann, "salary", None)
    assert [h.text.count("90k") for h in hits] == [1]
    assert index.search(ann, "economy", None) == []  # the removed file's chunks are gone


async def test_chinese_and_english_questions_find_their_passages_with_e5(
    store: SQLStore, folder: Path
) -> None:
    index = index_of(store)
    embedder = E5Embedder()
    run = Ingestion(index, embedder, collection="hb", readers=Readers("acme", everyone=True))
    await run.run([str(folder / "handbook.md")])
    ann = Principal("ann", frozenset({"user"}), tenant="acme")
    for question, expected in [
        ("病假需要什么证明？", "医生证明"),
        ("how many days of sick leave do I get", "10 days"),
        ("flight class for short trips", "economy"),
    ]:
        [best, *_] = index.search(ann, question, await embedder.embed_query(question))
        assert expected in best.text, question


class Pages(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:  # noqa: N802 (the standard library's name)
        type(self).hits += 1
        body = b"<html><head><title>Wiki</title></head><body><h1>VPN</h1><p>Use the VPN.</p>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def wiki() -> Iterator[str]:
    Pages.hits = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), Pages)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/vpn"
    server.shutdown()
    server.server_close()


async def test_urls_go_through_the_network_guard(store: SQLStore, wiki: str) -> None:
    index = index_of(store)
    readers = Readers("acme", everyone=True)
    port = int(wiki.split(":")[2].split("/")[0])
    refused = Ingestion(
        index,
        Letters(),
        collection="wiki",
        readers=readers,
        policy=NetworkPolicy(ports={80, 443, port}),
        on_blocked=audit_blocked(store, actor="cli", service="ingest"),
    )
    report = await refused.run([wiki])
    assert "loopback" in report.failed[wiki] and Pages.hits == 0
    [record] = [r for r in await tail(store) if r.action == "network.blocked"]
    assert record.target == "127.0.0.1"
    allowed = Ingestion(
        index,
        Letters(),
        collection="wiki",
        readers=readers,
        policy=NetworkPolicy(ports={80, 443, port}, allow_hosts=["127.0.0.1"]),
    )
    report = await allowed.run([wiki])
    assert report.added == [wiki] and Pages.hits == 1
    ann = Principal("ann", frozenset({"user"}), tenant="acme")
    [hit] = index.search(ann, "vpn", None, collections=["wiki"])
    assert hit.source == wiki and hit.title == "Wiki"


async def test_search_knowledge_in_a_turn_cites_only_what_the_user_may_read(
    tmp_path: Path, folder: Path, settings_factory: Callable[..., Settings]
) -> None:
    settings = settings_factory(
        database_url=f"sqlite:///{tmp_path / 'turn.db'}",
        assistants={"helpdesk": {"collections": ["hb"]}},
    )
    model = FakeModel(
        [call("search_knowledge", query="salary bands")],
        "See [1].",
        [call("search_knowledge", query="salary bands")],
        "See [1].",
    )
    graft = Graft(settings, entry_points=False, models={"test:fake": model})
    graft.settings.assistants["helpdesk"].model = "test:fake"
    async with graft:
        store = graft.store
        assert isinstance(store, SQLStore)
        index = index_of(store)
        embedder = embedder_for(graft.settings)  # the one the tool searches with: e5
        everyone = Readers("acme", everyone=True)
        public = Ingestion(index, embedder, collection="hb", readers=everyone)
        await public.run([str(folder / "handbook.md")])
        hr_only = Readers("acme", groups=frozenset({"hr"}))
        await Ingestion(index, embedder, collection="hb", readers=hr_only).run(
            [str(folder / "salaries.txt")]
        )
        results = {}
        for user, groups in (("hana", {"hr"}), ("ann", set())):
            principal = Principal(user, frozenset({"user"}), frozenset(groups), "acme")
            request = _request("helpdesk", "What are the salary bands?")
            events = [e async for e in graft.run_turn(request, principal)]
            [result] = [e for e in events if getattr(e, "kind", "") == "tool_result"]
            results[user] = result
    hana = results["hana"].data["citations"]
    assert any("Salary bands" in c["text"] for c in hana)
    ann = results["ann"].data["citations"]
    assert ann and not any("salar" in json.dumps(c).lower() for c in ann)
    assert "Salary" not in results["ann"].content


def _request(assistant: str, text: str) -> Any:
    from graft.messages import Message
    from graft.turn import TurnRequest

    return TurnRequest(assistant=assistant, messages=[Message("user", text)], stream=True)


def test_the_cli_ingests_with_a_progress_bar_and_searches(
    tmp_path: Path, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAFT_HOME", str(tmp_path / "home"))
    runner = CliRunner()
    first = runner.invoke(cli, ["ingest", str(folder), "--collection", "hb"])
    assert first.exit_code == 1  # broken.pdf failed; the others are in
    assert "2 added, 0 updated, 0 unchanged, 0 removed, 1 failed" in first.output
    assert "failed:" in first.output and "broken.pdf" in first.output
    again = runner.invoke(cli, ["ingest", str(folder / "handbook.md"), "-c", "hb"])
    assert again.exit_code == 0 and "1 unchanged" in again.output
    found = runner.invoke(cli, ["knowledge", "search", "年假 有几天"])
    assert found.exit_code == 0 and "handbook.md" in found.output
    listed = runner.invoke(cli, ["knowledge", "collections"])
    assert "hb" in listed.output and "2 documents" in listed.output

"""Two graft processes on one PostgreSQL with pgvector: a document one ingests, the other finds.

The server is the pgvector build of ``tests/pgvector_server.py`` (PostgreSQL 18 + pgvector
0.8), Redis the machine's. Worker A takes an upload; worker B answers a search whose words
the document does not share, which only the ranking by meaning can find, and that ranking
runs in the database: the chunks' vectors are in ``knowledge_vec``, and neither worker says
it fell back to ranking in memory.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
from tests.pgvector_server import pgvector_server
from tests.scale.conftest import REDIS_URL, graft_processes

from graft.config import load_settings
from graft.crypto import KeySource
from graft.default_plugins.api_key_auth import hash_api_key

HANDBOOK = (
    "# Working from home\n\n"
    "Employees may work from home two days a week, agreed with their manager in advance.\n"
)


@pytest.fixture(scope="module")
def workers(
    redis_up: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[list[str], dict[str, str], str]]:
    """Two ``graft serve`` processes on one pgvector server; their URLs, keys and the DB URL."""
    with pgvector_server() as url:
        home = tmp_path_factory.mktemp("pgvector-workers")
        keys = {role: f"sk-{role}-{secrets.token_hex(8)}" for role in ("builder", "user")}
        entries = "".join(
            f'[[auth.api_keys]]\nsha256 = "{hash_api_key(key)}"\nuser = "{role}-1"\n'
            f'roles = ["{role}"]\n\n'
            for role, key in keys.items()
        )
        config = home / "graft.toml"
        config.write_text(
            f'model = "scripted:one"\nhome = "{home}"\ndatabase_url = "{url}"\n\n'
            f'[limits]\nredis_url = "{REDIS_URL}"\n\n' + entries,
            encoding="utf-8",
        )
        source = KeySource.from_settings(load_settings(config))
        assert source is not None
        source.load()  # one data key file for both processes
        env = {k: v for k, v in os.environ.items() if not k.startswith("GRAFT_")}
        with graft_processes(config, env) as launch:
            yield launch([], []), keys, url
        logs = "".join(path.read_text(errors="replace") for path in home.glob("serve-*.log"))
        assert "pgvector is not available" not in logs


def upload(url: str, key: str, name: str, text: str) -> None:
    """Upload ``text`` as the Markdown file ``name`` into the handbook collection."""
    uploaded = httpx.post(
        f"{url}/v1/knowledge/collections/handbook/documents",
        headers={"Authorization": f"Bearer {key}"},
        files=[("file", (name, text.encode(), "text/markdown"))],
        timeout=120,
    )
    assert uploaded.status_code == 200, uploaded.text


def search(url: str, key: str, question: str) -> list[dict[str, Any]]:
    """The passages a search for ``question`` finds, best first."""
    found = httpx.get(
        f"{url}/v1/knowledge/search",
        params={"q": question},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert found.status_code == 200, found.text
    hits: list[dict[str, Any]] = found.json()["data"]
    return hits


def test_a_document_ingested_on_a_is_found_by_meaning_on_b(
    workers: tuple[list[str], dict[str, str], str],
) -> None:
    (a, b), keys, url = workers
    upload(a, keys["builder"], "remote.md", HANDBOOK)
    with psycopg.connect(url) as conn:
        stored = conn.execute("SELECT count(*), min(dims) FROM knowledge_vec").fetchone()
        chunks = conn.execute("SELECT count(*) FROM knowledge_chunks").fetchone()
    assert stored is not None and chunks is not None
    assert stored[0] == chunks[0] >= 1
    assert stored[1] == 384  # e5-small's vectors, as pgvector keeps them

    # No word of the question is in the document: only the ranking by meaning finds it.
    hits = search(b, keys["user"], "remote office policy for staff")
    assert [hit["source"] for hit in hits] == ["remote.md"], hits
    assert "two days a week" in hits[0]["text"]


def test_b_ranks_the_document_closer_in_meaning_first(
    workers: tuple[list[str], dict[str, str], str],
) -> None:
    # A second document through A; again no word in common with the question.
    (a, b), keys, _ = workers
    other = "# Parking\n\nThe car park opens at seven; spaces are not reserved.\n"
    upload(a, keys["builder"], "parking.md", other)
    assert search(b, keys["user"], "where can I leave my vehicle")[0]["source"] == "parking.md"

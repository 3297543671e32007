"""Document uploads and deletions over a real server, into a real SQLite store.

Builders upload real files (Markdown, text, a Word document made with python-docx) as
``multipart/form-data``; users of the tenant then find them with the offline e5 embedder.
The upload route takes bodies over the global 4 MiB limit, up to its own, which every other
route still refuses.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import docx
import httpx
import pytest

from graft.config import Settings
from graft.context import Principal
from graft.identity import issue_key
from graft.runtime import Graft
from graft.testing import FakeModel

OPERATOR = Principal("cli:test", frozenset({"admin", "builder", "user"}))
UPLOAD_LIMIT = 6 * 1024 * 1024
MiB = 1024 * 1024


@dataclass
class Site:
    graft: Graft
    keys: dict[str, str]
    url: str

    def call(self, who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {self.keys[who]}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.url}{path}", headers=headers, timeout=60, **kwargs)

    def upload(self, who: str, collection: str, *files: tuple[str, bytes]) -> httpx.Response:
        parts = [("file", (name, data)) for name, data in files]
        return self.call(
            who, "POST", f"/v1/knowledge/collections/{collection}/documents", files=parts
        )

    def search(self, who: str, q: str) -> list[dict[str, Any]]:
        found = self.call(who, "GET", "/v1/knowledge/search", params={"q": q})
        assert found.status_code == 200, found.text
        data: list[dict[str, Any]] = found.json()["data"]
        return data

    def audit(self) -> list[Any]:
        return anyio.run(self.graft.store.list_audit, None, 1000)  # type: ignore[arg-type]


@pytest.fixture
async def site(
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    live_server: Callable[[Graft], Any],
) -> AsyncIterator[Site]:
    """ann (user), bea (builder) and root (admin) in acme; eve (admin) in globex."""
    settings = settings_factory(
        database_url=f"sqlite:///{tmp_path / 'graft.db'}",
        knowledge={"max_upload_bytes": UPLOAD_LIMIT},
    )
    graft = Graft(settings, entry_points=False)
    await graft.start()
    keys = {}
    for tenant, name, roles in (
        ("acme", "ann", ["user"]),
        ("acme", "bea", ["builder", "user"]),
        ("acme", "root", ["admin", "user"]),
        ("globex", "eve", ["admin", "user"]),
    ):
        user = await graft.store.create_user(tenant=tenant, name=name, roles=roles, groups=[])
        keys[name], _ = await issue_key(graft.store, user, creator=OPERATOR, name="k")
    try:
        yield Site(graft, keys, live_server(graft).url)
    finally:
        await graft.aclose()


def word_document() -> bytes:
    document = docx.Document()
    document.add_heading("Travel policy", level=0)
    document.add_paragraph("Trains are booked in second class; flights need approval.")
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


HANDBOOK = b"# Handbook\n\nThe office opens at nine and the canteen serves lunch at noon.\n"


def test_a_builder_uploads_files_and_the_tenant_finds_them(site: Site) -> None:
    answer = site.upload(
        "bea",
        "handbook",
        ("handbook.md", HANDBOOK),
        ("parking.txt", "Parking spaces are free on Fridays. 停车场周五免费。".encode()),
        ("travel.docx", word_document()),
        ("setup.exe", b"MZ\x90\x00" + b"\x00" * 64),
        ("empty.txt", b""),
        ("broken.docx", b"PK\x03\x04 not really a zip"),
    )
    assert answer.status_code == 200, answer.text
    results = answer.json()["data"]
    assert [(r["filename"], r["status"]) for r in results] == [
        ("handbook.md", "added"),
        ("parking.txt", "added"),
        ("travel.docx", "added"),
        ("setup.exe", "failed"),
        ("empty.txt", "failed"),
        ("broken.docx", "failed"),
    ]
    assert all(r["chunks"] >= 1 and r["document_id"].startswith("doc") for r in results[:3])
    assert results[3]["error"].startswith("'setup.exe' has media type")  # httpx's guess
    assert "which is not supported; supported: .pdf, .docx" in results[3]["error"]
    assert results[4]["error"] == "'empty.txt' is empty"
    assert "broken.docx" in results[5]["error"] and "document_id" not in results[5]

    # Every user of the tenant reads them; another tenant does not.
    [hit] = [h for h in site.search("ann", "when does the office open") if h["title"] == "Handbook"]
    assert hit["collection"] == "handbook"
    assert any("Trains" in h["text"] for h in site.search("ann", "train class for travel"))
    assert site.search("eve", "office opens at nine") == []
    listed = site.call("ann", "GET", "/v1/knowledge/collections/handbook/documents").json()
    assert [(d["title"], d["source"], d["chunks"]) for d in listed["data"]] == [
        ("Handbook", "handbook.md", results[0]["chunks"]),
        ("parking", "parking.txt", results[1]["chunks"]),
        ("Travel policy", "travel.docx", results[2]["chunks"]),
    ]
    assert {"id", "updated_at"} <= set(listed["data"][0])
    theirs = site.call("eve", "GET", "/v1/knowledge/collections/handbook/documents").json()
    assert theirs["data"] == []

    # Again: unchanged by its hash; a changed file replaces its document.
    again = site.upload(
        "bea",
        "handbook",
        ("handbook.md", HANDBOOK),
        ("parking.txt", b"Parking is free every day now."),
    )
    assert [r["status"] for r in again.json()["data"]] == ["unchanged", "updated"]
    assert not any("Fridays" in h["text"] for h in site.search("ann", "parking Fridays"))

    uploads = [r for r in site.audit() if r.action == "document.upload"]
    assert [(r.actor, r.tenant, r.outcome) for r in uploads][:1] == [("bea", "acme", "ok")]
    assert len(uploads) == 8
    details = json.loads(uploads[3].details)
    assert details["name"] == "setup.exe" and uploads[3].outcome == "error"
    assert "Parking" not in "".join(r.details for r in uploads)  # names, never content


def test_only_builders_and_admins_upload_and_delete(site: Site) -> None:
    refused = site.upload("ann", "handbook", ("handbook.md", HANDBOOK))
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"]["message"] == "only builders and admins may upload documents"
    [added] = site.upload("root", "handbook", ("handbook.md", HANDBOOK)).json()["data"]
    assert added["status"] == "added"
    document = f"/v1/knowledge/documents/{added['document_id']}"
    assert site.call("ann", "DELETE", document).status_code == 403
    # Another tenant's admin: as if it did not exist, like the read routes.
    for method in ("GET", "DELETE"):
        other = site.call("eve", method, document)
        assert other.status_code == 404 and other.json()["error"]["code"] == "not_found"
    assert site.call("ann", "GET", document).status_code == 200


def test_deleting_a_document_removes_it_from_search(site: Site) -> None:
    [added] = site.upload("bea", "handbook", ("handbook.md", HANDBOOK)).json()["data"]
    assert site.search("ann", "office opens at nine")
    document = f"/v1/knowledge/documents/{added['document_id']}"
    deleted = site.call("bea", "DELETE", document)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {
        "object": "document.deleted",
        "id": added["document_id"],
        "deleted": True,
    }
    assert site.search("ann", "office opens at nine") == []
    assert site.call("ann", "GET", document).status_code == 404
    assert site.call("bea", "DELETE", document).status_code == 404
    listed = site.call("bea", "GET", "/v1/knowledge/collections/handbook/documents")
    assert listed.json()["data"] == []
    [record] = [r for r in site.audit() if r.action == "document.delete"]
    assert (record.actor, record.target) == ("bea", added["document_id"])
    assert json.loads(record.details) == {"collection": "handbook", "name": "handbook.md"}


def test_an_upload_may_not_replace_a_document_the_builder_may_not_read(site: Site) -> None:
    from graft.embeddings import embedder_for
    from graft.knowledge.index import Readers, open_index
    from graft.knowledge.ingest import Ingestion, Upload

    async def hr_only() -> None:
        index = await open_index(site.graft.store)
        assert index is not None
        ingestion = Ingestion(
            index,
            embedder_for(site.graft.settings),
            collection="handbook",
            readers=Readers("acme", groups=frozenset({"hr"})),
        )
        [outcome] = await ingestion.ingest_bytes([Upload("pay.md", b"# Pay\n\nBands.\n")])
        assert outcome.status == "added"

    anyio.run(hr_only)
    answer = site.upload(
        "bea",
        "handbook",
        ("pay.md", b"# Pay\n\nNothing to see.\n"),
        ("pay.md", HANDBOOK),
        ("../../etc/passwd", b"root:x:0:0\n"),
    )
    assert [(r["filename"], r["status"]) for r in answer.json()["data"]] == [
        ("pay.md", "failed"),
        ("pay.md", "failed"),
        ("passwd", "added"),
    ]
    assert "you may not read" in answer.json()["data"][0]["error"]
    # The admin reads every document of the tenant, and may replace it.
    [replaced] = site.upload("root", "handbook", ("pay.md", b"# Pay\n\nNew bands.\n")).json()[
        "data"
    ]
    assert replaced["status"] == "updated"


def test_bad_requests_get_precise_errors(site: Site) -> None:
    path = "/v1/knowledge/collections/handbook/documents"
    not_multipart = site.call("bea", "POST", path, json={"file": "x"})
    assert not_multipart.status_code == 415
    assert not_multipart.json()["error"]["code"] == "unsupported_media_type"
    no_file = site.call("bea", "POST", path, files=[("other", ("a.md", b"# A"))])
    assert no_file.status_code == 400 and no_file.json()["error"]["param"] == "file"
    for name in ("-dash", "no space!", "x" * 65):
        bad_name = site.upload("bea", name, ("a.md", b"# A"))
        assert (
            bad_name.status_code == 400 and bad_name.json()["error"]["param"] == "path.collection"
        )


def _body(size: int) -> tuple[bytes, str]:
    """A multipart body of about ``size`` bytes: one Markdown file, mostly blank lines."""
    boundary = "graft-test-boundary"
    text = b"# Big\n\nThe big file's one sentence.\n" + b"\n" * size
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="big.md"\r\n'
            "Content-Type: text/markdown\r\n\r\n"
        ).encode()
        + text
        + f"\r\n--{boundary}--\r\n".encode()
    )
    return body, f"multipart/form-data; boundary={boundary}"


def test_the_upload_route_has_its_own_body_limit(site: Site) -> None:
    body, content_type = _body(5 * MiB)
    headers = {"content-type": content_type}
    path = "/v1/knowledge/collections/big/documents"
    accepted = site.call("bea", "POST", path, content=body, headers=headers)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["data"][0]["status"] == "added"
    # The same body anywhere else: over limits.max_body_bytes (4 MiB).
    elsewhere = site.call("bea", "PUT", "/v1/assistants/big", content=body, headers=headers)
    assert elsewhere.status_code == 413
    assert elsewhere.json()["error"]["message"] == (
        "request body is larger than the limit of 4194304 bytes (4 MiB)"
    )
    over, _ = _body(UPLOAD_LIMIT)
    refused = site.call("bea", "POST", path, content=over, headers=headers)
    assert refused.status_code == 413
    assert refused.json()["error"] == {
        "message": f"request body is larger than the limit of {UPLOAD_LIMIT} bytes (6 MiB)",
        "type": "invalid_request_error",
        "code": "payload_too_large",
        "param": None,
    }

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        for start in range(0, len(over), MiB):
            yield over[start : start + MiB]

    streamed = site.call("bea", "POST", path, content=chunks(), headers=headers)
    assert streamed.status_code == 413
    assert str(UPLOAD_LIMIT) in streamed.json()["error"]["message"]


def test_the_memory_store_keeps_no_documents(graft_factory: Any, live_server: Any) -> None:
    graft = graft_factory(FakeModel("ok"))
    url = live_server(graft).url  # single-user: the local admin
    path = "/v1/knowledge/collections/handbook/documents"
    refused = httpx.post(f"{url}{path}", files=[("file", ("a.md", HANDBOOK))])
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "no_document_store"
    assert httpx.get(f"{url}{path}").json() == {"object": "list", "data": []}
    assert httpx.delete(f"{url}/v1/knowledge/documents/doc_x").status_code == 404

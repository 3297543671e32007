"""``/v1/conversations`` on the real server: renaming (``PATCH``), finding by title (``?q=``),
and the passages a turn cited, read back with the conversation (``turns[].citations``)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from sqlalchemy import select
from tests.server.conftest import OPERATOR

from graft.config import Settings
from graft.context import Principal
from graft.crypto import key_id_of
from graft.embeddings import embedder_for
from graft.identity import issue_key
from graft.knowledge.index import KnowledgeIndex, Readers
from graft.knowledge.ingest import Ingestion
from graft.messages import Message
from graft.runtime import Graft
from graft.store.schema import t_turns
from graft.store.sql import SQLStore
from graft.testing import FakeModel

if TYPE_CHECKING:
    from tests.server.conftest import Team


@pytest.fixture
async def started(team: Team) -> dict[str, str]:
    """ann's conversations by their first message, oldest first, and one of bob's."""
    found = {}
    for user, text in (
        ("ann", "Trip to Paris"),
        ("ann", "Tax return"),
        ("ann", "PARIS hotels"),
        ("ann", "Groceries"),
        ("bob", "Paris for bob"),
    ):
        found[text], _ = await team.graft.store.begin_turn(
            Principal(user, tenant="acme"),
            assistant="default",
            model="fake:ok",
            conversation_id=None,
            new_messages=[Message("user", text)],
        )
        await asyncio.sleep(0.002)
    return found


def listed(team: Team, who: str = "ann", **params: Any) -> list[str]:
    response = team.call(who, "GET", "/v1/conversations", params=params)
    assert response.status_code == 200, response.text
    return [c["title"] for c in response.json()["data"]]


def test_q_keeps_the_titles_that_contain_it(team: Team, started: dict[str, str]) -> None:
    assert listed(team, q="paris") == ["PARIS hotels", "Trip to Paris"]
    assert listed(team, q="  Paris ") == ["PARIS hotels", "Trip to Paris"]  # stripped
    assert listed(team, q="paris", limit=1) == ["PARIS hotels"]
    assert listed(team, q="paris", limit=1, offset=1) == ["Trip to Paris"]
    assert listed(team, q="nowhere") == []
    assert listed(team, q="") == listed(team)
    assert listed(team, "bob", q="paris") == ["Paris for bob"]
    too_long = team.call("ann", "GET", "/v1/conversations", params={"q": "x" * 201})
    assert too_long.status_code == 400
    assert too_long.json()["error"]["param"] == "query.q"  # as FastAPI names query parameters


def test_patch_renames_and_answers_the_header(team: Team, started: dict[str, str]) -> None:
    cid = started["Tax return"]
    before = team.call("ann", "GET", f"/v1/conversations/{cid}").json()

    renamed = team.call(
        "ann", "PATCH", f"/v1/conversations/{cid}", json={"title": "  Taxes\n2026  "}
    )

    assert renamed.status_code == 200, renamed.text
    assert renamed.json() == {
        "id": cid,
        "object": "conversation",
        "title": "Taxes 2026",
        "assistant": "default",
        "created_at": before["created_at"],
        "updated_at": before["updated_at"],
    }
    assert team.call("ann", "GET", f"/v1/conversations/{cid}").json()["title"] == "Taxes 2026"
    assert listed(team) == ["Groceries", "PARIS hotels", "Taxes 2026", "Trip to Paris"]
    assert listed(team, q="TAXES") == ["Taxes 2026"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"title": ""}, "title must not be empty"),
        ({"title": " \n "}, "title must not be empty"),
        ({"title": "x" * 201}, "title is 201 characters long; the limit is 200"),
        ({"title": "x" * 801}, "title: String should have at most 800 characters"),
        ({}, "title: Field required"),
        ({"title": 5}, "title: Input should be a valid string"),
    ],
)
def test_patch_refuses_a_bad_title_precisely(
    team: Team, started: dict[str, str], body: dict[str, Any], message: str
) -> None:
    cid = started["Groceries"]
    refused = team.call("ann", "PATCH", f"/v1/conversations/{cid}", json=body)
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"]["message"] == message
    assert refused.json()["error"]["param"] == "title"
    assert team.call("ann", "GET", f"/v1/conversations/{cid}").json()["title"] == "Groceries"


def test_someone_elses_conversation_cannot_be_renamed(team: Team, started: dict[str, str]) -> None:
    cid = started["Groceries"]
    for who in ("bob", "root", "eve"):
        refused = team.call(who, "PATCH", f"/v1/conversations/{cid}", json={"title": "mine"})
        assert refused.status_code == 404, (who, refused.text)
    assert team.call("ann", "GET", f"/v1/conversations/{cid}").json()["title"] == "Groceries"


async def test_a_reloaded_answer_keeps_the_passages_it_cited(
    tmp_path: Path,
    settings_factory: Callable[..., Settings],
    live_server: Callable[[Graft], Any],
) -> None:
    # A real turn over HTTP: automatic retrieval, the model cites [1] and a made-up [4].
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "leave.md").write_text("# Leave\n\nSick leave: ten days a year, paid.\n")
    settings = settings_factory(
        database_url=f"sqlite:///{tmp_path / 'graft.db'}",
        model="test:fake",
        assistants={"hr": {"collections": ["hb"], "retrieval": "always"}},
    )
    model = FakeModel("You get ten days [1], as the policy says [4].", "No sources here.")
    graft = Graft(settings, entry_points=False, models={model.id: model})
    await graft.start()
    try:
        store = graft.store
        assert isinstance(store, SQLStore) and store.data_keys is not None  # encrypted at rest
        index = KnowledgeIndex(store.engine)
        index.start()
        everyone = Readers("acme", everyone=True)
        await Ingestion(index, embedder_for(settings), collection="hb", readers=everyone).run(
            [str(docs)]
        )
        user = await store.create_user(tenant="acme", name="ann", roles=["user"], groups=[])
        key, _ = await issue_key(store, user, creator=OPERATOR, name="k")
        headers = {"authorization": f"Bearer {key}"}
        url = live_server(graft).url
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=30) as client:
            body = {"model": "hr", "messages": [{"role": "user", "content": "Sick leave?"}]}
            async with client.stream(
                "POST", "/v1/chat/completions", json={**body, "stream": True}
            ) as streamed:
                assert streamed.status_code == 200
                cid = streamed.headers["x-graft-conversation-id"]
                sent = [
                    json.loads(line[6:])
                    async for line in streamed.aiter_lines()
                    if line.startswith("data: {")
                ]
            [cited] = [
                c["graft"]["citations"]
                for c in sent
                if c.get("graft", {}).get("event") == "citations" and c["graft"]["stage"] == "cited"
            ]
            again = {
                "model": "hr",
                "conversation_id": cid,
                "messages": [{"role": "user", "content": "thanks"}],
            }
            assert (await client.post("/v1/chat/completions", json=again)).status_code == 200

            read = await client.get(f"/v1/conversations/{cid}")
            assert read.status_code == 200, read.text
            first, second = read.json()["turns"]
            assert first["citations"] == cited  # as the stream listed them
            assert [c["n"] for c in cited] == [1]
            assert "ten days a year" in cited[0]["text"]
            assert cited[0]["link"].startswith("/v1/knowledge/documents/")
            assert second["citations"] == []  # cited nothing

            export = (await client.get("/v1/me/export")).json()
            assert [t["citations"] for t in export["conversations"][0]["turns"]] == [cited, []]

            bob = await store.create_user(tenant="acme", name="bob", roles=["user"], groups=[])
            bobs, _ = await issue_key(store, bob, creator=OPERATOR, name="k")
            other = await client.get(
                f"/v1/conversations/{cid}", headers={"authorization": f"Bearer {bobs}"}
            )
            assert other.status_code == 404
        with store.engine.connect() as conn:
            stored = conn.execute(select(t_turns.c.citations).order_by(t_turns.c.started_at))
            sealed, empty = [value for (value,) in stored]
        assert key_id_of(sealed) is not None and "ten days" not in sealed
        assert empty is None
    finally:
        await graft.aclose()

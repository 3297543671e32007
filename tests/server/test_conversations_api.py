"""``/v1/conversations`` on the real server: renaming (``PATCH``), finding by title (``?q=``)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

import pytest

from graft.context import Principal
from graft.messages import Message

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

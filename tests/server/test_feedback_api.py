"""``/v1/feedback`` and ``/v1/admin/feedback`` over the real server.

A user rates the turns of their own conversations (a chat completion's ``turn_id``), sees
their rating on the conversation, replaces it and takes it back; anyone else's turn is 404.
Admins list their tenant's ratings; to anyone else the route does not exist.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

import pytest
from tests.server.conftest import stored_turn

if TYPE_CHECKING:
    from tests.server.conftest import Team


def error(response: Any) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    return body


def test_rate_a_turn_of_a_chat_and_see_it_on_the_conversation(team: Team) -> None:
    answer = team.call(
        "ann",
        "POST",
        "/v1/chat/completions",
        json={"model": "default", "messages": [{"role": "user", "content": "hello"}]},
    )
    assert answer.status_code == 200, answer.text
    cid, tid = answer.json()["conversation_id"], answer.json()["turn_id"]

    given = team.call(
        "ann", "POST", "/v1/feedback", json={"turn_id": tid, "rating": "down", "comment": "meh"}
    )

    assert given.status_code == 200, given.text
    body = given.json()
    assert body["object"] == "feedback" and body["id"].startswith("fb_")
    assert (body["turn_id"], body["conversation_id"]) == (tid, cid)
    assert (body["rating"], body["comment"]) == ("down", "meh")
    assert body["created_at"] == body["updated_at"]
    [turn] = team.call("ann", "GET", f"/v1/conversations/{cid}").json()["turns"]
    assert turn["feedback"] == body

    again = team.call("ann", "POST", "/v1/feedback", json={"turn_id": tid, "rating": "up"})
    assert again.status_code == 200, again.text
    assert (again.json()["id"], again.json()["rating"]) == (body["id"], "up")
    assert again.json()["comment"] is None
    [turn] = team.call("ann", "GET", f"/v1/conversations/{cid}").json()["turns"]
    assert turn["feedback"] == again.json()

    taken = team.call("ann", "DELETE", f"/v1/feedback/{tid}")
    assert taken.status_code == 200, taken.text
    assert taken.json() == {"object": "feedback.deleted", "turn_id": tid, "deleted": True}
    [turn] = team.call("ann", "GET", f"/v1/conversations/{cid}").json()["turns"]
    assert turn["feedback"] is None
    gone = team.call("ann", "DELETE", f"/v1/feedback/{tid}")
    assert gone.status_code == 404
    assert error(gone)["code"] == "feedback_not_found"


async def test_another_users_turn_is_not_found(team: Team) -> None:
    cid, anns = await stored_turn(team.graft.store, "acme", "ann", "ann's question")
    _, eves = await stored_turn(team.graft.store, "globex", "eve", "eve's question")

    for who, tid in (("bob", anns), ("root", anns), ("eve", anns), ("ann", eves)):
        refused = team.call(who, "POST", "/v1/feedback", json={"turn_id": tid, "rating": "up"})
        assert refused.status_code == 404, (who, refused.text)
        assert error(refused)["code"] == "turn_not_found"
    unknown = team.call("ann", "POST", "/v1/feedback", json={"turn_id": "turn_x", "rating": "up"})
    assert unknown.status_code == 404

    # Nor can anyone else take ann's rating back, or see it.
    team.call("ann", "POST", "/v1/feedback", json={"turn_id": anns, "rating": "up"})
    assert team.call("bob", "DELETE", f"/v1/feedback/{anns}").status_code == 404
    assert team.call("bob", "GET", f"/v1/conversations/{cid}").status_code == 404
    [turn] = team.call("ann", "GET", f"/v1/conversations/{cid}").json()["turns"]
    assert turn["feedback"]["rating"] == "up"


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        (
            {"turn_id": "t", "rating": "sideways"},
            "rating",
            "rating: Input should be 'up' or 'down'",
        ),
        ({"turn_id": "t", "rating": 1}, "rating", "rating: Input should be 'up' or 'down'"),
        ({"turn_id": "t"}, "rating", "rating: Field required"),
        ({"rating": "up"}, "turn_id", "turn_id: Field required"),
        ({"turn_id": "", "rating": "up"}, "turn_id", "turn_id: String should have at least 1"),
        (
            {"turn_id": "t", "rating": "up", "comment": "x" * 4001},
            "comment",
            "comment: String should have at most 4000 characters",
        ),
        ({"turn_id": "t", "rating": "up", "stars": 5}, "stars", "stars: Extra inputs"),
    ],
)
def test_a_bad_body_is_refused_precisely(
    team: Team, body: dict[str, Any], param: str, message: str
) -> None:
    refused = team.call("ann", "POST", "/v1/feedback", json=body)
    assert refused.status_code == 400, refused.text
    assert error(refused)["param"] == param
    assert error(refused)["message"].startswith(message), error(refused)["message"]
    assert error(refused)["type"] == "invalid_request_error"


async def test_a_comment_of_the_longest_length_is_kept(team: Team) -> None:
    _, tid = await stored_turn(team.graft.store, "acme", "ann", "question")
    comment = "北" * 4000
    given = team.call(
        "ann", "POST", "/v1/feedback", json={"turn_id": tid, "rating": "down", "comment": comment}
    )
    assert given.status_code == 200, given.text
    assert given.json()["comment"] == comment


# --- the admins' list -----------------------------------------------------------------------


@pytest.fixture
async def rated(team: Team) -> list[str]:
    """ann rated three turns (up, down, up), bob one (down), eve in globex one: turn ids."""
    store = team.graft.store
    given = []
    for tenant, user, rating in (
        ("acme", "ann", "up"),
        ("acme", "ann", "down"),
        ("acme", "bob", "down"),
        ("acme", "ann", "up"),
        ("globex", "eve", "down"),
    ):
        _, tid = await stored_turn(store, tenant, user, f"{user} asks")
        response = team.call(
            user, "POST", "/v1/feedback", json={"turn_id": tid, "rating": rating, "comment": tid}
        )
        assert response.status_code == 200, response.text
        given.append(tid)
        await asyncio.sleep(0.002)  # ids sort by the millisecond
    return given


def test_admins_list_their_tenants_ratings_newest_first(team: Team, rated: list[str]) -> None:
    response = team.call("root", "GET", "/v1/admin/feedback")
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["object"] == "list" and page["has_more"] is False
    assert [f["turn_id"] for f in page["data"]] == [rated[3], rated[2], rated[1], rated[0]]
    first = page["data"][0]
    assert (first["user"], first["assistant"], first["rating"]) == ("ann", "default", "up")
    assert first["comment"] == rated[3]
    assert (page["first_id"], page["last_id"]) == (first["id"], page["data"][-1]["id"])

    downs = team.call("root", "GET", "/v1/admin/feedback", params={"rating": "down"}).json()
    assert [(f["user"], f["rating"]) for f in downs["data"]] == [("bob", "down"), ("ann", "down")]

    one = team.call("root", "GET", "/v1/admin/feedback", params={"limit": 3}).json()
    assert one["has_more"] is True and len(one["data"]) == 3
    rest = team.call(
        "root", "GET", "/v1/admin/feedback", params={"limit": 3, "after": one["last_id"]}
    ).json()
    assert rest["has_more"] is False
    assert [f["turn_id"] for f in rest["data"]] == [rated[0]]

    eves = team.call("eve", "GET", "/v1/admin/feedback").json()
    assert [f["turn_id"] for f in eves["data"]] == [rated[4]]


async def test_reading_the_list_is_audited(team: Team, rated: list[str]) -> None:
    team.call("root", "GET", "/v1/admin/feedback", params={"rating": "up"})
    [record] = [
        r for r in await team.graft.store.list_audit(None, 50) if r.action == "feedback.list_tenant"
    ]
    assert (record.actor, record.tenant, record.target) == ("root", "acme", "tenant:acme")
    assert json.loads(record.details) == {"rating": "up", "limit": 100, "returned": 2}


@pytest.mark.parametrize(
    ("params", "param", "message"),
    [
        ({"rating": "meh"}, "rating", "rating must be 'up' or 'down', not 'meh'"),
        ({"limit": "0"}, "limit", "limit must be from 1 to 500"),
        ({"limit": "many"}, "limit", "limit must be an integer"),
        ({"after": "x" * 65}, "after", "after must be the id of a feedback (last_id)"),
    ],
)
def test_bad_list_parameters_are_refused(
    team: Team, params: dict[str, str], param: str, message: str
) -> None:
    refused = team.call("root", "GET", "/v1/admin/feedback", params=params)
    assert refused.status_code == 400, refused.text
    assert (error(refused)["param"], error(refused)["message"]) == (param, message)


def test_the_list_does_not_exist_for_anyone_but_admins(team: Team, rated: list[str]) -> None:
    for method in ("GET", "POST", "DELETE"):
        refused = team.call("ann", method, "/v1/admin/feedback", params={"rating": "meh"})
        assert refused.status_code == 404, (method, refused.text)
        assert error(refused)["code"] == "not_found"
    assert team.call("root", "POST", "/v1/admin/feedback").status_code == 405
    spec = team.call("ann", "GET", "/openapi.json").json()
    assert "/v1/admin/feedback" not in spec["paths"]
    assert {"/v1/feedback", "/v1/feedback/{turn_id}"} <= set(spec["paths"])

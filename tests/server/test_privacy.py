"""``/v1/me`` and ``/v1/admin/conversations`` over the real server.

Your own data: export it, delete it. Other people's: an admin sees metadata and never
contents, and another user's conversation is 404 to an admin as to anyone.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import pytest
from tests.server.conftest import stored_turn

from graft.store import Store

if TYPE_CHECKING:
    from tests.server.conftest import Team

CONFIRM = {"confirm": "delete my data"}


async def chat(store: Store, tenant: str, user: str, text: str) -> str:
    """A finished conversation of ``user``'s: its id."""
    cid, _ = await stored_turn(store, tenant, user, text)
    return cid


@pytest.fixture
async def people(team: Team) -> Any:
    store = team.graft.store
    conversations = {
        "ann": [
            await chat(store, "acme", "ann", "ann's diagnosis"),
            await chat(store, "acme", "ann", "ann's salary"),
        ],
        "bob": [await chat(store, "acme", "bob", "bob's secret")],
        "eve": [await chat(store, "globex", "eve", "eve's plan")],
    }
    return team.call, conversations, store


def test_export_is_your_own_conversations_as_an_attachment(people: Any) -> None:
    call, conversations, store = people
    response = call("ann", "GET", "/v1/me/export")
    assert response.status_code == 200, response.text
    disposition = response.headers["content-disposition"]
    assert disposition.startswith('attachment; filename="graft-export-')
    assert disposition.endswith('.json"')
    assert response.headers["cache-control"] == "no-store"
    document = response.json()
    assert (document["tenant"], document["user"]) == ("acme", "ann")
    assert [c["id"] for c in document["conversations"]] == conversations["ann"]
    assert [m["content"] for m in document["conversations"][0]["messages"]] == [
        "ann's diagnosis",
        "answer to ann's diagnosis",
    ]
    assert "bob's secret" not in response.text and "eve's plan" not in response.text


async def test_deleting_your_data_needs_the_confirmation(people: Any) -> None:
    call, conversations, store = people
    for body in (None, {}, {"confirm": "yes"}, {"confirm": "delete my data", "also": 1}):
        refused = call("ann", "DELETE", "/v1/me/data", json=body)
        assert refused.status_code == 400, refused.text
    wrong = call("ann", "DELETE", "/v1/me/data", json={"confirm": "yes"}).json()["error"]
    assert wrong["code"] == "confirmation_required" and wrong["param"] == "confirm"
    assert len(call("ann", "GET", "/v1/me/export").json()["conversations"]) == 2

    deleted = call("ann", "DELETE", "/v1/me/data", json=CONFIRM)
    assert deleted.status_code == 200, deleted.text
    assert deleted.json() == {"object": "user_data.deleted", "deleted": True, "conversations": 2}

    assert call("ann", "GET", "/v1/me/export").json()["conversations"] == []
    assert call("ann", "GET", "/v1/conversations").json()["data"] == []
    for cid in conversations["ann"]:
        assert call("ann", "GET", f"/v1/conversations/{cid}").status_code == 404
    # Nobody else's data went, and the account still works.
    assert [c["id"] for c in call("bob", "GET", "/v1/conversations").json()["data"]] == (
        conversations["bob"]
    )
    assert len(call("eve", "GET", "/v1/me/export").json()["conversations"]) == 1
    again = call("ann", "DELETE", "/v1/me/data", json=CONFIRM)
    assert again.json()["conversations"] == 0
    actions = [(r.action, r.actor, r.details) for r in await store.list_audit(None, 100)]
    assert ("user_data.delete", "ann", '{"conversations":2}') in actions
    assert ("user_data.export", "eve", '{"conversations":1}') in actions


def test_an_admin_sees_metadata_of_their_tenant_and_never_contents(people: Any) -> None:
    call, conversations, store = people
    response = call("root", "GET", "/v1/admin/conversations")
    assert response.status_code == 200, response.text
    listed = response.json()["data"]
    assert sorted(c["id"] for c in listed) == sorted(conversations["ann"] + conversations["bob"])
    assert {c["user"] for c in listed} == {"ann", "bob"}
    for item in listed:
        assert set(item) == {
            "id",
            "object",
            "user",
            "assistant",
            "created_at",
            "updated_at",
            "message_count",
        }
        assert item["message_count"] == 2 and item["assistant"] == "default"
    for secret in ("diagnosis", "salary", "secret", "plan", "answer"):
        assert secret not in response.text
    page = call("root", "GET", "/v1/admin/conversations", params={"limit": 1, "offset": 1})
    assert len(page.json()["data"]) == 1
    for bad in ({"limit": 0}, {"limit": 201}, {"offset": -1}, {"limit": "many"}):
        refused = call("root", "GET", "/v1/admin/conversations", params=bad)
        assert refused.status_code == 400, bad
    # Another tenant's admin sees only their own tenant.
    eve = call("eve", "GET", "/v1/admin/conversations").json()["data"]
    assert [c["id"] for c in eve] == conversations["eve"]


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_the_admin_route_does_not_exist_for_anyone_else(people: Any, method: str) -> None:
    call, _, _ = people
    unknown = call("ann", method, "/v1/admin/nothing-here")
    for params in (None, {"limit": "many"}):
        hidden = call("ann", method, "/v1/admin/conversations", params=params)
        assert hidden.status_code == unknown.status_code == 404
        error = hidden.json()["error"]
        assert error == {
            **unknown.json()["error"],
            "message": f"no route {method} /v1/admin/conversations",
        }


async def test_a_refused_admin_call_is_audited_and_the_route_is_not_documented(
    people: Any,
) -> None:
    call, _, store = people
    call("bob", "GET", "/v1/admin/conversations")
    denied = [r for r in await store.list_audit(None, 100) if r.action == "access.denied"]
    assert [(r.actor, r.target) for r in denied] == [("bob", "route:/v1/admin/conversations")]
    schema = call("root", "GET", "/openapi.json").json()
    assert "/v1/admin/conversations" not in schema["paths"]
    assert {"/v1/me/export", "/v1/me/data"} <= set(schema["paths"])


def test_an_admin_cannot_read_or_delete_another_users_conversation(people: Any) -> None:
    call, conversations, _ = people
    [bobs] = conversations["bob"]
    for method in ("GET", "DELETE"):
        refused = call("root", method, f"/v1/conversations/{bobs}")
        assert refused.status_code == 404
        assert refused.json()["error"]["code"] == "conversation_not_found"
        assert "secret" not in refused.text
    assert call("root", "GET", "/v1/conversations").json()["data"] == []
    export = call("root", "GET", "/v1/me/export").json()
    assert export["conversations"] == [] and "secret" not in json.dumps(export)
    # Still there for its owner.
    assert call("bob", "GET", f"/v1/conversations/{bobs}").status_code == 200

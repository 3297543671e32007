"""``/v1/keys`` over the real server: your own keys, an admin's tenant, 404 for the rest."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

if TYPE_CHECKING:
    from tests.server.conftest import Team


@pytest.fixture
def people(team: Team) -> Any:
    def call(who: str, method: str, path: str = "", **kwargs: Any) -> httpx.Response:
        return team.call(who, method, f"/v1/keys{path}", **kwargs)

    return call, team.keys


def ids(response: httpx.Response) -> list[str]:
    assert response.status_code == 200, response.text
    return [k["user"] for k in response.json()["data"]]


def test_users_see_and_revoke_only_their_own_keys(people: Any) -> None:
    call, keys = people
    assert ids(call("ann", "GET")) == ["ann"]
    assert ids(call("ann", "GET", params={"user": "bob"})) == []
    assert sorted(ids(call("root", "GET"))) == ["ann", "bob", "root"]
    assert ids(call("eve", "GET")) == ["eve"]
    bob_key = keys["bob"][:15]
    for who in ("ann", "eve"):  # another user's key, another tenant's key: no such key
        refused = call(who, "DELETE", f"/{bob_key}")
        assert refused.status_code == 404 and refused.json()["error"]["code"] == "key_not_found"
    assert call("root", "DELETE", f"/{bob_key}").json()["revoked_at"] is not None
    assert call("bob", "GET").status_code == 401  # bob's only key is revoked
    assert call("ann", "DELETE", f"/{keys['ann'][:15]}").status_code == 200
    assert call("ann", "GET").status_code == 401


def test_a_new_key_is_shown_once_and_carries_no_more_than_allowed(people: Any) -> None:
    call, keys = people
    created = call("ann", "POST", json={"name": "laptop"})
    assert created.status_code == 201, created.text
    key = created.json()["key"]
    assert created.json()["roles"] == ["user"] and key.startswith(created.json()["id"])
    listed = call("ann", "GET").json()["data"]
    assert "key" not in listed[0] and key not in str(listed)
    keys["ann's laptop"] = key
    assert sorted(k["name"] for k in call("ann's laptop", "GET").json()["data"]) == [
        "first",
        "laptop",
    ]
    too_much = call("ann", "POST", json={"roles": ["admin"]})
    assert too_much.status_code == 400 and "does not have the role 'admin'" in too_much.text
    for_bob = call("ann", "POST", json={"user": "bob"})
    assert for_bob.status_code == 404 and "no user 'bob'" in for_bob.text
    by_admin = call("root", "POST", json={"user": "bob", "roles": ["user"]})
    assert by_admin.status_code == 201 and by_admin.json()["created_by"] == "root"
    elsewhere = call("eve", "POST", json={"user": "bob"})
    assert elsewhere.status_code == 404
    unknown_field = call("ann", "POST", json={"tenant": "globex"})
    assert unknown_field.status_code == 400


def test_an_admin_makes_a_key_for_a_user_of_their_tenant_only(people: Any, team: Team) -> None:
    call, keys = people
    for_bob = call("root", "POST", json={"user": "bob", "name": "from root"})
    assert for_bob.status_code == 201, for_bob.text
    assert {k: for_bob.json()[k] for k in ("user", "roles", "created_by")} == {
        "user": "bob",
        "roles": ["user"],
        "created_by": "root",
    }
    keys["bob's new key"] = for_bob.json()["key"]
    me = team.call("bob's new key", "GET", "/v1/me").json()
    assert (me["user"], me["tenant"], me["is_admin"]) == ("bob", "acme", False)
    assert "from root" in [k["name"] for k in call("bob", "GET").json()["data"]]
    # Not more than bob has; not a user of another tenant (as if there were none).
    beyond = call("root", "POST", json={"user": "bob", "roles": ["admin"]})
    assert beyond.status_code == 400 and beyond.json()["error"]["param"] == "roles"
    for_eve = call("root", "POST", json={"user": "eve"})
    assert for_eve.status_code == 404 and for_eve.json()["error"]["code"] == "user_not_found"
    # A non-admin naming someone else gets the same 404, whether the user exists or not.
    assert call("ann", "POST", json={"user": "bob"}).text.replace("bob", "x") == call(
        "ann", "POST", json={"user": "nobody"}
    ).text.replace("nobody", "x")

"""``/v1/admin/users`` and ``/v1/admin/plugins`` over the real server.

An admin manages their own tenant's users; anyone else gets what an unknown path gets, for
every method. Every change is in the audit log with the admin as its actor.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from graft.context import Principal
from graft.identity import issue_key
from graft.runtime import Graft
from graft.testing import FakeModel

OPERATOR = Principal("cli:test", frozenset({"admin", "builder", "user"}))


@pytest.fixture
async def people(graft_factory: Any, live_server: Any) -> Any:
    graft: Graft = graft_factory(
        FakeModel(*["ok"] * 5),
        mcp_servers={"files": {"command": "graft-no-such-mcp-server", "args": ["--secret-arg"]}},
        services={"weather": {"spec": "https://weather.example.com/openapi.json"}},
    )
    keys: dict[str, str] = {}
    for tenant, name, roles in (
        ("acme", "ann", ["user"]),
        ("acme", "root", ["admin", "user"]),
        ("globex", "eve", ["admin", "user"]),
    ):
        user = await graft.store.create_user(tenant=tenant, name=name, roles=roles, groups=[])
        keys[name], _ = await issue_key(graft.store, user, creator=OPERATOR, name="first")
    server = live_server(graft)

    def call(who: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {keys[who]}"}
        return httpx.request(method, f"{server.url}{path}", headers=headers, **kwargs)

    return call, keys, graft


def test_an_admin_lists_adds_disables_and_enables_their_tenants_users(people: Any) -> None:
    call, keys, graft = people
    listed = call("root", "GET", "/v1/admin/users")
    assert listed.status_code == 200, listed.text
    assert [(u["name"], u["roles"], u["disabled"]) for u in listed.json()["data"]] == [
        ("ann", ["user"], False),
        ("root", ["admin", "user"], False),
    ]
    made = call(
        "root",
        "POST",
        "/v1/admin/users",
        json={"name": "dan", "roles": ["builder", "user"], "groups": ["hr", " hr ", "ops"]},
    )
    assert made.status_code == 201, made.text
    assert {k: made.json()[k] for k in ("name", "tenant", "roles", "groups", "disabled")} == {
        "name": "dan",
        "tenant": "acme",
        "roles": ["builder", "user"],
        "groups": ["hr", "ops"],
        "disabled": False,
    }
    again = call("root", "POST", "/v1/admin/users", json={"name": "dan"})
    assert again.status_code == 409
    bad_role = call("root", "POST", "/v1/admin/users", json={"name": "x", "roles": ["god"]})
    assert bad_role.status_code == 400 and bad_role.json()["error"]["param"] == "roles"
    blank = call("root", "POST", "/v1/admin/users", json={"name": "  "})
    assert blank.status_code == 400 and blank.json()["error"]["param"] == "name"
    # The new user gets a key and works; disabled, the key stops at once; enabled, works again.
    dan = anyio.run(graft.store.get_user, "acme", "dan")
    key, _ = anyio.run(lambda: issue_key(graft.store, dan, creator=OPERATOR, name="k"))
    keys["dan"] = key
    assert call("dan", "GET", "/v1/me").json()["is_builder"] is True
    off = call("root", "PATCH", "/v1/admin/users/dan", json={"disabled": True})
    assert off.status_code == 200 and off.json()["disabled"] is True
    assert call("dan", "GET", "/v1/me").status_code == 401
    on = call("root", "PATCH", "/v1/admin/users/dan", json={"disabled": False})
    assert on.status_code == 200 and on.json()["disabled"] is False
    assert call("dan", "GET", "/v1/me").status_code == 200
    # The same roles and groups, in any order, are no change (and no audit record).
    unchanged = {"roles": ["user", "builder"], "groups": ["ops", "hr"]}
    same = call("root", "PATCH", "/v1/admin/users/dan", json=unchanged)
    assert same.status_code == 200 and same.json()["groups"] == ["hr", "ops"]
    myself = call("root", "PATCH", "/v1/admin/users/root", json={"disabled": True})
    assert myself.status_code == 400
    assert call("root", "PATCH", "/v1/admin/users/eve", json={"disabled": True}).status_code == 404
    assert call("root", "DELETE", "/v1/admin/users/dan").status_code == 405
    # Another tenant's admin sees theirs only.
    assert [u["name"] for u in call("eve", "GET", "/v1/admin/users").json()["data"]] == ["eve"]
    records = [r for r in anyio.run(graft.store.list_audit, None, 1000) if r.action != "key.create"]
    changes = [
        (r.action, r.actor, r.tenant, r.target) for r in records if r.action != "auth.failure"
    ]
    assert changes == [
        ("user.create", "root", "acme", "dan"),
        ("user.disable", "root", "acme", "dan"),
        ("user.enable", "root", "acme", "dan"),
    ]
    assert json.loads(records[0].details) == {"roles": ["builder", "user"], "groups": ["hr", "ops"]}


def test_an_admin_changes_roles_and_groups_and_keys_and_sessions_follow(people: Any) -> None:
    call, keys, graft = people
    url = str(call("root", "GET", "/v1/me").url).removesuffix("/v1/me")
    made = call(
        "root", "POST", "/v1/admin/users", json={"name": "dan", "roles": ["builder", "user"]}
    )
    assert made.status_code == 201, made.text
    dan = anyio.run(graft.store.get_user, "acme", "dan")
    keys["dan"], _ = anyio.run(lambda: issue_key(graft.store, dan, creator=OPERATOR, name="k"))
    signed_in = call("dan", "POST", "/v1/auth/session")
    assert signed_in.status_code == 201, signed_in.text
    cookie = {"cookie": f"graft_session={signed_in.cookies['graft_session']}"}

    def me() -> list[tuple[list[str], list[str]]]:
        """Dan's roles and groups as his key and his browser session see them now."""
        by_key = call("dan", "GET", "/v1/me").json()
        by_cookie = httpx.get(f"{url}/v1/me", headers=cookie).json()
        return [(found["roles"], found["groups"]) for found in (by_key, by_cookie)]

    assert me() == [(["builder", "user"], [])] * 2
    change = {"roles": ["user"], "groups": ["ops", " hr ", "ops"]}
    changed = call("root", "PATCH", "/v1/admin/users/dan", json=change)
    assert changed.status_code == 200, changed.text
    assert (changed.json()["roles"], changed.json()["groups"]) == (["user"], ["hr", "ops"])
    assert me() == [(["user"], ["hr", "ops"])] * 2  # at the next request, no sign-in again
    back = call("root", "PATCH", "/v1/admin/users/dan", json={"roles": ["builder", "user"]})
    assert back.status_code == 200 and me()[0] == (["builder", "user"], ["hr", "ops"])
    # Given a role his key was not made with, dan needs a new key for it.
    admin = call("root", "PATCH", "/v1/admin/users/dan", json={"roles": ["admin", "user"]})
    assert admin.json()["roles"] == ["admin", "user"] and me()[0] == (["user"], ["hr", "ops"])
    new_key = call("root", "POST", "/v1/keys", json={"user": "dan", "name": "admin"})
    assert new_key.status_code == 201 and new_key.json()["roles"] == ["admin", "user"]
    keys["dan as admin"] = new_key.json()["key"]
    assert call("dan as admin", "GET", "/v1/me").json()["is_admin"] is True
    # Bad changes are refused with the field at fault, and change nothing.
    for body, param in (
        ({"roles": ["god"]}, "roles"),
        ({"roles": []}, "roles"),
        ({"groups": ["  "]}, "groups"),
        ({"groups": ["x" * 256]}, "groups"),
        ({"roles": ["user"], "groups": [""]}, "groups"),
    ):
        refused = call("root", "PATCH", "/v1/admin/users/dan", json=body)
        assert refused.status_code == 400, (body, refused.text)
        assert refused.json()["error"]["param"] == param, (body, refused.text)
    assert anyio.run(graft.store.get_user, "acme", "dan").roles == ("admin", "user")
    # An admin keeps their own admin role; other changes to themselves are fine.
    myself = call("root", "PATCH", "/v1/admin/users/root", json={"roles": ["builder", "user"]})
    assert myself.status_code == 400 and "admin role from yourself" in myself.text
    kept = call(
        "root", "PATCH", "/v1/admin/users/root", json={"roles": ["admin"], "groups": ["it"]}
    )
    assert kept.status_code == 200 and (kept.json()["roles"], kept.json()["groups"]) == (
        ["admin"],
        ["it"],
    )
    assert call("root", "GET", "/v1/me").json()["roles"] == ["admin"]
    # Another tenant's user does not exist here; the change and a disabling in one request.
    elsewhere = call("root", "PATCH", "/v1/admin/users/eve", json={"roles": ["user"]})
    assert elsewhere.status_code == 404
    both = call("root", "PATCH", "/v1/admin/users/dan", json={"roles": ["user"], "disabled": True})
    assert both.json()["roles"] == ["user"] and both.json()["disabled"] is True
    records = anyio.run(graft.store.list_audit, None, 1000)
    updates = [
        (r.actor, r.target, json.loads(r.details)) for r in records if r.action == "user.update"
    ]
    assert updates == [
        (
            "root",
            "dan",
            {
                "roles": ["user"],
                "groups": ["hr", "ops"],
                "before": {"roles": ["builder", "user"], "groups": []},
            },
        ),
        ("root", "dan", {"roles": ["builder", "user"], "before": {"roles": ["user"]}}),
        ("root", "dan", {"roles": ["admin", "user"], "before": {"roles": ["builder", "user"]}}),
        (
            "root",
            "root",
            {
                "roles": ["admin"],
                "groups": ["it"],
                "before": {"roles": ["admin", "user"], "groups": []},
            },
        ),
        ("root", "dan", {"roles": ["user"], "before": {"roles": ["admin", "user"]}}),
    ]
    assert records[-1].action == "user.disable"


def test_anyone_else_gets_what_an_unknown_path_gets(people: Any) -> None:
    call, keys, graft = people
    unknown = call("ann", "GET", "/v1/admin/nothing")
    for method, path, body in (
        ("GET", "/v1/admin/users", None),
        ("POST", "/v1/admin/users", {"name": "mallory", "roles": ["admin"]}),
        ("POST", "/v1/admin/users", {"not": "valid"}),
        ("PATCH", "/v1/admin/users/root", {"disabled": True}),
        ("GET", "/v1/admin/plugins", None),
    ):
        refused = call("ann", method, path, json=body)
        assert refused.status_code == 404, (method, path, refused.text)
        assert refused.json()["error"]["code"] == unknown.json()["error"]["code"]
    assert [u.name for u in anyio.run(graft.store.list_users, "acme")] == ["ann", "root"]
    openapi = call("ann", "GET", "/openapi.json").json()
    assert not any(path.startswith("/v1/admin") for path in openapi["paths"])


def test_an_admin_sees_what_is_plugged_in(people: Any) -> None:
    call, keys, graft = people
    answer = call("root", "GET", "/v1/admin/plugins")
    assert answer.status_code == 200, answer.text
    found = answer.json()
    plugins = {p["name"]: p for p in found["plugins"]}
    assert plugins["graft.default_plugins.builtin_tools"]["package"] == "graft"
    assert "register_tools" in plugins["graft.default_plugins.builtin_tools"]["hooks"]
    assert found["mcp_servers"] == [
        {"name": "files", "transport": "stdio", "connected": False, "tools": []}
    ]
    assert found["services"] == [
        {"name": "weather", "spec": "https://weather.example.com/openapi.json", "description": ""}
    ]
    assert "secret-arg" not in answer.text
    assert call("root", "POST", "/v1/admin/plugins").status_code == 405


def test_a_connected_mcp_server_shows_its_tools(graft_factory: Any, live_server: Any) -> None:
    server = Path(__file__).parents[1] / "mcp_bridge" / "mcp_test_server.py"
    graft = graft_factory(
        FakeModel("ok"), mcp_servers={"calc": {"command": sys.executable, "args": [str(server)]}}
    )
    url = live_server(graft).url  # single-user: the local admin
    before = httpx.get(f"{url}/v1/admin/plugins").json()["mcp_servers"]
    assert before == [{"name": "calc", "transport": "stdio", "connected": False, "tools": []}]
    tools = httpx.get(f"{url}/v1/tools", timeout=60).json()["data"]  # starts the server
    assert {"name": "calc_add", "plugin": "mcp:calc"}.items() <= next(
        t for t in tools if t["name"] == "calc_add"
    ).items()
    [after] = httpx.get(f"{url}/v1/admin/plugins").json()["mcp_servers"]
    assert after["connected"] is True and "calc_add" in after["tools"]

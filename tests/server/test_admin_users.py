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
    # Roles cannot change yet; the same roles are no change.
    roles = call("root", "PATCH", "/v1/admin/users/dan", json={"roles": ["admin"]})
    assert roles.status_code == 400 and roles.json()["error"]["param"] == "roles"
    same = call("root", "PATCH", "/v1/admin/users/dan", json={"roles": ["user", "builder"]})
    assert same.status_code == 200
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

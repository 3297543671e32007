"""``GET /v1/admin/audit`` over the real server, and what requests leave in the audit log.

An admin reads their tenant's records; anyone else gets the answer an unknown path gets.
A refused authentication is recorded with the key's public id and the client's address,
and never the key.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest

from graft.audit import AuditRecord
from graft.context import Principal
from graft.identity import issue_key
from graft.runtime import Graft
from graft.testing import FakeModel

OPERATOR = Principal("cli:test", frozenset({"admin", "builder", "user"}))


@pytest.fixture
async def people(graft_factory: Any, live_server: Any) -> Any:
    graft: Graft = graft_factory(FakeModel(*["ok"] * 5))
    keys: dict[str, str] = {}
    for tenant, name, roles in (
        ("acme", "ann", ["user"]),
        ("acme", "root", ["admin", "user"]),
        ("globex", "eve", ["admin", "user"]),
    ):
        user = await graft.store.create_user(tenant=tenant, name=name, roles=roles, groups=[])
        keys[name], _ = await issue_key(graft.store, user, creator=OPERATOR, name="first")
    server = live_server(graft)

    def call(who: str | None, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"authorization": f"Bearer {keys[who]}"} if who else kwargs.pop("headers", {})
        return httpx.request(method, f"{server.url}{path}", headers=headers, **kwargs)

    return call, keys, graft


def stored(graft: Graft) -> list[AuditRecord]:
    return anyio.run(graft.store.list_audit, None, 1000)


def test_an_admin_reads_their_tenants_records_and_pages(people: Any) -> None:
    call, keys, graft = people
    made = call("root", "POST", "/v1/keys", json={"user": "ann", "name": "laptop"})
    assert made.status_code == 201
    assert call("root", "DELETE", f"/v1/keys/{made.json()['id']}").status_code == 200
    call("eve", "POST", "/v1/keys", json={"name": "mine"})
    page = call("root", "GET", "/v1/admin/audit")
    assert page.status_code == 200, page.text
    data = page.json()["data"]
    assert [(r["action"], r["actor"], r["tenant"]) for r in data] == [
        ("key.create", "root", "acme"),
        ("key.revoke", "root", "acme"),
    ]
    assert data[0]["details"] == {"user": "ann", "roles": ["user"], "name": "laptop"}
    assert page.json()["last_seq"] == data[-1]["seq"]
    first = call("root", "GET", "/v1/admin/audit", params={"limit": 1, "after": 0}).json()
    assert [r["seq"] for r in first["data"]] == [data[0]["seq"]]
    after = call("root", "GET", "/v1/admin/audit", params={"after": first["last_seq"]}).json()
    assert [r["seq"] for r in after["data"]] == [data[1]["seq"]]
    # Another tenant's admin sees only their own.
    theirs = call("eve", "GET", "/v1/admin/audit").json()["data"]
    assert [(r["action"], r["tenant"]) for r in theirs] == [("key.create", "globex")]
    bad = call("root", "GET", "/v1/admin/audit", params={"limit": "many"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
    assert call("root", "GET", "/v1/admin/audit", params={"limit": 5000}).status_code == 400
    assert call("root", "POST", "/v1/admin/audit").status_code == 405


def test_anyone_else_gets_what_an_unknown_path_gets(people: Any) -> None:
    call, keys, graft = people
    unknown = call("ann", "GET", "/v1/admin/nothing")
    assert unknown.status_code == 404
    for method, params in (("GET", {}), ("GET", {"limit": "many"}), ("POST", {}), ("PUT", {})):
        refused = call("ann", method, "/v1/admin/audit", params=params)
        assert refused.status_code == 404, (method, params, refused.text)
        assert refused.json()["error"]["code"] == unknown.json()["error"]["code"]
        assert refused.json()["error"]["type"] == unknown.json()["error"]["type"]
    openapi = call("ann", "GET", "/openapi.json").json()
    assert not any(path.startswith("/v1/admin") for path in openapi["paths"])
    denied = [r for r in stored(graft) if r.action == "access.denied"]
    assert len(denied) == 4
    assert (denied[0].actor, denied[0].tenant, denied[0].target) == (
        "ann",
        "acme",
        "route:/v1/admin/audit",
    )


def test_a_refused_key_is_recorded_by_its_id_and_never_in_full(people: Any) -> None:
    call, keys, graft = people
    real = keys["ann"]
    wrong = real[:16] + ("A" if real[16] != "A" else "B") + real[17:]
    for headers in (
        {"authorization": f"Bearer {wrong}"},
        {"x-api-key": wrong},
        {"authorization": "Bearer sk-not-a-graft-key-0123456789"},
        {},
    ):
        response = call(None, "GET", "/v1/models", headers=headers)
        assert response.status_code == 401
    failures = [r for r in stored(graft) if r.action == "auth.failure"]
    assert len(failures) == 4
    details = [json.loads(r.details) for r in failures]
    assert [d["key_id"] for d in details] == [real[:15], real[:15], None, None]
    assert [d["key_presented"] for d in details] == [True, True, True, False]
    assert all(d["client"] == "127.0.0.1" and d["method"] == "GET" for d in details)
    assert all(r.actor == "anonymous" and r.outcome == "denied" for r in failures)
    assert failures[0].target == "/v1/models"
    everything = json.dumps([r.to_json() for r in stored(graft)])
    for secret in (real, wrong, real[16:], wrong[16:], "sk-not-a-graft-key-0123456789"):
        assert secret not in everything

"""``GET /v1/auth/methods`` (public) and ``GET /v1/me`` over a real server."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from graft.context import Principal
from graft.identity import issue_key
from graft.testing import FakeModel

OPERATOR = Principal("cli:test", frozenset({"admin", "builder", "user"}))


def test_single_user_needs_no_sign_in_and_is_the_local_admin(
    graft_factory: Any, live_server: Any
) -> None:
    url = live_server(graft_factory(FakeModel("ok"))).url
    methods = httpx.get(f"{url}/v1/auth/methods")
    assert methods.status_code == 200
    assert methods.json() == {"single_user": True, "api_key": False, "oidc": False}
    me = httpx.get(f"{url}/v1/me").json()
    assert me == {
        "object": "user",
        "user": "local",
        "tenant": "default",
        "roles": ["admin"],
        "groups": [],
        "is_admin": True,
        "is_builder": True,
    }


@pytest.fixture
async def acme(graft_factory: Any, live_server: Any) -> tuple[str, dict[str, str]]:
    """ann (user, groups hr and a) and bea (builder), with OIDC configured too."""
    graft = graft_factory(
        FakeModel("ok"),
        auth={"oidc_issuer": "https://login.example.com", "oidc_client_id": "graft"},
    )
    keys = {}
    for name, roles, groups in (("ann", ["user"], ["hr", "a"]), ("bea", ["builder"], [])):
        user = await graft.store.create_user(tenant="acme", name=name, roles=roles, groups=groups)
        keys[name], _ = await issue_key(graft.store, user, creator=OPERATOR, name="k")
    return live_server(graft).url, keys


def test_with_users_the_page_offers_keys_and_sso_and_each_is_themselves(
    acme: tuple[str, dict[str, str]],
) -> None:
    url, keys = acme
    # No credentials at all, and a wrong key: the methods all the same (a public path).
    for headers in ({}, {"authorization": "Bearer gk_000000000000_wrong"}):
        methods = httpx.get(f"{url}/v1/auth/methods", headers=headers)
        assert methods.json() == {"single_user": False, "api_key": True, "oidc": True}
    assert httpx.get(f"{url}/v1/me").status_code == 401

    def me(who: str) -> dict[str, Any]:
        answer = httpx.get(f"{url}/v1/me", headers={"authorization": f"Bearer {keys[who]}"})
        assert answer.status_code == 200, answer.text
        data: dict[str, Any] = answer.json()
        return data

    ann = me("ann")
    assert (ann["user"], ann["tenant"], ann["roles"], ann["groups"]) == (
        "ann",
        "acme",
        ["user"],
        ["a", "hr"],
    )
    assert (ann["is_admin"], ann["is_builder"]) == (False, False)
    assert (me("bea")["is_admin"], me("bea")["is_builder"]) == (False, True)

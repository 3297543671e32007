"""Browser sessions over the real server: cookies, CSRF, sign-out, and what ends a session."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import httpx
import pytest

from graft.context import Principal
from graft.default_plugins.api_key_auth import hash_api_key
from graft.identity import issue_key
from graft.sessions import csrf_token_for, session_id_of
from graft.testing import FakeModel

OPERATOR = Principal("cli:test", frozenset({"admin", "builder", "user"}))
CHAT = {"model": "default", "messages": [{"role": "user", "content": "x"}]}
FILE_KEYS = [{"sha256": hash_api_key("sk-file"), "user": "bot", "roles": ["user"]}]


class Site:
    """A live server with ann (builder and user) and her key, which carries only ``user``."""

    def __init__(self, server: Any, graft: Any, key: str, key_id: str) -> None:
        self.url = server.url
        self.graft = graft
        self.key = key
        self.key_id = key_id

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return httpx.request(method, f"{self.url}{path}", **kwargs)

    def sign_in(self, **headers: str) -> httpx.Response:
        response = self.call(
            "POST", "/v1/auth/session", headers={"authorization": f"Bearer {self.key}", **headers}
        )
        assert response.status_code == 201, response.text
        return response

    def audit(self) -> list[Any]:
        return list(anyio.run(self.graft.store.list_audit, None, 1000))


def cookies(response: httpx.Response) -> dict[str, dict[str, str]]:
    """The response's Set-Cookie headers: name to {"value", and each attribute, lower-cased}."""
    found = {}
    for header in response.headers.get_list("set-cookie"):
        first, *attributes = [part.strip() for part in header.split(";")]
        name, _, value = first.partition("=")
        parsed = {"value": value}
        for attribute in attributes:
            key, _, setting = attribute.partition("=")
            parsed[key.lower()] = setting or "true"
        found[name] = parsed
    return found


def with_cookie(token: str, csrf: str | None = None, **headers: str) -> dict[str, str]:
    sent = {"cookie": f"other=1; graft_session={token}", **headers}
    return sent | ({"x-csrf-token": csrf} if csrf is not None else {})


@pytest.fixture
async def site(graft_factory: Any, live_server: Any) -> Site:
    return await _site(graft_factory, live_server)


async def _site(graft_factory: Any, live_server: Any, **overrides: Any) -> Site:
    graft = graft_factory(FakeModel(*["hi"] * 20), **overrides)
    ann = await graft.store.create_user(
        tenant="acme", name="ann", roles=["builder", "user"], groups=["hr"]
    )
    key, info = await issue_key(graft.store, ann, creator=OPERATOR, roles=["user"])
    return Site(live_server(graft), graft, key, info.id)


def test_signing_in_sets_a_strict_httponly_session_cookie_and_a_readable_csrf_cookie(
    site: Site,
) -> None:
    response = site.sign_in()
    body = response.json()
    assert (body["user"], body["tenant"], body["roles"]) == ("ann", "acme", ["user"])
    set = cookies(response)
    session, csrf = set["graft_session"], set["graft_csrf"]
    token = session["value"]
    assert len(token) >= 43 and token not in response.text  # 256 bits, only in the cookie
    assert csrf["value"] == body["csrf_token"] == csrf_token_for(token)
    for cookie in (session, csrf):
        assert cookie["samesite"] == "Strict" and cookie["path"] == "/"
        assert cookie["max-age"] == str(12 * 3600)
        assert "secure" not in cookie  # plain HTTP, no setting
    assert session["httponly"] == "true" and "httponly" not in csrf
    hours = (body["expires_at"] - datetime.now(UTC).timestamp()) / 3600
    assert 11.9 < hours <= 12
    assert response.headers["cache-control"] == "no-store"

    whoami = site.call("GET", "/v1/auth/session", headers=with_cookie(token))
    assert whoami.status_code == 200, whoami.text
    assert (whoami.json()["user"], whoami.json()["roles"]) == ("ann", ["user"])
    assert whoami.json()["csrf_token"] == body["csrf_token"]
    by_key = site.call("GET", "/v1/auth/session", headers={"x-api-key": site.key}).json()
    assert by_key["user"] == "ann" and by_key["expires_at"] is None and by_key["csrf_token"] is None


def test_cookies_are_secure_on_https_and_with_the_setting(
    site: Site, graft_factory: Any, live_server: Any
) -> None:
    # uvicorn trusts X-Forwarded-Proto from 127.0.0.1 (a local proxy), as a deployment would.
    behind_tls = cookies(site.sign_in(**{"x-forwarded-proto": "https"}))
    assert all(c["secure"] == "true" for c in behind_tls.values())
    configured = anyio.run(
        lambda: _site(graft_factory, live_server, auth={"secure_cookies": True, "session_hours": 1})
    )
    set = cookies(configured.sign_in())
    assert all(c["secure"] == "true" and c["max-age"] == "3600" for c in set.values())


def test_unsafe_cookie_requests_need_the_csrf_token(site: Site) -> None:
    signed_in = site.sign_in()
    token, csrf = cookies(signed_in)["graft_session"]["value"], signed_in.json()["csrf_token"]
    chat = "/v1/chat/completions"
    assert site.call("GET", "/v1/models", headers=with_cookie(token)).status_code == 200
    for sent in (None, "", "0" * 64, csrf[:-1], token):
        refused = site.call("POST", chat, json=CHAT, headers=with_cookie(token, sent))
        assert refused.status_code == 403, (sent, refused.text)
        assert refused.json()["error"]["code"] == "csrf_failed"
    accepted = site.call("POST", chat, json=CHAT, headers=with_cookie(token, csrf))
    assert accepted.status_code == 200, accepted.text
    # A key needs no CSRF token, even with a cookie beside it.
    by_key = with_cookie(token, authorization=f"Bearer {site.key}")
    assert site.call("POST", chat, json=CHAT, headers=by_key).status_code == 200
    # Another site's page is refused even with the token; graft's own origin is not.
    foreign = with_cookie(token, csrf, origin="https://evil.example")
    assert site.call("POST", chat, json=CHAT, headers=foreign).status_code == 403
    assert site.call("GET", "/v1/models", headers=foreign).status_code == 403
    own = with_cookie(token, csrf, origin=site.url)
    assert site.call("POST", chat, json=CHAT, headers=own).status_code == 200

    records = site.audit()
    refusals = [r for r in records if r.action == "auth.failure"]
    assert refusals and all(json.loads(r.details)["code"] == "csrf_failed" for r in refusals)
    [signed] = [r for r in records if r.action == "session.create"]
    assert signed.actor == "ann" and json.loads(signed.details)["key_id"] == site.key_id
    everything = repr(records)
    assert token not in everything and csrf not in everything
    assert session_id_of(token) not in everything


def test_a_configured_cors_origin_may_use_the_cookie(graft_factory: Any, live_server: Any) -> None:
    site = anyio.run(
        lambda: _site(graft_factory, live_server, cors_origins=["https://app.example.com"])
    )
    token = cookies(site.sign_in())["graft_session"]["value"]
    allowed = with_cookie(token, origin="https://app.example.com")
    assert site.call("GET", "/v1/models", headers=allowed).status_code == 200
    preflight = site.call(
        "OPTIONS",
        "/v1/chat/completions",
        headers={
            "origin": "https://app.example.com",
            "access-control-request-method": "POST",
            "access-control-request-headers": "x-csrf-token",
        },
    )
    assert "x-csrf-token" in preflight.headers["access-control-allow-headers"].lower()


def test_signing_out_ends_the_session_and_expires_the_cookies(site: Site) -> None:
    signed_in = site.sign_in()
    token, csrf = cookies(signed_in)["graft_session"]["value"], signed_in.json()["csrf_token"]
    other = cookies(site.sign_in())["graft_session"]["value"]
    # Signing out is unsafe too: a foreign page cannot sign the user out.
    assert site.call("DELETE", "/v1/auth/session", headers=with_cookie(token)).status_code == 403
    out = site.call("DELETE", "/v1/auth/session", headers=with_cookie(token, csrf))
    assert out.status_code == 200 and out.json()["ended"] == 1
    expired = cookies(out)
    assert {name: c["max-age"] for name, c in expired.items()} == {
        "graft_session": "0",
        "graft_csrf": "0",
    }
    assert all(c["value"] == "" for c in expired.values())
    refused = site.call("GET", "/v1/models", headers=with_cookie(token))
    assert refused.status_code == 401
    assert site.call("GET", "/v1/models", headers=with_cookie(other)).status_code == 200
    everywhere = site.call(
        "DELETE", "/v1/auth/session?everywhere=true", headers={"x-api-key": site.key}
    )
    assert everywhere.json()["ended"] == 1
    assert site.call("GET", "/v1/models", headers=with_cookie(other)).status_code == 401
    assert [r.actor for r in site.audit() if r.action == "session.delete"] == ["ann", "ann"]


def test_revoking_the_key_or_disabling_the_user_ends_the_session(site: Site) -> None:
    token = cookies(site.sign_in())["graft_session"]["value"]
    store = site.graft.store
    anyio.run(store.set_user_disabled, "acme", "ann", True)
    assert site.call("GET", "/v1/models", headers=with_cookie(token)).status_code == 401
    anyio.run(store.set_user_disabled, "acme", "ann", False)
    assert site.call("GET", "/v1/models", headers=with_cookie(token)).status_code == 200
    anyio.run(store.revoke_key, site.key_id)
    assert site.call("GET", "/v1/models", headers=with_cookie(token)).status_code == 401


def test_an_expired_session_is_refused(site: Site) -> None:
    token = "t" * 43
    past = datetime.now(UTC) - timedelta(seconds=1)
    anyio.run(
        lambda: site.graft.store.create_session(
            session_id=session_id_of(token), key_id=site.key_id, expires_at=past
        )
    )
    refused = site.call("GET", "/v1/models", headers=with_cookie(token))
    assert refused.status_code == 401


def test_only_a_users_key_signs_in(graft_factory: Any, live_server: Any) -> None:
    site = anyio.run(lambda: _site(graft_factory, live_server, auth={"api_keys": FILE_KEYS}))
    file_key = site.call("POST", "/v1/auth/session", headers={"x-api-key": "sk-file"})
    assert file_key.status_code == 400 and file_key.json()["error"]["code"] == "key_required"
    signed_in = site.sign_in()
    token, csrf = cookies(signed_in)["graft_session"]["value"], signed_in.json()["csrf_token"]
    by_cookie = site.call("POST", "/v1/auth/session", headers=with_cookie(token, csrf))
    assert by_cookie.status_code == 400
    assert site.call("POST", "/v1/auth/session").status_code == 401


def test_single_user_mode_ignores_a_stale_cookie(graft_factory: Any, live_server: Any) -> None:
    server = live_server(graft_factory(FakeModel("hi")))
    stale = with_cookie("s" * 43)
    assert httpx.get(f"{server.url}/v1/models", headers=stale).status_code == 200
    response = httpx.post(f"{server.url}/v1/chat/completions", json=CHAT, headers=stale)
    assert response.status_code == 200

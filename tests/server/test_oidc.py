"""OpenID Connect sign-in over the real server, against a fake issuer on 127.0.0.1.

The fake issuer serves discovery, its JWKS (an RSA key made here), an authorization endpoint
that sends the browser straight back with a code, and a token endpoint that checks the
client secret and the PKCE verifier and answers an ID token signed with that key, carrying
the nonce it was given. Each test can spoil one thing about the ID token.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx
import pytest
from fastapi import FastAPI, Request
from joserfc import jwt
from joserfc.jwk import RSAKey
from starlette.responses import JSONResponse, RedirectResponse
from tests.conftest import LiveServer

from graft import oidc as graft_oidc
from graft.config import AuthSettings
from graft.errors import ConfigError
from graft.oidc import IssuerError, OidcClient
from graft.testing import FakeModel

CLIENT_ID = "graft-web"
CLIENT_SECRET = "s3cret-of-the-client"


class Issuer:
    """A fake OpenID provider; ``claims`` and ``signing_key`` spoil the next ID tokens."""

    def __init__(self) -> None:
        self.key = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
        self.signing_key = self.key
        self.claims: dict[str, Any] = {}
        self.user = "ann"
        self.codes: dict[str, dict[str, str]] = {}
        self.token_requests: list[dict[str, Any]] = []
        self.app = FastAPI()
        self.server = LiveServer(self.app)
        self.url = f"{self.server.url}/realms/acme"
        self._routes()

    def _routes(self) -> None:
        app = self.app

        @app.get("/realms/acme/.well-known/openid-configuration")
        async def discovery() -> dict[str, Any]:
            return {
                "issuer": self.url,
                "authorization_endpoint": f"{self.url}/auth",
                "token_endpoint": f"{self.url}/token",
                "jwks_uri": f"{self.url}/certs",
                "id_token_signing_alg_values_supported": ["RS256"],
            }

        @app.get("/realms/acme/certs")
        async def certs() -> dict[str, Any]:
            return {"keys": [self.key.as_dict(private=False)]}

        @app.get("/realms/acme/auth")
        async def authorize(request: Request) -> RedirectResponse:
            query = request.query_params
            assert query["client_id"] == CLIENT_ID and query["response_type"] == "code"
            assert query["code_challenge_method"] == "S256"
            code = secrets.token_urlsafe(16)
            self.codes[code] = dict(query)
            target = f"{query['redirect_uri']}?{urlencode({'code': code, 'state': query['state']})}"
            return RedirectResponse(target, status_code=302)

        @app.post("/realms/acme/token")
        async def token(request: Request) -> JSONResponse:
            form = {k: v[0] for k, v in parse_qs((await request.body()).decode()).items()}
            self.token_requests.append({"form": form, "auth": request.headers.get("authorization")})
            basic = base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
            started = self.codes.pop(str(form.get("code")), None)
            if started is None or request.headers.get("authorization") != f"Basic {basic}":
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            digest = hashlib.sha256(str(form["code_verifier"]).encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != started["code_challenge"]:
                return JSONResponse({"error": "invalid_grant"}, status_code=400)
            assert form["redirect_uri"] == started["redirect_uri"]
            now = int(time.time())
            claims = {
                "iss": self.url,
                "aud": CLIENT_ID,
                "sub": f"sub-{self.user}",
                "iat": now,
                "exp": now + 300,
                "nonce": started["nonce"],
                "preferred_username": self.user,
                "groups": ["hr", "staff"],
            } | self.claims
            claims = {name: value for name, value in claims.items() if value is not None}
            id_token = jwt.encode(
                {"alg": "RS256", "kid": self.signing_key.kid}, claims, self.signing_key
            )
            return JSONResponse(
                {"access_token": "at", "token_type": "Bearer", "id_token": id_token}
            )


@pytest.fixture
def issuer() -> Iterator[Issuer]:
    fake = Issuer()
    with fake.server:
        yield fake


class Site:
    """A live graft that signs in at ``issuer``, with ann (builder and user) in the store."""

    def __init__(self, server: Any, graft: Any) -> None:
        self.url = server.url
        self.graft = graft

    def sign_in(self, browser: httpx.Client) -> httpx.Response:
        """Go through the whole flow; the answer of graft's callback."""
        start = browser.get(f"{self.url}/v1/auth/oidc/login")
        assert start.status_code == 302, start.text
        at_issuer = browser.get(start.headers["location"])
        assert at_issuer.status_code == 302, at_issuer.text
        return browser.get(at_issuer.headers["location"])

    def audit(self) -> list[Any]:
        return list(anyio.run(self.graft.store.list_audit, None, 1000))


async def _site(graft_factory: Any, live_server: Any, issuer: Issuer, **auth: Any) -> Site:
    settings = {
        "oidc_issuer": issuer.url,
        "oidc_client_id": CLIENT_ID,
        "oidc_client_secret": CLIENT_SECRET,
    } | auth
    graft = graft_factory(FakeModel(*["hi"] * 5), auth=settings)
    await graft.store.create_user(
        tenant="default", name="ann", roles=["builder", "user"], groups=["eng"]
    )
    return Site(live_server(graft), graft)


@pytest.fixture
async def site(graft_factory: Any, live_server: Any, issuer: Issuer) -> Site:
    return await _site(graft_factory, live_server, issuer)


def test_the_whole_flow_ends_with_session_cookies_that_authenticate(
    site: Site, issuer: Issuer
) -> None:
    with httpx.Client() as browser:
        start = browser.get(f"{site.url}/v1/auth/oidc/login")
        assert start.status_code == 302
        location = urlsplit(start.headers["location"])
        assert f"{location.scheme}://{location.netloc}{location.path}" == f"{issuer.url}/auth"
        query = parse_qs(location.query)
        assert query["scope"] == ["openid email profile"]
        assert query["redirect_uri"] == [f"{site.url}/v1/auth/oidc/callback"]
        state_cookie = start.headers["set-cookie"]
        assert "graft_oidc=" in state_cookie and "SameSite=Lax" in state_cookie
        assert "HttpOnly" in state_cookie
        back = browser.get(browser.get(start.headers["location"]).headers["location"])

        assert back.status_code == 302, back.text
        assert back.headers["location"] == "/"
        set_cookies = back.headers.get_list("set-cookie")
        session = next(c for c in set_cookies if c.startswith("graft_session="))
        assert "HttpOnly" in session and "SameSite=Strict" in session
        assert any(c.startswith("graft_csrf=") for c in set_cookies)
        assert any(c.startswith("graft_oidc=;") and "Max-Age=0" in c for c in set_cookies)

        whoami = browser.get(f"{site.url}/v1/auth/session")
        assert whoami.status_code == 200, whoami.text
        body = whoami.json()
        assert (body["user"], body["tenant"]) == ("ann", "default")
        assert body["roles"] == ["builder", "user"] and body["csrf_token"]
        # A second sign-in reuses ann's oidc key.
        assert site.sign_in(browser).status_code == 302

    (request, _) = issuer.token_requests
    assert request["form"]["code_verifier"] and "client_secret" not in request["form"]
    keys = anyio.run(site.graft.store.list_keys, "default", "ann")
    assert [(k.name, k.roles) for k in keys] == [("oidc", ("builder", "user"))]
    created = [r for r in site.audit() if r.action == "session.create"]
    assert [json.loads(r.details)["via"] for r in created] == ["oidc", "oidc"]
    assert created[0].actor == "ann" and created[0].outcome == "ok"
    assert CLIENT_SECRET not in repr(site.graft.settings)


def test_a_rotated_signing_key_is_read_again(site: Site, issuer: Issuer) -> None:
    with httpx.Client() as browser:
        assert site.sign_in(browser).status_code == 302  # the JWKS is cached now
        issuer.key = issuer.signing_key = RSAKey.generate_key(
            2048, parameters={"kid": "k2"}, private=True
        )
        assert site.sign_in(browser).status_code == 302


def test_a_callback_with_a_wrong_or_foreign_state_is_refused(site: Site) -> None:
    with httpx.Client() as browser:
        start = browser.get(f"{site.url}/v1/auth/oidc/login")
        at_issuer = browser.get(start.headers["location"])
        callback = urlsplit(at_issuer.headers["location"])
        code = parse_qs(callback.query)["code"][0]
        wrong = browser.get(
            f"{site.url}/v1/auth/oidc/callback", params={"code": code, "state": "x"}
        )
        assert wrong.status_code == 400
        assert wrong.json()["error"]["code"] == "oidc_state"
    # The right URL in another browser (no state cookie) signs nobody in.
    with httpx.Client() as other:
        foreign = other.get(at_issuer.headers["location"])
        assert foreign.status_code == 400
        assert "graft_session" not in foreign.headers.get("set-cookie", "")


@pytest.mark.parametrize(
    ("spoil", "why"),
    [
        ({"aud": "someone-else"}, "aud"),
        ({"iss": "https://evil.example.com"}, "iss"),
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "exp"),
        ({"nonce": "not-the-nonce"}, "nonce"),
        ({"nonce": None}, "nonce"),
        ({"signature": True}, "signature"),
    ],
)
def test_an_id_token_that_does_not_hold_is_refused(
    site: Site, issuer: Issuer, spoil: dict[str, Any], why: str
) -> None:
    if spoil.pop("signature", False):
        issuer.signing_key = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
    issuer.claims = spoil
    with httpx.Client() as browser:
        refused = site.sign_in(browser)
        assert refused.status_code == 401, (why, refused.text)
        assert refused.json()["error"]["code"] == "oidc_refused"
        assert "graft_session" not in refused.headers.get("set-cookie", "")
        assert browser.get(f"{site.url}/v1/auth/session").status_code == 401
    denied = [r for r in site.audit() if r.action == "session.create"]
    assert [(r.outcome, json.loads(r.details)["via"]) for r in denied] == [("denied", "oidc")]


def test_an_unknown_user_is_refused_unless_users_may_be_created(
    graft_factory: Any, live_server: Any, issuer: Issuer, site: Site
) -> None:
    issuer.user = "bob"
    with httpx.Client() as browser:
        refused = site.sign_in(browser)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "oidc_unknown_user"
    with pytest.raises(Exception, match="bob"):
        anyio.run(site.graft.store.get_user, "default", "bob")

    creating = anyio.run(_create_site, graft_factory, live_server, issuer)
    with httpx.Client() as browser:
        assert creating.sign_in(browser).status_code == 302
        whoami = browser.get(f"{creating.url}/v1/auth/session").json()
        assert (whoami["user"], whoami["tenant"], whoami["roles"]) == ("bob", "acme", ["user"])
    bob = anyio.run(creating.graft.store.get_user, "acme", "bob")
    assert bob.roles == ("user",) and bob.groups == ("hr", "staff")


async def _create_site(graft_factory: Any, live_server: Any, issuer: Issuer) -> Site:
    return await _site(
        graft_factory, live_server, issuer, oidc_create_users=True, oidc_tenant="acme"
    )


def test_the_user_claim_falls_back_to_sub(site: Site, issuer: Issuer) -> None:
    anyio.run(_add_user, site, "sub-carl")
    issuer.user = "carl"
    issuer.claims = {"preferred_username": None}
    with httpx.Client() as browser:
        assert site.sign_in(browser).status_code == 302
        assert browser.get(f"{site.url}/v1/auth/session").json()["user"] == "sub-carl"


async def _add_user(site: Site, name: str) -> None:
    await site.graft.store.create_user(tenant="default", name=name, roles=["user"], groups=[])


def test_a_disabled_user_is_refused_and_disabling_ends_the_session(site: Site) -> None:
    with httpx.Client() as browser:
        assert site.sign_in(browser).status_code == 302
        assert browser.get(f"{site.url}/v1/auth/session").status_code == 200
        anyio.run(site.graft.store.set_user_disabled, "default", "ann", True)
        assert browser.get(f"{site.url}/v1/auth/session").status_code == 401
        refused = site.sign_in(browser)
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "user_disabled"


def test_without_an_issuer_the_routes_are_404(graft_factory: Any, live_server: Any) -> None:
    server = live_server(graft_factory(FakeModel("hi")))
    for path in ("/v1/auth/oidc/login", "/v1/auth/oidc/callback?code=c&state=s"):
        response = httpx.get(f"{server.url}{path}")
        assert response.status_code == 404, path
        assert response.json()["error"]["code"] == "oidc_off"


def test_an_issuer_url_needs_a_client_id_and_a_file_holds_no_secret(
    settings_factory: Any, tmp_path: Any
) -> None:
    from graft.config import load_settings
    from graft.errors import ConfigError

    with pytest.raises(ConfigError, match="oidc_client_id"):
        settings_factory(auth={"oidc_issuer": "https://login.example.com"})
    path = tmp_path / "graft.toml"
    path.write_text(
        '[auth]\noidc_issuer = "https://login.example.com/"\noidc_client_id = "c"\n'
        'oidc_client_secret = "plain"\n'
    )
    with pytest.raises(ConfigError, match="oidc_client_secret"):
        load_settings(path)


async def test_the_discovery_document_must_name_the_issuer(
    settings_factory: Any, issuer: Issuer
) -> None:
    settings = settings_factory(
        auth={"oidc_issuer": issuer.url + "/other", "oidc_client_id": CLIENT_ID}
    )
    client = OidcClient(settings.auth, timeout=5)
    with pytest.raises(IssuerError):
        await client.begin("http://127.0.0.1/cb")


def test_without_the_oidc_extra_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(graft_oidc, "HAVE_OIDC_EXTRA", False)
    settings = AuthSettings(oidc_issuer="https://login.example.com", oidc_client_id="graft")
    with pytest.raises(ConfigError, match=r'pip install "graft\[oidc\]"'):
        OidcClient(settings)

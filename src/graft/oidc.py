"""OpenID Connect sign-in: the authorization-code flow with PKCE, run by the server.

Optional (the ``oidc`` extra, ``authlib``): with ``auth.oidc_issuer`` set, a browser may
sign in at the issuer instead of with an API key (``graft.server.oidc`` has the routes).
``OidcClient`` reads the issuer's ``/.well-known/openid-configuration`` and JWKS (cached for
``METADATA_SECONDS``), starts a sign-in (``begin``: state, nonce and PKCE verifier) and
finishes it (``finish``: the code exchanged at the token endpoint with the client secret and
the verifier, the ID token checked: RS/ES/PS signature against the JWKS, ``iss``, ``aud``,
``exp``, ``nonce``). The JOSE work is ``joserfc``, authlib's own JOSE library, which its
``authlib.jose`` now defers to (and warns about); PKCE is authlib's.

The state, nonce and verifier of a started sign-in stay in this process's memory, keyed by
the state, for ``PENDING_SECONDS``; the browser holds only the state (in a cookie that binds
the callback to the browser that started it, and in the URL). Nothing secret ever reaches
the browser, and no signing key is needed; the price is that with several workers the
callback must reach the worker that started the sign-in (sticky sessions), or the sign-in
is refused and starts again.

The ID token names a user (``oidc_user_claim``, else ``sub``) in ``oidc_tenant``. A session
needs a key in the store (``graft.sessions``): an OIDC session hangs on the user's ``oidc``
key, a key like any other but whose secret nobody ever held, made at the first sign-in with
the user's roles (and again when those change). Revoking it ends every OIDC session of the
user, as revoking a key ends its sessions.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

try:  # the `oidc` extra: graft runs without it until oidc_issuer is set
    from authlib.oauth2.rfc7636 import create_s256_code_challenge
    from joserfc import jwt
    from joserfc.errors import InvalidKeyIdError, JoseError
    from joserfc.jwk import KeySet
except ImportError:
    HAVE_OIDC_EXTRA = False
else:
    HAVE_OIDC_EXTRA = True

from graft.config import AuthSettings
from graft.errors import (
    AuthenticationError,
    ConfigError,
    GraftError,
    InvalidRequest,
    NotFound,
    PermissionDenied,
)
from graft.identity import hash_key
from graft.store.base import Store, User

__all__ = [
    "ID_TOKEN_ALGORITHMS",
    "METADATA_SECONDS",
    "OIDC_KEY_NAME",
    "PENDING_SECONDS",
    "IssuerError",
    "OidcClient",
    "oidc_key_for",
    "user_for_claims",
]

PENDING_SECONDS = 600
"""How long a started sign-in may take at the issuer."""
METADATA_SECONDS = 3600
"""How long the issuer's discovery document and JWKS are cached."""
ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384"]
"""Signatures accepted on an ID token: public-key ones only (never ``none`` or HMAC)."""
OIDC_KEY_NAME = "oidc"
"""The name of the key that a user's OIDC sessions are stored against."""
LEEWAY_SECONDS = 60
"""Clock skew allowed on ``exp`` and ``iat``."""
_MAX_PENDING = 10_000


class IssuerError(GraftError):
    """The issuer could not be reached or answered something unusable."""

    status = 502
    code = "oidc_issuer_error"


@dataclass(frozen=True, slots=True)
class _Pending:
    """A started sign-in: what the callback needs, kept here and never sent to the browser."""

    nonce: str
    verifier: str
    redirect_uri: str
    expires: float


class OidcClient:
    """One issuer's client: discovery, starting a sign-in, and checking its outcome."""

    def __init__(self, settings: AuthSettings, *, timeout: float = 10.0) -> None:
        if not settings.oidc_issuer:
            raise NotFound("OpenID Connect sign-in is not configured", code="oidc_off")
        if not HAVE_OIDC_EXTRA:
            raise ConfigError('OpenID Connect sign-in needs: pip install "graft[oidc]"')
        self.settings = settings
        self.issuer = settings.oidc_issuer
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 5.0))
        self._pending: dict[str, _Pending] = {}
        self._metadata: tuple[float, dict[str, Any]] | None = None
        self._keys: tuple[float, KeySet] | None = None

    async def _get_json(self, url: str) -> dict[str, Any]:
        # Outbound HTTP to a configured host: the network guard of the egress issue must
        # wrap this client once it exists (as it will every other outbound call).
        try:
            async with httpx.AsyncClient(timeout=self.timeout) as http:
                response = await http.get(url, headers={"accept": "application/json"})
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise IssuerError(f"the OIDC issuer did not answer {url}: {exc}") from None
        if not isinstance(document, dict):
            raise IssuerError(f"the OIDC issuer answered {url} with no JSON object")
        return document

    async def metadata(self) -> dict[str, Any]:
        """The issuer's discovery document (cached), checked to name this issuer."""
        if self._metadata is not None and self._metadata[0] > time.monotonic():
            return self._metadata[1]
        document = await self._get_json(f"{self.issuer}/.well-known/openid-configuration")
        if str(document.get("issuer", "")).rstrip("/") != self.issuer:
            raise IssuerError(f"the discovery document is not {self.issuer!r}'s")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(name), str):
                raise IssuerError(f"the discovery document has no {name}")
        self._metadata = (time.monotonic() + METADATA_SECONDS, document)
        return document

    async def keys(self, *, refresh: bool = False) -> KeySet:
        """The issuer's signing keys (cached; ``refresh`` reads them again after a rotation)."""
        if not refresh and self._keys is not None and self._keys[0] > time.monotonic():
            return self._keys[1]
        document = await self._get_json((await self.metadata())["jwks_uri"])
        try:
            keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
        except (JoseError, ValueError, KeyError, TypeError) as exc:
            raise IssuerError(f"the issuer's JWKS is unusable: {exc}") from None
        self._keys = (time.monotonic() + METADATA_SECONDS, keys)
        return keys

    async def begin(self, redirect_uri: str) -> tuple[str, str]:
        """Start a sign-in: the issuer's authorization URL to send the browser to, and the state."""
        endpoint = (await self.metadata())["authorization_endpoint"]
        now = time.monotonic()
        self._pending = {s: p for s, p in self._pending.items() if p.expires > now}
        while len(self._pending) >= _MAX_PENDING:  # bounded memory: the oldest go first
            del self._pending[next(iter(self._pending))]
        state, nonce, verifier = (secrets.token_urlsafe(32) for _ in range(3))
        self._pending[state] = _Pending(nonce, verifier, redirect_uri, now + PENDING_SECONDS)
        query = {
            "response_type": "code",
            "client_id": self.settings.oidc_client_id,
            "redirect_uri": redirect_uri,
            "scope": self.settings.oidc_scopes,
            "state": state,
            "nonce": nonce,
            "code_challenge": create_s256_code_challenge(verifier),
            "code_challenge_method": "S256",
        }
        separator = "&" if "?" in endpoint else "?"
        return f"{endpoint}{separator}{urlencode(query)}", state

    async def finish(self, state: str, code: str) -> dict[str, Any]:
        """Finish the sign-in ``state`` with ``code``: the ID token's checked claims.

        Raises:
            InvalidRequest: (``oidc_state``) the state is unknown, used or expired.
            AuthenticationError: (``oidc_refused``) the issuer refused the code, or the ID
                token is not valid for this client and sign-in.
            IssuerError: The issuer could not be reached.
        """
        pending = self._pending.pop(state, None)
        if pending is None or pending.expires <= time.monotonic():
            raise InvalidRequest(
                "unknown or expired sign-in: start again at /v1/auth/oidc/login",
                code="oidc_state",
            )
        id_token = await self._exchange(code, pending)
        return await self.check_id_token(id_token, pending.nonce)

    async def _exchange(self, code: str, pending: _Pending) -> str:
        """The ID token the token endpoint gives for ``code``."""
        endpoint = (await self.metadata())["token_endpoint"]
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": pending.redirect_uri,
            "code_verifier": pending.verifier,
            "client_id": self.settings.oidc_client_id,
        }
        secret = self.settings.oidc_client_secret
        auth = (  # client_secret_basic, the default method of OIDC
            httpx.BasicAuth(self.settings.oidc_client_id, secret.get_secret_value())
            if secret is not None
            else None
        )
        try:  # the network guard of the egress issue must wrap this client too
            async with httpx.AsyncClient(timeout=self.timeout, auth=auth) as http:
                response = await http.post(
                    endpoint, data=form, headers={"accept": "application/json"}
                )
        except httpx.HTTPError as exc:
            raise IssuerError(f"the OIDC token endpoint did not answer: {exc}") from None
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if response.status_code != 200 or not isinstance(answer, dict):
            error = answer.get("error") if isinstance(answer, dict) else None
            raise AuthenticationError(
                f"the issuer refused the code ({response.status_code} {error or ''})".strip(),
                code="oidc_refused",
            )
        id_token = answer.get("id_token")
        if not isinstance(id_token, str):
            raise AuthenticationError("the issuer sent no ID token", code="oidc_refused")
        return id_token

    async def check_id_token(self, id_token: str, nonce: str) -> dict[str, Any]:
        """The claims of ``id_token`` once its signature, issuer, audience, expiry and nonce hold.

        Raises:
            AuthenticationError: (``oidc_refused``) any of them does not.
        """
        keys = await self.keys()
        try:
            try:
                token = jwt.decode(id_token, keys, algorithms=ID_TOKEN_ALGORITHMS)
            except InvalidKeyIdError:
                # An unknown key id: the issuer may have rotated its keys since we read them.
                token = jwt.decode(
                    id_token, await self.keys(refresh=True), algorithms=ID_TOKEN_ALGORITHMS
                )
            jwt.JWTClaimsRegistry(
                leeway=LEEWAY_SECONDS,
                iss={"essential": True, "value": self.issuer},
                aud={"essential": True, "value": self.settings.oidc_client_id},
                exp={"essential": True},
                sub={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise AuthenticationError(
                f"the ID token is not valid: {exc}", code="oidc_refused"
            ) from None
        return dict(token.claims)


def _user_name(claims: Mapping[str, Any], settings: AuthSettings) -> str:
    """The graft user an ID token names: ``oidc_user_claim``, else ``sub``."""
    name = claims.get(settings.oidc_user_claim) or claims.get("sub")
    if not isinstance(name, str) or not name.strip():
        raise AuthenticationError("the ID token names no user", code="oidc_refused")
    return name.strip()


async def user_for_claims(store: Store, claims: Mapping[str, Any], settings: AuthSettings) -> User:
    """The store's user that the ID token names, created if ``oidc_create_users`` allows.

    A created user gets the role ``user`` and the groups of ``oidc_groups_claim``; an
    existing user keeps the roles and groups the store gives them.

    Raises:
        PermissionDenied: (``oidc_unknown_user``) no such user and none may be created, or
            (``user_disabled``) the user is disabled.
    """
    name = _user_name(claims, settings)
    tenant = settings.oidc_tenant
    try:
        user = await store.get_user(tenant, name)
    except NotFound:
        if not settings.oidc_create_users:
            raise PermissionDenied(
                f"{name!r} is not a user of graft; ask an admin to add them",
                code="oidc_unknown_user",
            ) from None
        groups = claims.get(settings.oidc_groups_claim)
        names = [g for g in groups if isinstance(g, str)] if isinstance(groups, list) else []
        user = await store.create_user(tenant=tenant, name=name, roles=["user"], groups=names)
    if not user.active:
        raise PermissionDenied(f"user {name!r} is disabled", code="user_disabled")
    return user


async def oidc_key_for(store: Store, user: User) -> str:
    """The id of ``user``'s live ``oidc`` key with all their roles, made when there is none.

    Its digest is of random bits that are thrown away: nobody can present this key, it only
    carries the sessions (``graft.sessions.open_session``).
    """
    for key in await store.list_keys(user.tenant, user.name):
        if (
            key.name == OIDC_KEY_NAME
            and key.revoked_at is None
            and sorted(key.roles) == sorted(user.roles)
        ):
            return key.id
    key_id = f"gk_{secrets.token_hex(6)}"
    info = await store.create_key(
        user,
        key_id=key_id,
        sha256=hash_key(secrets.token_urlsafe(32)),
        name=OIDC_KEY_NAME,
        roles=list(user.roles),
        created_by="oidc",
    )
    return info.id

"""A service's credentials on its calls, and the OAuth2 client-credentials token cache.

Bearer tokens and API keys come from the manifest (``graft.services.manifest``). For OAuth2
client credentials, a token is fetched from the token endpoint through the same guarded
client as the call (the endpoint obeys the service's network policy too), cached until
shortly before it expires, and fetched again after a 401. One fetch at a time: calls that
arrive meanwhile wait for its token.

No secret is logged or put in an error: the token endpoint's answer is reduced to its
status and its OAuth ``error`` code.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Final
from urllib.parse import quote_plus

import anyio
import httpx

from graft.errors import ToolError
from graft.services.body import ACCEPT_ENCODING, read_decoded
from graft.services.manifest import (
    ApiKeyAuth,
    BearerAuth,
    OAuth2ClientCredentials,
    ServiceAuth,
)

__all__ = ["Credentials"]

_MAX_TOKEN_ANSWER: Final = 64 * 1024
_DEFAULT_LIFETIME: Final = 300.0
"""Seconds a token without ``expires_in`` is kept."""
_EARLY: Final = 30.0
"""Seconds before its expiry a token is no longer used."""


class Credentials:
    """Adds a service's credentials to a call's headers or query."""

    def __init__(
        self, auth: ServiceAuth, service: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.auth = auth
        self.service = service
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = anyio.Lock()

    @property
    def refreshable(self) -> bool:
        """Whether a 401 may be cured by fetching a new token."""
        return isinstance(self.auth, OAuth2ClientCredentials)

    def secrets(self) -> list[str]:
        """Every secret a call may carry, the current token included (for masking)."""
        auth = self.auth
        found = [self._token] if self._token else []
        if isinstance(auth, BearerAuth):
            found.append(auth.token.get_secret_value())
        elif isinstance(auth, ApiKeyAuth):
            found.append(auth.key.get_secret_value())
        elif isinstance(auth, OAuth2ClientCredentials):
            found.append(auth.client_secret.get_secret_value())
        return found

    def invalidate(self) -> None:
        """Forget the cached token (the service refused it)."""
        self._token, self._expires_at = None, 0.0

    async def apply(
        self, client: httpx.AsyncClient, headers: dict[str, str], query: list[tuple[str, str]]
    ) -> None:
        """Put the credentials into ``headers`` or ``query`` (fetching a token if needed)."""
        auth = self.auth
        if isinstance(auth, BearerAuth):
            headers["Authorization"] = f"Bearer {auth.token.get_secret_value()}"
        elif isinstance(auth, ApiKeyAuth):
            if auth.in_ == "header":
                headers[auth.name] = auth.key.get_secret_value()
            else:
                query.append((auth.name, auth.key.get_secret_value()))
        elif isinstance(auth, OAuth2ClientCredentials):
            headers["Authorization"] = f"Bearer {await self._access_token(client, auth)}"

    async def _access_token(self, client: httpx.AsyncClient, auth: OAuth2ClientCredentials) -> str:
        async with self._lock:
            if self._token is None or self._clock() >= self._expires_at:
                token, lifetime = await self._fetch(client, auth)
                self._token = token
                self._expires_at = self._clock() + max(lifetime - min(_EARLY, lifetime / 10), 0)
            return self._token

    async def _fetch(
        self, client: httpx.AsyncClient, auth: OAuth2ClientCredentials
    ) -> tuple[str, float]:
        form = {"grant_type": "client_credentials"}
        if auth.scope:
            form["scope"] = auth.scope
        secret = auth.client_secret.get_secret_value()
        basic: httpx.BasicAuth | None = None
        if auth.client_auth == "basic":  # RFC 6749 2.3.1: form-encoded, then Basic
            basic = httpx.BasicAuth(quote_plus(auth.client_id), quote_plus(secret))
        else:
            form.update(client_id=auth.client_id, client_secret=secret)
        headers = {"Accept": "application/json", "Accept-Encoding": ACCEPT_ENCODING}
        what = f"service {self.service!r}: the token endpoint"
        try:
            async with client.stream(
                "POST", auth.token_url, data=form, auth=basic, headers=headers
            ) as response:
                answer, _ = await read_decoded(response, _MAX_TOKEN_ANSWER)
        except httpx.HTTPError as exc:
            raise ToolError(f"{what} could not be reached ({type(exc).__name__})") from None
        try:
            data = json.loads(answer)
        except ValueError:
            data = None
        if not response.is_success:
            code = data.get("error") if isinstance(data, dict) else None
            detail = f" ({code})" if isinstance(code, str) and code.isascii() else ""
            raise ToolError(f"{what} answered HTTP {response.status_code}{detail}")
        token = data.get("access_token") if isinstance(data, dict) else None
        kind = str(data.get("token_type", "bearer")) if isinstance(data, dict) else ""
        if not isinstance(token, str) or not token or kind.lower() != "bearer":
            raise ToolError(f"{what} gave no bearer access_token")
        assert isinstance(data, dict)
        lifetime = data.get("expires_in")
        if not isinstance(lifetime, int | float) or isinstance(lifetime, bool) or lifetime <= 0:
            lifetime = _DEFAULT_LIFETIME
        return token, float(lifetime)

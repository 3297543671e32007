"""Authentication at the edge: every HTTP request is authenticated once, before routing.

``Authenticate`` is an ASGI middleware. It asks the ``authenticate`` hooks
(``Graft.authenticate``) who sent the request and puts the ``Principal`` in the request's
state, where routes read it (``request.state.principal``; ``graft.server.deps``). Only the
paths in ``PUBLIC_PATHS`` skip it. Everything else needs credentials, also paths that no
route matches, so an unauthenticated caller cannot map the API by its 404s; a refused request
gets a 401 (or 403) OpenAI-style error before any route runs or any body is read, and an
``auth.failure`` record in the audit log (``auth_failure``): the client's address and, for a
graft key, its public id; never the key. So that a flood of bad requests cannot turn into a
flood of database writes, each client address gets at most ``FAILURE_RECORDS_PER_MINUTE``
such records a minute; the failures past that are counted, and the next record from that
address says how many were not recorded (``FailureThrottle``).
"""

from __future__ import annotations

import time

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from graft import audit
from graft.errors import GraftError
from graft.identity import key_id_of
from graft.runtime import Graft
from graft.server.errors import error_response

__all__ = [
    "FAILURE_RECORDS_PER_MINUTE",
    "PUBLIC_PATHS",
    "PUBLIC_PREFIXES",
    "Authenticate",
    "FailureThrottle",
    "auth_failure",
    "is_public",
]

FAILURE_RECORDS_PER_MINUTE = 30
"""Audit records of refused requests kept per client address and minute."""

PUBLIC_PATHS = frozenset(
    {
        "/healthz",
        "/readyz",
        "/metrics",
        "/openapi.json",
        "/docs",
        "/docs/oauth2-redirect",
        "/redoc",
        "/v1/auth/oidc/login",
        "/v1/auth/oidc/callback",
        "/v1/auth/methods",  # what the sign-in page offers (graft.server.me)
        # The web UI's page and icon (graft.server.static): the login page is part of it.
        "/",
        "/index.html",
        "/favicon.svg",
    }
)
"""Paths served to anyone: liveness and readiness, metrics for the scraper, the API's
description, and OpenID Connect sign-in (``graft.server.oidc``: how a browser without a
session gets one)."""

PUBLIC_PREFIXES = ("/assets/",)
"""Folders served to anyone: the web UI's scripts, styles and images (``graft.server.static``)."""


def is_public(path: str) -> bool:
    """Whether ``path`` is served without credentials.

    A path under ``PUBLIC_PREFIXES`` is public only if no segment starts with a dot, so
    ``/assets/../v1/...`` (routing does not resolve ``..``) is not.
    """
    if path in PUBLIC_PATHS:
        return True
    return path.startswith(PUBLIC_PREFIXES) and "/." not in path and "\\" not in path


class Authenticate:
    """Pure ASGI middleware: the principal of every non-public HTTP request, or a refusal."""

    def __init__(self, app: ASGIApp, graft: Graft) -> None:
        self.app = app
        self.graft = graft
        self.throttle = FailureThrottle()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http" or is_public(scope["path"]):
            await self.app(scope, receive, send)
            return
        presented = Headers(scope=scope)
        try:
            principal = await self.graft.authenticate(presented, scope["method"])
        except GraftError as exc:
            client = scope.get("client")
            suppressed = self.throttle.admit(client[0] if client else "")
            if suppressed is not None:
                event = auth_failure(scope, presented, exc, not_recorded_before=suppressed)
                await audit.record(self.graft.store, event)
            headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
            refusal = error_response(exc.status, exc.message, exc.type, exc.code, headers=headers)
            await refusal(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


def auth_failure(
    scope: Scope, headers: Headers, exc: GraftError, *, not_recorded_before: int = 0
) -> audit.AuditEvent:
    """The audit event of a refused request: who knocked, from where, with which key id."""
    presented = headers.get("authorization", "").partition(" ")[2].strip()
    presented = presented or headers.get("x-api-key", "")
    client = scope.get("client")
    return audit.AuditEvent(
        "auth.failure",
        "anonymous",
        target=scope["path"],
        outcome="denied",
        details={
            "key_id": key_id_of(presented) if presented else None,
            "key_presented": bool(presented),
            "client": client[0] if client else None,
            "method": scope.get("method"),
            "reason": exc.message,
            "code": exc.code,
        }
        | ({"not_recorded_before": not_recorded_before} if not_recorded_before else {}),
    )


class FailureThrottle:
    """At most ``per_minute`` records a minute per client address; counts the rest."""

    def __init__(self, per_minute: int = FAILURE_RECORDS_PER_MINUTE, max_clients: int = 10_000):
        self.per_minute = per_minute
        self.max_clients = max_clients
        self._windows: dict[str, tuple[int, int, int]] = {}
        """Address to (minute, records this minute, failures not recorded since)."""

    def admit(self, client: str, now: float | None = None) -> int | None:
        """``None`` to skip recording; else how many failures went unrecorded before this one."""
        minute = int((time.time() if now is None else now) // 60)
        start, count, skipped = self._windows.get(client, (minute, 0, 0))
        if start != minute:
            start, count = minute, 0
        if count >= self.per_minute:
            self._windows[client] = (start, count, skipped + 1)
            return None
        if len(self._windows) >= self.max_clients and client not in self._windows:
            # Bounded memory: forget the clients of earlier minutes (their counts were small
            # or already reported in a record).
            self._windows = {c: w for c, w in self._windows.items() if w[0] == minute}
        self._windows[client] = (start, count + 1, 0)
        return skipped

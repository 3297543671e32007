"""Authentication at the edge: every HTTP request is authenticated once, before routing.

``Authenticate`` is an ASGI middleware. It asks the ``authenticate`` hooks
(``Graft.authenticate``) who sent the request and puts the ``Principal`` in the request's
state, where routes read it (``request.state.principal``; ``graft.server.deps``). Only the
paths in ``PUBLIC_PATHS`` skip it. Everything else needs credentials, also paths that no
route matches, so an unauthenticated caller cannot map the API by its 404s; a refused request
gets a 401 (or 403) OpenAI-style error before any route runs or any body is read.
"""

from __future__ import annotations

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from graft.errors import GraftError
from graft.runtime import Graft
from graft.server.errors import error_response

__all__ = ["PUBLIC_PATHS", "Authenticate"]

PUBLIC_PATHS = frozenset(
    {"/healthz", "/metrics", "/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}
)
"""Paths served to anyone: liveness, metrics for the scraper, and the API's description."""


class Authenticate:
    """Pure ASGI middleware: the principal of every non-public HTTP request, or a refusal."""

    def __init__(self, app: ASGIApp, graft: Graft) -> None:
        self.app = app
        self.graft = graft

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http" or scope["path"] in PUBLIC_PATHS:
            await self.app(scope, receive, send)
            return
        try:
            principal = await self.graft.authenticate(Headers(scope=scope))
        except GraftError as exc:
            headers = {"www-authenticate": "Bearer"} if exc.status == 401 else None
            refusal = error_response(exc.status, exc.message, exc.type, exc.code, headers=headers)
            await refusal(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)

"""Security headers on every HTTP response, and CORS only for configured origins.

graft serves JSON and event streams to programs, and later a web UI to browsers. Every
response says what it is and how a browser may use it: no MIME sniffing, never inside a
frame (clickjacking), no referrer leaks, a browsing context of its own, and, when served
over HTTPS, "always use HTTPS" (HSTS). Headers an endpoint sets itself are kept.

Cross-origin browser calls are refused unless ``cors_origins`` lists the calling page's
origin: without CORS headers a browser never lets another site's script read graft's
answers, which carry conversations.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SECURITY_HEADERS", "HSTS", "SecurityHeaders", "install_cors"]

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", b"frame-ancestors 'none'"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
)
HSTS = (b"strict-transport-security", b"max-age=31536000")
"""Sent on HTTPS only: a year, this host only (subdomains are the operator's business)."""
_HTTPS_HEADERS = (*SECURITY_HEADERS, HSTS)


class SecurityHeaders:
    """Pure ASGI middleware adding ``SECURITY_HEADERS`` (and HSTS on HTTPS)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = _HTTPS_HEADERS if scope.get("scheme") == "https" else SECURITY_HEADERS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", ()))
                present = {name.lower() for name, _ in headers}
                headers.extend(h for h in extra if h[0] not in present)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_cors(app: FastAPI, origins: list[str]) -> None:
    """Let pages from ``origins`` call the API with their user's credentials."""
    if not origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        allow_headers=["authorization", "content-type", "x-api-key", "x-csrf-token"],
        expose_headers=["x-graft-conversation-id"],
        allow_credentials=True,
        max_age=600,
    )

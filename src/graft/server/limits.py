"""Refusing oversized request bodies before they are buffered.

An ASGI middleware, so it sees the body as it arrives: a ``Content-Length`` over the limit
is refused at once (one within it needs no counting: the server reads exactly that many
bytes), and a chunked body is counted as it streams in and cut off the moment it passes the
limit. Either way the answer is 413 with an OpenAI-style error that names the limit.

One limit holds for every path but those given their own: ``routes`` maps a regular
expression of a path (matched whole) to a limit, for the few routes made to take large
bodies (a document upload, ``graft.server.uploads``). Every other path keeps the small
one, so a large body is refused there before it is read, as before.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graft.server.encode import error_body

__all__ = ["BodySizeLimit"]


class _TooLarge(HTTPException):
    """Raised inside ``receive``; an HTTPException so frameworks re-raise it as it is."""


class BodySizeLimit:
    """Pure ASGI middleware limiting request bodies to ``max_bytes`` (``routes``: their own)."""

    def __init__(
        self, app: ASGIApp, max_bytes: int, routes: Mapping[str, int] | None = None
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.routes = [(re.compile(path), limit) for path, limit in (routes or {}).items()]

    def limit_for(self, path: str) -> int:
        """The limit of a request to ``path``."""
        for pattern, limit in self.routes:
            if pattern.fullmatch(path):
                return limit
        return self.max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    break  # the server refuses a malformed length itself
                if length > limit:
                    await self._refuse(send, limit)
                else:
                    # The server reads exactly this many bytes: nothing left to count.
                    await self.app(scope, receive, send)
                return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge(413, _message(limit))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._refuse(send, limit)

    async def _refuse(self, send: Send, limit: int) -> None:
        body = json.dumps(
            error_body(_message(limit), "invalid_request_error", "payload_too_large")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"connection", b"close"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _message(limit: int) -> str:
    size = f" ({limit / (1024 * 1024):g} MiB)" if limit >= 1024 * 1024 else ""
    return f"request body is larger than the limit of {limit} bytes{size}"

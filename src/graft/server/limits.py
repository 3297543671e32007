"""Refusing oversized request bodies before they are buffered.

An ASGI middleware, so it sees the body as it arrives: a ``Content-Length`` over the limit
is refused at once (one within it needs no counting: the server reads exactly that many
bytes), and a chunked body is counted as it streams in and cut off the moment it passes the
limit. Either way the answer is 413 with an OpenAI-style error.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graft.server.encode import error_body

__all__ = ["BodySizeLimit"]


class _TooLarge(HTTPException):
    """Raised inside ``receive``; an HTTPException so frameworks re-raise it as it is."""


class BodySizeLimit:
    """Pure ASGI middleware limiting request bodies to ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    length = int(value)
                except ValueError:
                    break  # the server refuses a malformed length itself
                if length > self.max_bytes:
                    await self._refuse(send)
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
                if received > self.max_bytes:
                    raise _TooLarge(413, self._message())
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
                await self._refuse(send)

    def _message(self) -> str:
        return f"request body is larger than the limit of {self.max_bytes} bytes"

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(
            error_body(self._message(), "invalid_request_error", "payload_too_large")
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

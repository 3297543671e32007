"""Request ids: every HTTP request has one, in its response and in its log lines.

A client or proxy may send ``X-Request-ID`` (letters, digits, ``.``, ``_``, ``-``, ``:``; at
most 128 characters); anything else, or nothing, gets a new random id. The id is returned in
the ``X-Request-ID`` response header and set in ``graft.logs.REQUEST_ID`` for the request's
duration, so the JSON log lines (``graft.logs``) of one request can be found together.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from graft.logs import REQUEST_ID

__all__ = ["HEADER", "RequestId"]

HEADER = b"x-request-id"
_VALID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


def request_id_of(scope: Scope) -> str:
    """The caller's request id when it is well-formed, else a new one."""
    for name, value in scope.get("headers", ()):
        if name == HEADER and _VALID.fullmatch(value):
            return bytes(value).decode("ascii")
    return uuid.uuid4().hex


class RequestId:
    """Pure ASGI middleware: a request id per HTTP request and WebSocket connection."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI connection."""
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = request_id_of(scope)
        header = (HEADER, request_id.encode("ascii"))

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [h for h in message.get("headers", ()) if h[0].lower() != HEADER]
                message = {**message, "headers": [*headers, header]}
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)

"""``EventStream``: the server-sent-events response of a streamed chat turn.

Starlette's ``StreamingResponse`` watches for a client that goes away by running the body
and a ``receive()`` listener in an anyio task group, for every stream (uvicorn speaks ASGI
2.3, so it takes that path). The pass-through benchmark found that machinery to be a tenth
of the CPU of a whole streamed turn. ``EventStream`` keeps the behaviour for less: a
``DisconnectWatch`` (one plain asyncio task, started only if the stream lasts) waits for
``http.disconnect`` and, if it comes first, cancels an anyio cancel scope around the body;
so does a cancel request (``graft.streams``, from any worker).
Cancelling through a scope (not ``Task.cancel``) matters: the turn stores its outcome under
a shielded scope, and a scope's cancellation respects the shield.

The response ends with the chunk that carries ``data: [DONE]``, before the chunks' iterator
is exhausted: what the turn does after its last event (storing its result, see
``graft.store.pending``) runs after the client has the last byte, not before.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Mapping

import anyio
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from graft.server.disconnect import DisconnectWatch
from graft.server.encode import END_OF_STREAM
from graft.streams import StreamWatch

__all__ = ["EventStream"]

log = logging.getLogger(__name__)

_CANCELLED = (
    b'data: {"error":{"message":"the answer was cancelled","type":"cancelled",'
    b'"code":"cancelled"}}\n\n' + END_OF_STREAM
)
"""The end of a stream stopped by a cancel request (``graft.streams``)."""


class EventStream(Response):
    """Send each ``bytes`` of ``chunks`` as it comes; stop when the client disconnects."""

    media_type = "text/event-stream"

    def __init__(
        self,
        chunks: AsyncIterator[bytes],
        headers: Mapping[str, str],
        watch: StreamWatch | None = None,
    ) -> None:
        self.chunks = chunks
        self.watch = watch
        """Registers the stream so a cancel request (any worker) stops it (``graft.streams``)."""
        self.status_code = 200
        self.background = None
        self.init_headers(headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Stream the chunks; an early disconnect cancels the rest, including the turn."""
        ended = stopped = False
        cancel_scope = anyio.CancelScope()
        disconnect = DisconnectWatch(receive, cancel_scope.cancel)
        try:
            with cancel_scope:

                def on_cancel() -> None:  # a cancel request: the client is still there
                    nonlocal stopped
                    stopped = True
                    cancel_scope.cancel()

                await send(
                    {"type": "http.response.start", "status": 200, "headers": self.raw_headers}
                )
                if self.watch is not None:
                    await self.watch.start(on_cancel)
                async for chunk in self.chunks:
                    if ended:
                        log.warning("dropped %d bytes sent after the end of a stream", len(chunk))
                        continue
                    ended = chunk.endswith(END_OF_STREAM)
                    if ended:  # from here on a disconnect is the client being done
                        disconnect.armed = False
                    message = {"type": "http.response.body", "body": chunk, "more_body": not ended}
                    await send(message)
                if not ended:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                disconnect.armed = False
            if stopped and not ended and not disconnect.gone:  # tell the client, then end
                await send({"type": "http.response.body", "body": _CANCELLED, "more_body": False})
        finally:
            disconnect.close()
            if self.watch is not None:
                with anyio.CancelScope(shield=True):
                    await self.watch.stop()
            # Outside the cancelled scope: a stream cut short still runs its cleanup now
            # (the turn is stored as failed) instead of whenever it is garbage-collected.
            aclose = getattr(self.chunks, "aclose", None)
            if aclose is not None:
                await aclose()

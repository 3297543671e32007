"""``DisconnectWatch``: noticing that an HTTP client went away, for what it costs.

A chat turn must stop (and close its upstream request) when its client disconnects, which
only a pending ``receive()`` can tell: an asyncio task waiting for ``http.disconnect``.
Made and cancelled for every request, that task was a visible share of a short
pass-through request's CPU (the task, the wait inside uvicorn's ``receive``, the
cancellation), while most answers are complete long before a client could give up on them.
So the wait starts ``WATCH_AFTER`` seconds into the request, from a timer that costs next to
nothing to cancel: a client that leaves earlier is noticed at that moment, well inside the
one second within which graft promises to close the upstream request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from starlette.types import Receive

__all__ = ["WATCH_AFTER", "DisconnectWatch"]

WATCH_AFTER: Final = 0.05
"""Seconds into a request before its client's going away is watched for."""


class DisconnectWatch:
    """Calls ``on_disconnect`` once the client has gone away, until ``close``.

    Args:
        receive: The request's ASGI ``receive`` (its body already read).
        on_disconnect: Called on the event loop when ``http.disconnect`` arrives.
        after: Seconds before the watch starts.
    """

    __slots__ = ("_on_disconnect", "_receive", "_task", "_timer", "armed")

    def __init__(
        self, receive: Receive, on_disconnect: Callable[[], None], after: float = WATCH_AFTER
    ) -> None:
        self._receive = receive
        self._on_disconnect = on_disconnect
        self._task: asyncio.Future[None] | None = None
        self.armed = True
        """Whether a disconnect still calls ``on_disconnect`` (off: the client may leave)."""
        self._timer: asyncio.TimerHandle | None = asyncio.get_running_loop().call_later(
            after, self._start
        )

    @property
    def gone(self) -> bool:
        """Whether the client has been seen to go away."""
        task = self._task
        return task is not None and task.done() and not task.cancelled() and not task.exception()

    def _start(self) -> None:
        self._timer = None
        self._task = asyncio.ensure_future(_disconnected(self._receive))
        self._task.add_done_callback(self._done)

    def _done(self, task: asyncio.Future[None]) -> None:
        if self.armed and not task.cancelled() and task.exception() is None:
            self._on_disconnect()

    def close(self) -> None:
        """Stop watching (a wait already started takes nothing from ``receive``'s queue)."""
        self.armed = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()


async def _disconnected(receive: Receive) -> None:
    """Return once the client has gone away (the request body was read before)."""
    while (await receive())["type"] != "http.disconnect":
        pass

"""``RunningStreams``: the streamed answers running now, so that a client can cancel one.

A client stops a streamed answer by closing the connection; one that cannot (a browser tab
that lost the stream's handle, another device, a load balancer that keeps the connection)
sends ``POST /v1/conversations/{id}/cancel`` (``graft.server.cancel``). That request may
reach any worker, while the stream runs on one: each stream registers itself here under its
owner and conversation, with the function that stops it (``EventStream`` cancels its scope,
as a disconnect does, and the turn is stored as interrupted).

Without Redis the registry is this process's dict. With ``graft.coordination`` on Redis a
counter per stream key tells every worker that a stream runs, and a cancel is published:
the worker running it stops it. Only the owner (tenant and user) of a conversation can
cancel its streams; to anyone else none is running.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from graft.context import Principal
from graft.coordination import Coordination

__all__ = ["RunningStreams", "StreamWatch"]

_TOPIC = "cancel"
_TTL_S = 900.0
"""Seconds a stream's mark lives after it started (a worker that crashed leaves it behind)."""


class StreamWatch:
    """One stream's registration: ``start`` it with its stop function, ``stop`` it at the end."""

    def __init__(self, streams: RunningStreams, key: str) -> None:
        self._streams = streams
        self.key = key
        self._cancel: Callable[[], None] | None = None

    async def start(self, cancel: Callable[[], None]) -> None:
        """The stream runs; ``cancel`` stops it."""
        self._cancel = cancel
        await self._streams._add(self.key, cancel)

    async def stop(self) -> None:
        """The stream ended, however it ended."""
        if self._cancel is not None:
            await self._streams._remove(self.key, self._cancel)
            self._cancel = None


class RunningStreams:
    """The streams of this process, and (shared) whether one runs on any worker."""

    def __init__(self, coordination: Coordination | None = None) -> None:
        self._coordination = coordination if coordination is not None else Coordination()
        self._local: dict[str, list[Callable[[], None]]] = {}
        if self._coordination.shared:
            self._coordination.subscribe(_TOPIC, self._on_cancel)

    def watch(self, principal: Principal, conversation_id: str) -> StreamWatch:
        """A registration for a stream of ``principal``'s conversation."""
        return StreamWatch(self, _key(principal, conversation_id))

    async def cancel(self, principal: Principal, conversation_id: str) -> bool:
        """Stop the streams of that conversation on every worker; whether one was running."""
        key = _key(principal, conversation_id)
        if not self._coordination.shared:
            return self._stop(key)
        if int(await self._coordination.get(_mark(key)) or 0) <= 0:
            return False
        await self._coordination.publish(_TOPIC, {"key": key})
        return True

    async def _add(self, key: str, cancel: Callable[[], None]) -> None:
        self._local.setdefault(key, []).append(cancel)
        if self._coordination.shared:
            await self._coordination.add(_mark(key), 1, _TTL_S)

    async def _remove(self, key: str, cancel: Callable[[], None]) -> None:
        running = self._local.get(key, [])
        if cancel in running:
            running.remove(cancel)
        if not running:
            self._local.pop(key, None)
        if self._coordination.shared:
            await self._coordination.add(_mark(key), -1, _TTL_S)

    def _stop(self, key: str) -> bool:
        running = self._local.get(key, [])
        for cancel in list(running):
            cancel()
        return bool(running)

    def _on_cancel(self, message: dict[str, Any]) -> None:
        self._stop(str(message.get("key")))


def _key(principal: Principal, conversation_id: str) -> str:
    tenant, user = principal.tenant, principal.user_id
    return f"{len(tenant)}:{tenant}:{len(user)}:{user}:{conversation_id}"


def _mark(key: str) -> str:
    return f"stream:{key}"

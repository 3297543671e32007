"""``PendingTurns``: turns that have answered but are still being stored.

A turn's answer goes out before its result is written: the client has its last byte while
the assistant message, tool runs and usage are still on their way to the database (the
pass-through benchmark found that write to be a third of what graft added to a request).
The user's message is never in this window: it is stored before the model is called.

What keeps that invisible is this barrier: ``run_turn`` marks a conversation as pending
(``answered``) before the turn's last event goes out and clears it (``stored``) once
``finish_turn`` returned; anything that reads conversations (the next turn's history, the
conversation routes, exports) waits for the pending turns it could see first. A client that
sends its next message, or reads the conversation, the moment it has the answer therefore
sees the answer stored.

With several workers (``graft.coordination`` on Redis) the mark is also a counter per
conversation in Redis, and ``stored`` publishes that the conversation's write is done: a
reader of that conversation on another worker waits for it too (at most ``SHARED_WAIT_S``,
for a worker that died between answering and storing). Waiting for *every* pending turn
(``wait()``, used by listings and exports) covers this worker's turns only.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from graft.coordination import Coordination

__all__ = ["SHARED_WAIT_S", "PendingTurns"]

log = logging.getLogger(__name__)

_TOPIC = "stored"
SHARED_WAIT_S = 10.0
"""The longest a reader waits for another worker's turn to be stored."""


class PendingTurns:
    """Counts the turns per conversation whose answer went out before they were stored."""

    def __init__(self, coordination: Coordination | None = None) -> None:
        self._pending: dict[str, tuple[int, asyncio.Event]] = {}
        self._coordination = coordination if coordination is not None else Coordination()
        self._remote: dict[str, asyncio.Event] = {}
        """Readers here waiting for another worker's write, by conversation."""
        if self._coordination.shared:
            self._coordination.subscribe(_TOPIC, self._on_stored)

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, conversation_id: str) -> None:
        """A turn of this conversation is about to answer; its write comes after."""
        count, stored = self._pending.get(conversation_id, (0, None))
        self._pending[conversation_id] = (count + 1, stored or asyncio.Event())

    def done(self, conversation_id: str) -> None:
        """That turn is stored (or its write failed): readers may go on."""
        count, stored = self._pending[conversation_id]
        if count > 1:
            self._pending[conversation_id] = (count - 1, stored)
            return
        del self._pending[conversation_id]
        stored.set()

    async def answered(self, conversation_id: str) -> None:
        """``add``, and tell the other workers."""
        self.add(conversation_id)
        if self._coordination.shared:
            try:
                await self._coordination.add(_key(conversation_id), 1, SHARED_WAIT_S)
            except Exception as exc:  # the other workers' readers just do not wait
                log.warning("could not share a pending turn: %s", exc)

    async def stored(self, conversation_id: str) -> None:
        """``done``, and tell the other workers."""
        self.done(conversation_id)
        if self._coordination.shared:
            try:
                await self._coordination.add(_key(conversation_id), -1, SHARED_WAIT_S)
                await self._coordination.publish(_TOPIC, {"conversation_id": conversation_id})
            except Exception as exc:  # the mark expires; readers elsewhere wait until then
                log.warning("could not share a stored turn: %s", exc)

    async def wait(self, conversation_id: str | None = None) -> None:
        """Return once the pending turns of ``conversation_id`` (all if ``None``) are stored."""
        if conversation_id is not None and self._coordination.shared:
            await self._wait_shared(conversation_id)
        if not self._pending:
            return
        if conversation_id is not None:
            entry = self._pending.get(conversation_id)
            if entry is not None:
                await entry[1].wait()
            return
        for _, stored in list(self._pending.values()):
            await stored.wait()

    async def _wait_shared(self, conversation_id: str) -> None:
        """Wait while any worker has an answered, unstored turn of ``conversation_id``."""
        if conversation_id in self._pending:
            return  # this worker's own: the local barrier waits for it
        key = _key(conversation_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHARED_WAIT_S
        while int(await self._coordination.get(key) or 0) > 0:
            event = self._remote.setdefault(conversation_id, asyncio.Event())
            left = deadline - loop.time()
            if left <= 0:
                return
            # A publish may come between the read and here: poll too, every 50 ms.
            try:
                async with asyncio.timeout(min(left, 0.05)):
                    await event.wait()
            except TimeoutError:
                pass

    def _on_stored(self, message: dict[str, Any]) -> None:
        event = self._remote.pop(str(message.get("conversation_id")), None)
        if event is not None:
            event.set()


def _key(conversation_id: str) -> str:
    return f"pending:{conversation_id}"

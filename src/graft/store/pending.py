"""``PendingTurns``: turns that have answered but are still being stored.

A turn's answer goes out before its result is written: the client has its last byte while
the assistant message, tool runs and usage are still on their way to the database (the
pass-through benchmark found that write to be a third of what graft added to a request).
The user's message is never in this window: it is stored before the model is called.

What keeps that invisible is this barrier: ``run_turn`` marks a conversation as pending
before the turn's last event goes out and clears it once ``finish_turn`` returned; anything
that reads conversations (the next turn's history, the conversation routes, exports) waits
for the pending turns it could see first. A client that sends its next message, or reads
the conversation, the moment it has the answer therefore sees the answer stored. The
barrier is per process: with several workers, a request that lands on another worker may
come before the write, a window of a fraction of a millisecond.
"""

from __future__ import annotations

import asyncio

__all__ = ["PendingTurns"]


class PendingTurns:
    """Counts the turns per conversation whose answer went out before they were stored."""

    def __init__(self) -> None:
        self._pending: dict[str, tuple[int, asyncio.Event]] = {}

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

    async def wait(self, conversation_id: str | None = None) -> None:
        """Return once the pending turns of ``conversation_id`` (all if ``None``) are stored."""
        if not self._pending:
            return
        if conversation_id is not None:
            entry = self._pending.get(conversation_id)
            if entry is not None:
                await entry[1].wait()
            return
        for _, stored in list(self._pending.values()):
            await stored.wait()

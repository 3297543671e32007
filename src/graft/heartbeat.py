"""Worker liveness: this process's heartbeat, and recovery of turns that dead workers left.

A turn is ``running`` in the store from ``begin_turn`` to ``finish_turn``. When the process
running it dies without finishing it (``kill -9``, an out-of-memory kill, a lost machine), it
would stay ``running`` for ever. So every process that runs turns is a worker with a
heartbeat (``Heartbeat``, started by ``Graft.start``): every ``limits.worker_heartbeat``
seconds it records that it is alive and marks ``interrupted`` the running turns of any worker
silent for ``limits.worker_timeout`` seconds (``graft.store.workers`` does the SQL). It does
that once at start too, so a single worker restarted after a crash cleans up after itself
as soon as its previous self counts as dead. Several workers sharing one database never
interrupt each other's live turns: a turn names its worker, and only silent workers' turns
are touched. At a clean shutdown a worker interrupts what it still runs and drops its row.

A store without worker support (the in-memory one: one process, nothing survives it) gets no
heartbeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol, runtime_checkable

__all__ = ["Heartbeat", "WorkerStore"]

log = logging.getLogger(__name__)


@runtime_checkable
class WorkerStore(Protocol):
    """A store that knows its workers (``graft.store.sql.SQLStore``)."""

    worker_id: str

    async def worker_heartbeat(self) -> None:
        """Record that this worker is alive now."""

    async def recover_turns(self, silent_for: float) -> list[str]:
        """Interrupt the running turns of workers silent that long; return their ids."""

    async def retire_worker(self) -> int:
        """Interrupt this worker's running turns, forget it; return how many turns."""


class Heartbeat:
    """The heartbeat and recovery loop of this worker, on the event loop that starts it."""

    def __init__(self, store: WorkerStore, *, interval: float, timeout: float) -> None:
        self.store = store
        self.interval = interval
        self.timeout = timeout
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Beat and recover once (errors raise: the store is unusable), then keep at it."""
        await self.store.worker_heartbeat()
        await self._recover()
        self._task = asyncio.create_task(self._run(), name="graft-heartbeat")

    async def stop(self) -> None:
        """Stop the loop; interrupt this worker's turns still running; forget this worker."""
        task, self._task = self._task, None
        if task is None:
            return
        loop = task.get_loop()
        if loop is asyncio.get_running_loop():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        elif not loop.is_closed():  # started on another loop (a server's thread) that runs on
            loop.call_soon_threadsafe(task.cancel)
        left = await self.store.retire_worker()
        if left:
            log.warning("worker %s stopped with %d turns running", self.store.worker_id, left)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.store.worker_heartbeat()
                await self._recover()
            except Exception:  # a database hiccup: the next beat tries again
                log.exception("worker %s: heartbeat failed", self.store.worker_id)

    async def _recover(self) -> None:
        dead = await self.store.recover_turns(self.timeout)
        for worker in dead:
            log.warning("worker %s stopped beating: its running turns are interrupted", worker)

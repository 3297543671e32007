"""The SQL side of worker liveness: heartbeats, and the turns a dead worker left running.

Every ``graft`` process that runs turns on a store is a **worker**, with a random id
(``SQLStore.worker_id``) written on each turn it begins (``turns.worker_id``) and a row in
``workers`` whose ``heartbeat_at`` it updates every few seconds (``graft.heartbeat`` runs the
loop). A worker killed with ``kill -9`` (or lost with its machine) never finishes its turns:
they stay ``running``. Any worker that finds another's heartbeat older than the timeout marks
that worker's running turns ``interrupted`` and deletes its row, in one transaction; the
user's messages were stored when each turn began, so nothing they typed is lost.

Only workers found dead are looked at: the query goes through the ``workers`` table (a row
per process) and the index on ``turns.worker_id``, never a scan of every turn. Turns stored
before migration 0012 have no worker and are left alone. A worker that was only slow (a
pause longer than the timeout) finds its turns interrupted: their ``finish_turn`` raises
``NotFound`` (``graft.turn`` logs it) and its next heartbeat puts its row back.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Final, TypeVar

from sqlalchemy import delete, insert, select, update
from sqlalchemy.engine import Connection

from graft.store.schema import t_turns, t_workers

__all__ = ["INTERRUPTED", "WorkerMethods", "beat", "recover", "retire"]

T = TypeVar("T")

INTERRUPTED: Final = "the worker running this turn stopped before it finished"
"""The error stored on a turn whose worker died (or shut down) while it ran."""


def beat(conn: Connection, worker_id: str, *, host: str, pid: int, now: datetime) -> None:
    """Record that ``worker_id`` is alive at ``now`` (its row is made on the first beat)."""
    updated = conn.execute(
        update(t_workers).where(t_workers.c.id == worker_id).values(heartbeat_at=now)
    )
    if updated.rowcount == 0:
        conn.execute(
            insert(t_workers).values(
                id=worker_id, host=host[:255], pid=pid, started_at=now, heartbeat_at=now
            )
        )


def recover(conn: Connection, *, now: datetime, silent_since: datetime, alive: str) -> list[str]:
    """Interrupt the running turns of workers silent since ``silent_since``; forget them.

    ``alive`` is the calling worker, never taken for dead. Returns the dead workers' ids.
    """
    dead = list(
        conn.execute(
            select(t_workers.c.id).where(
                (t_workers.c.heartbeat_at < silent_since) & (t_workers.c.id != alive)
            )
        ).scalars()
    )
    if dead:
        _interrupt(conn, dead, now)
        conn.execute(delete(t_workers).where(t_workers.c.id.in_(dead)))
    return dead


def retire(conn: Connection, worker_id: str, *, now: datetime) -> int:
    """A worker's clean exit: interrupt what it still runs, drop its row; the turns marked."""
    count = _interrupt(conn, [worker_id], now)
    conn.execute(delete(t_workers).where(t_workers.c.id == worker_id))
    return count


def _interrupt(conn: Connection, workers: list[str], now: datetime) -> int:
    result = conn.execute(
        update(t_turns)
        .where(t_turns.c.worker_id.in_(workers) & (t_turns.c.status == "running"))
        .values(status="interrupted", error=INTERRUPTED, finished_at=now)
    )
    return int(result.rowcount or 0)


class WorkerMethods:
    """Worker liveness methods of ``SQLStore``; ``graft.heartbeat`` calls them."""

    worker_id: str
    """This process's id as a worker, written on every turn it begins."""

    if TYPE_CHECKING:

        async def _write(
            self, fn: Callable[[Connection], T], *, alone: bool = False, size: int = 0
        ) -> T: ...

    async def worker_heartbeat(self) -> None:
        """Record that this worker is alive now."""
        beat_now = partial(
            beat, worker_id=self.worker_id, host=socket.gethostname(), pid=os.getpid()
        )
        await self._write(lambda conn: beat_now(conn, now=datetime.now(UTC)))

    async def recover_turns(self, silent_for: float) -> list[str]:
        """Interrupt the running turns of workers silent for ``silent_for`` s; their ids."""

        def work(conn: Connection) -> list[str]:
            now = datetime.now(UTC)
            return recover(
                conn,
                now=now,
                silent_since=now - timedelta(seconds=silent_for),
                alive=self.worker_id,
            )

        return await self._write(work)

    async def retire_worker(self) -> int:
        """Interrupt what this worker still runs and drop its row (a clean shutdown)."""
        return await self._write(lambda conn: retire(conn, self.worker_id, now=datetime.now(UTC)))

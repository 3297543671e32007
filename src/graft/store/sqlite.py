"""SQLite specifics of the SQL store: one writer, the dialect, connection pragmas.

SQLite lets one writer in at a time. Worker threads racing for that lock sleep and poll in
SQLite's busy handler (the benchmark found 50 concurrent turns spending most of their time
there, with a p99 over a second), so every write transaction of a store goes through one
``SQLiteWriter`` that owns one connection.

Small writes run on the event loop, not in a thread: a turn's transactions take a tenth of
a millisecond or two, less than handing them to a thread and back (on the two-core VM graft
is benchmarked on, those two thread wake-ups cost more than the transaction, and made half
of what storing a turn cost). The writes that arrive during one turn of the event loop are
committed together at the start of its next turn (``SQLiteWriter.run``): under load, the
turns that became ready together share one commit, which is most of a small transaction's
cost. A finished turn's write may also wait up to ``FINISH_LINGER`` for company, so that
the next turn's first write takes it along. Writes never wait for a lock there: the
connection's busy timeout is zero, so if another process holds the write lock, the write
goes to the queue instead, and the connection does not checkpoint the WAL on commit (a
checkpoint syncs the file to disk); every ``CHECKPOINT_EVERY`` transactions the writer's
thread checkpoints it, between two writes. Everything else (large writes, migrations, writes
that arrive while others wait in the queue) goes to the writer's thread, which runs them in
arrival order with the busy timeout, committing jobs that queued up together. Reads keep
using pooled connections in worker threads (WAL lets them run beside the writer).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
from sqlalchemy import (
    Engine,
)
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import PoolProxiedConnection

__all__ = [
    "CHECKPOINT_EVERY",
    "FINISH_LINGER",
    "INLINE_MAX_BYTES",
    "SQLITE_BUSY_TIMEOUT_MS",
    "WRITER_CONNECTION",
    "GraftSQLiteDialect",
    "SQLiteWriter",
    "WRITER_BATCH",
    "on_sqlite_connect",
]

T = TypeVar("T")
log = logging.getLogger(__name__)

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long SQLite waits for a writer of another process before "database is locked"."""

WRITER_BATCH = 64
"""At most this many queued SQLite write transactions are committed together."""

INLINE_MAX_BYTES = 64 * 1024
"""Writes whose payload is larger than this always go to the writer's thread."""

CHECKPOINT_EVERY = 256

FINISH_LINGER = 0.002
"""How long a finished turn's write may wait for another write to commit with (seconds).

The answer has gone out by then and readers of its conversation wait for it
(``graft.store.pending``): under load, the next turn's first write (which commits before
its model is called) takes it along, so a turn costs one commit instead of two."""
"""The writer's thread checkpoints the WAL after this many transactions."""

WRITER_CONNECTION = "graft_writer"
"""Marks the writer's connection: a key set to ``True`` in its pool record's ``info``."""


class SQLiteWriter:
    """One connection, used by one writer at a time, for a SQLite store's write transactions.

    ``run`` holds a small job for the calling event loop's next turn (or up to its
    ``linger``) when nothing is queued for the thread, then commits the jobs held together
    there, unless another process holds the database's lock (see the module docstring); any
    other job is queued for the writer's thread, which runs jobs in arrival order and settles
    each caller's future on its own loop once the job's transaction is over. A job alone
    gets a ``BEGIN IMMEDIATE`` transaction of its own; jobs taken together (up to
    ``WRITER_BATCH`` from the queue) share one. If one of them raises, that transaction is
    rolled back and they run again with a savepoint per job: the failing job rolls back to
    its savepoint (nothing of it is stored) and its caller gets the exception, while the jobs
    around it commit, exactly as if each had had its own transaction, run in the same order.
    One commit instead of many is what makes it worth it: a commit writes the changed pages
    to the WAL. If the shared transaction itself fails (its commit, or an error that ended
    it under a savepoint), nothing of it is stored and each of its jobs runs again alone, so
    every caller still gets what its own transaction gives. A job may therefore run more
    than once, and must do the same each time. The thread starts with the first queued job
    and ends at ``stop()``; a later job starts a new one.
    """

    def __init__(self, engine: Engine, *, checkpoint: bool = True) -> None:
        """Prepare the writer; it connects on its first job.

        Args:
            engine: The store's engine (a SQLite one, with ``on_sqlite_connect``).
            checkpoint: Checkpoint the WAL in the background (off for in-memory databases).
        """
        self._engine = engine
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        # Held by whoever uses the connection: a job run inline, or the thread's round.
        self._using = threading.Lock()
        self._queued = 0  # jobs queued or running in the thread (changed under _lock)
        self._checkpoint = checkpoint
        self._since_checkpoint = 0
        # Inline jobs waiting for the flush on their loop (only ever touched on that loop).
        self._held: list[_Job] = []
        self._held_loop: asyncio.AbstractEventLoop | None = None
        self._flush_soon = False
        self._timer: asyncio.TimerHandle | None = None

    async def run(
        self,
        fn: Callable[[Connection], T],
        *,
        alone: bool = False,
        inline: bool = True,
        linger: float = 0.0,
    ) -> T:
        """Run ``fn`` in a write transaction; return once the transaction is over.

        Args:
            fn: The transaction's work.
            alone: Never share a transaction with other jobs (for migrations); implies a
                run in the writer's thread.
            inline: Whether ``fn`` is small enough to run on the event loop when the
                writer is idle.
            linger: For an inline job, how long it may wait for another job to commit
                with (seconds); 0: at the event loop's next turn.

        Like ``anyio.to_thread.run_sync``, a caller cancelled before the call runs nothing,
        and one cancelled after still waits for its job, so a transaction never outlives the
        call that asked for it.
        """
        await anyio.lowlevel.checkpoint_if_cancelled()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        job = _Job(fn, loop, future, alone)
        if inline and not alone and not self._queued and self._held_loop in (None, loop):
            self._hold(job, linger)
        else:
            self._enqueue(job)
        with anyio.CancelScope(shield=True):
            result = await future
        return result

    def _hold(self, job: _Job, linger: float) -> None:
        """Keep an inline job for the flush at the loop's next turn, or after ``linger``."""
        assert job.loop is not None
        self._held.append(job)
        self._held_loop = job.loop
        if linger <= 0:
            if not self._flush_soon:
                self._flush_soon = True
                job.loop.call_soon(self._flush)
        elif self._timer is None and not self._flush_soon:
            self._timer = job.loop.call_later(linger, self._flush)

    def _flush(self) -> None:
        """Commit the held jobs together on the event loop (see the module docstring)."""
        jobs, self._held, self._held_loop = self._held, [], None
        self._flush_soon = False
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not jobs:
            return
        # Queued jobs came first and the thread has them: these go behind them.
        if self._queued or not self._using.acquire(blocking=False):
            for job in jobs:
                self._enqueue(job)
            return
        try:
            outcomes = self._together(jobs, inline=True)
        finally:
            self._using.release()
        busy: list[_Job] = []
        for job, outcome in zip(jobs, outcomes, strict=True):
            if isinstance(outcome.error, OperationalError) and _is_busy(outcome.error):
                busy.append(job)  # another process holds the lock: the thread waits for it
            elif job.future is not None:
                # RuntimeError: the caller's event loop is closed (a store closed from
                # another loop commits what that one left held), so nobody is waiting.
                with contextlib.suppress(RuntimeError):
                    _settle([(job.future, outcome)])
        for job in busy:
            self._enqueue(job)
        if len(busy) < len(jobs):
            self._committed()

    def _enqueue(self, job: _Job) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._main, name="graft-sqlite-writer", daemon=True
                )
                self._thread.start()
            self._queued += 1
            self._jobs.put(job)

    async def stop(self) -> None:
        """Let the held and queued jobs finish, then end the thread and close its connection."""
        self._flush()
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._jobs.put(None)
        if thread is not None:
            await anyio.to_thread.run_sync(thread.join)
        with self._using:
            self._disconnect()

    def _main(self) -> None:
        held: list[_Job | None] = []  # taken from the queue, for the next round
        try:
            while (job := held.pop() if held else self._jobs.get()) is not None:
                batch = [job]
                while not job.alone and len(batch) < WRITER_BATCH:
                    try:
                        more = self._jobs.get_nowait()
                    except queue.Empty:
                        break
                    if more is None or more.alone:
                        held.append(more)
                        break
                    batch.append(more)
                with self._using:
                    outcomes = self._round(batch)
                with self._lock:
                    self._queued -= len(batch)
                _deliver(batch, outcomes)
                if job.fn is not _CHECKPOINT:
                    self._committed()
        finally:
            with self._using:
                self._disconnect()

    def _round(self, batch: list[_Job]) -> list[_Outcome]:
        """Run the jobs taken together from the queue (a checkpoint is always alone)."""
        if batch[0].fn is _CHECKPOINT:
            self._run_checkpoint()
            return [_Outcome(None, None)]
        self._wait_for_lock(True)
        try:
            return self._together(batch)
        finally:
            self._wait_for_lock(False)

    def _transaction(self, fn: Callable[[Connection], Any]) -> _Outcome:
        """Run ``fn`` in a transaction of its own (``BEGIN IMMEDIATE``)."""
        try:
            conn = self._connection()
            with conn.begin():
                return _Outcome(fn(conn), None)
        except BaseException as exc:  # noqa: BLE001 - the caller gets it
            if not (isinstance(exc, OperationalError) and _is_busy(exc)):
                self._disconnect()  # a failed commit can leave the transaction open
            return _Outcome(None, exc)

    def _together(self, batch: list[_Job], *, inline: bool = False) -> list[_Outcome]:
        """Run ``batch`` in one transaction; each job gets what its own transaction would.

        All jobs run, then one commit. If a job raises, the transaction is rolled back and
        run again with a savepoint per job (``_with_savepoints``): the failing job's work
        is undone alone. If the shared commit fails, each job runs again alone. ``inline``:
        on the event loop, where a lock held by another process ends the attempt at once.
        """
        if not batch[1:]:
            return [self._transaction(batch[0].fn)]
        try:
            conn = self._connection()
            transaction = conn.begin()
        except BaseException as exc:  # noqa: BLE001 - every caller gets it
            if not (isinstance(exc, OperationalError) and _is_busy(exc)):
                self._disconnect()
            elif not inline:
                return [self._transaction(job.fn) for job in batch]
            return [_Outcome(None, exc)] * len(batch)
        results: list[Any] = []
        try:
            for job in batch:
                results.append(job.fn(conn))
        except BaseException:  # noqa: BLE001 - the savepoints below give each its outcome
            transaction.rollback()
            return self._with_savepoints(batch)
        try:
            transaction.commit()
        except BaseException:  # noqa: BLE001 - each job gets its own outcome below
            self._disconnect()
            return [self._transaction(job.fn) for job in batch]
        return [_Outcome(result, None) for result in results]

    def _with_savepoints(self, batch: list[_Job]) -> list[_Outcome]:
        outcomes: list[_Outcome] = []
        try:
            conn = self._connection()
            with conn.begin():
                for job in batch:
                    savepoint = conn.begin_nested()
                    try:
                        result = job.fn(conn)
                    except BaseException as exc:  # noqa: BLE001 - the caller gets it
                        savepoint.rollback()
                        outcomes.append(_Outcome(None, exc))
                    else:
                        savepoint.commit()
                        outcomes.append(_Outcome(result, None))
        except BaseException:  # noqa: BLE001 - each job gets its own outcome below
            self._disconnect()
            return [self._transaction(job.fn) for job in batch]
        return outcomes

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self._engine.connect()
            conn.connection.info[WRITER_CONNECTION] = True  # see GraftSQLiteDialect.do_begin
            # Never wait for the lock on the event loop, never checkpoint on commit.
            _pragma(conn, "busy_timeout=0")
            _pragma(conn, "wal_autocheckpoint=0")
            self._conn = conn
        return self._conn

    def _wait_for_lock(self, wait: bool) -> None:
        """In the thread, wait for other processes' write locks as every connection does."""
        with contextlib.suppress(Exception):  # a broken connection fails the job instead
            _pragma(self._connection(), f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS if wait else 0}")

    def _committed(self) -> None:
        """Count a transaction; queue a WAL checkpoint for the thread when it is time.

        The checkpoint runs in the writer's thread on the writer's connection, between
        writes: SQLite starts the WAL over from its beginning only when a write begins
        after a checkpoint that copied every frame, so a checkpoint running beside the
        writes (another connection, another thread) would let the WAL grow without end.
        """
        self._since_checkpoint += 1
        if not self._checkpoint or self._since_checkpoint < CHECKPOINT_EVERY:
            return
        self._since_checkpoint = 0
        self._enqueue(_Job(_CHECKPOINT, None, None, True))

    def _run_checkpoint(self) -> None:
        """Copy the WAL's frames into the database file (PASSIVE: it never waits)."""
        try:
            _pragma(self._connection(), "wal_checkpoint(PASSIVE)")
        except Exception:
            log.warning("SQLite WAL checkpoint failed; the next one retries", exc_info=True)
            self._disconnect()

    def _disconnect(self) -> None:
        """Give the connection back to the pool, which rolls back what it may still hold.

        After a failed transaction (a failed commit leaves SQLite's transaction open) and
        at the end; the next job takes a connection again.
        """
        conn, self._conn = self._conn, None
        if conn is None:
            return
        # Errors here only mean the connection was broken: it is dropped either way.
        with contextlib.suppress(Exception):
            if not conn.invalidated:
                conn.connection.info.pop(WRITER_CONNECTION, None)  # readers may take it now
                _pragma(conn, f"busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
                _pragma(conn, "wal_autocheckpoint=1000")
            conn.close()


def _pragma(conn: Connection, pragma: str) -> None:
    """Run a PRAGMA on the driver connection (no transaction is begun for it)."""
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA {pragma}")
        cursor.fetchall()
    finally:
        cursor.close()


def _is_busy(exc: OperationalError) -> bool:
    """Whether SQLite refused because another connection holds the lock."""
    code = getattr(exc.orig, "sqlite_errorcode", None)
    return code in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or "locked" in str(exc.orig)


class _Job:
    """A write transaction waiting for the writer, and where its outcome goes.

    A job without a loop and future is the writer's own (a checkpoint): nobody waits for it.
    """

    __slots__ = ("alone", "fn", "future", "loop")

    def __init__(
        self,
        fn: Callable[[Connection], Any],
        loop: asyncio.AbstractEventLoop | None,
        future: asyncio.Future[Any] | None,
        alone: bool,
    ) -> None:
        self.fn = fn
        self.loop = loop
        self.future = future
        self.alone = alone


def _CHECKPOINT(conn: Connection) -> None:  # noqa: N802 - a marker, compared by identity
    """Marks a checkpoint job (``SQLiteWriter._committed``); never called."""
    raise AssertionError("a checkpoint job is run by the writer itself")


class _Outcome(NamedTuple):
    result: Any
    error: BaseException | None


def _deliver(jobs: list[_Job], outcomes: list[_Outcome]) -> None:
    """Hand each job's outcome to its caller, one wake-up per event loop (from the writer)."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], _Outcome]]] = {}
    for job, outcome in zip(jobs, outcomes, strict=True):
        if job.loop is not None and job.future is not None:
            by_loop.setdefault(job.loop, []).append((job.future, outcome))
    for loop, settled in by_loop.items():
        # RuntimeError: that event loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[Any], _Outcome]]) -> None:
    for future, (result, error) in settled:
        if future.done():  # the caller was cancelled natively (not through a cancel scope)
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


class GraftSQLiteDialect(SQLiteDialect_pysqlite):
    """pysqlite, with transactions begun by SQLAlchemy rather than by pysqlite.

    pysqlite's own transaction handling is turned off (``on_sqlite_connect``; it would not
    begin before a ``SELECT``, so a read followed by a write would not be one transaction),
    and this dialect emits ``BEGIN`` when SQLAlchemy begins one (the recipe in SQLAlchemy's
    SQLite docs, which does it in a ``begin`` event listener instead: any connection event
    listener makes SQLAlchemy dispatch events around every statement, a fifth of the CPU of
    a turn). On the writer's connection it is ``BEGIN IMMEDIATE``: a deferred transaction
    that reads and then writes fails at once (no busy wait) when a writer in another
    process committed in between; IMMEDIATE takes the write lock up front.
    """

    supports_statement_cache = True

    def do_begin(self, dbapi_connection: PoolProxiedConnection) -> None:
        """Emit ``BEGIN``, or ``BEGIN IMMEDIATE`` on the writer's connection."""
        cursor = dbapi_connection.cursor()
        try:
            writer = dbapi_connection.info.get(WRITER_CONNECTION)
            cursor.execute("BEGIN IMMEDIATE" if writer else "BEGIN")
        finally:
            cursor.close()


registry.register("sqlite.graft", __name__, "GraftSQLiteDialect")


def on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    """Set the pragmas every connection needs: WAL, NORMAL sync, foreign keys, busy timeout."""
    # SQLAlchemy emits BEGIN itself (see GraftSQLiteDialect); pysqlite must not.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()

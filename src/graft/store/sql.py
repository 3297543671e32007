"""The SQL store: conversations, messages, turns and tool runs in SQLite or PostgreSQL.

One class, ``SQLStore``, implements the ``Store`` protocol with SQLAlchemy Core (``Table``
objects, no ORM: a turn is a handful of plain statements). The engine is synchronous and
every operation runs in a worker thread (``anyio.to_thread.run_sync``), so the event loop
never waits on the database. Each protocol call is one transaction.

SQLite is the embedded default: WAL journal, ``synchronous=NORMAL``, foreign keys on and a
busy timeout, set on every new connection. pysqlite's own transaction handling is turned off
and SQLAlchemy emits ``BEGIN`` itself (the recipe in SQLAlchemy's SQLite docs), so a read
followed by a write happens in one transaction; writes start with ``BEGIN IMMEDIATE`` so that
concurrent writers wait on the busy timeout instead of failing on a stale snapshot.

PostgreSQL is reached with ``postgresql://`` URLs through psycopg 3 (the ``postgres``
extra). ``start()`` brings the schema to the newest Alembic revision; the migrations live in
``graft/store/migrations`` and the tables below must match them (a test compares the two).
"""

from __future__ import annotations

import importlib
import json
import threading
from collections.abc import Callable
from contextlib import nullcontext
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio.to_thread
from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Engine,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Row,
    String,
    Table,
    Text,
    TypeDecorator,
    create_engine,
    delete,
    event,
    select,
    text,
    update,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool
from sqlalchemy.sql import ColumnElement

from graft.context import Principal
from graft.errors import ConfigError, ConversationNotFound, InvalidRequest, NotFound
from graft.messages import Message, ToolCall, Usage, new_id
from graft.store.base import ConversationInfo, StoredMessage, ToolRun, TurnInfo, TurnStatus

__all__ = ["SQLStore", "metadata", "t_conversations", "t_messages", "t_tool_runs", "t_turns"]

T = TypeVar("T")

TITLE_LENGTH = 80
"""Conversation titles are the first user message cut to this many characters."""

SQLITE_BUSY_TIMEOUT_MS = 10_000
"""How long a SQLite writer waits for another one before "database is locked"."""

_MIGRATIONS = Path(__file__).with_name("migrations")
_PG_MIGRATION_LOCK = 0x67726166  # any fixed bigint; serialises concurrent start()s


class _UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL keeps the offset (``timestamptz``) but answers in the session's zone; SQLite
    keeps none. Values are converted to UTC on the way in and come back aware and in UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Convert an aware datetime to UTC; naive ones are refused."""
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        """Return the stored value as an aware UTC datetime."""
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# 64-bit row ids where the database has them; SQLite needs INTEGER for its rowid alias.
_RowId = BigInteger().with_variant(Integer(), "sqlite")

metadata = MetaData(
    naming_convention={
        "pk": "pk_%(table_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    }
)

t_conversations = Table(
    "conversations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant", String(255), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("assistant", String(255), nullable=False),
    Column("title", String(255), nullable=False),
    Column("created_at", _UTCDateTime(), nullable=False),
    Column("updated_at", _UTCDateTime(), nullable=False),
    Index(None, "tenant", "user_id", "updated_at"),
)

t_turns = Table(
    "turns",
    metadata,
    Column("id", String(64), primary_key=True),
    Column(
        "conversation_id",
        String(64),
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("status", String(16), nullable=False),
    Column("model", String(255), nullable=False),
    Column("finish_reason", String(64), nullable=True),
    Column("error", Text(), nullable=True),
    Column("prompt_tokens", Integer(), nullable=False),
    Column("completion_tokens", Integer(), nullable=False),
    Column("started_at", _UTCDateTime(), nullable=False),
    Column("finished_at", _UTCDateTime(), nullable=True),
    Column("duration_ms", Float(), nullable=True),
    Index(None, "conversation_id", "started_at"),
)

t_messages = Table(
    "messages",
    metadata,
    Column("id", _RowId, primary_key=True, autoincrement=True),
    Column(
        "conversation_id",
        String(64),
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("turn_id", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("content", Text(), nullable=True),
    Column("tool_calls", Text(), nullable=True),
    Column("tool_call_id", String(255), nullable=True),
    Column("name", String(255), nullable=True),
    Column("created_at", _UTCDateTime(), nullable=False),
    Index(None, "conversation_id", "id"),
)

t_tool_runs = Table(
    "tool_runs",
    metadata,
    Column("id", _RowId, primary_key=True, autoincrement=True),
    Column("turn_id", String(64), ForeignKey("turns.id", ondelete="CASCADE"), nullable=False),
    Column("conversation_id", String(64), nullable=False),
    Column("call_id", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("arguments", Text(), nullable=False),
    Column("result", Text(), nullable=False),
    Column("is_error", Boolean(), nullable=False),
    Column("duration_ms", Float(), nullable=False),
    Column("created_at", _UTCDateTime(), nullable=False),
    Index(None, "turn_id"),
    Index(None, "conversation_id"),
)


class SQLStore:
    """The ``Store`` over a SQLAlchemy URL (``sqlite:///path`` or ``postgresql://...``)."""

    def __init__(self, url: str) -> None:
        """Prepare the engine; nothing connects until the first operation.

        Args:
            url: A SQLAlchemy database URL. ``postgresql://`` and ``postgres://`` use
                psycopg 3.

        Raises:
            ConfigError: The URL is malformed, or PostgreSQL is asked for without psycopg.
        """
        self._url = _resolve_url(url)
        self._sqlite = self._url.get_backend_name() == "sqlite"
        memory = self._sqlite and self._url.database in (None, "", ":memory:")
        if memory:
            # One in-memory database exists per connection: share one, one thread at a time.
            self._engine = create_engine(
                self._url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            self._engine = create_engine(self._url, pool_pre_ping=not self._sqlite)
        self._lock: threading.Lock | None = threading.Lock() if memory else None
        if self._sqlite:
            event.listen(self._engine, "connect", _on_sqlite_connect)
            event.listen(self._engine, "begin", _on_sqlite_begin)
        self._writer = self._engine.execution_options(graft_write=True)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for other modules that share this database)."""
        return self._engine

    async def start(self) -> None:
        """Create the SQLite file's folder if needed and migrate the schema to head."""
        database = self._url.database
        if (
            self._sqlite
            and database
            and database != ":memory:"
            and not database.startswith("file:")
        ):
            # SQLite creates the file but not its folder.
            await anyio.to_thread.run_sync(
                partial(Path(database).parent.mkdir, parents=True, exist_ok=True)
            )
        await self._run(self._migrate)

    async def close(self) -> None:
        """Close every pooled connection."""
        await anyio.to_thread.run_sync(self._engine.dispose)

    async def begin_turn(
        self,
        principal: Principal,
        *,
        assistant: str,
        model: str,
        conversation_id: str | None,
        new_messages: list[Message],
    ) -> tuple[str, str]:
        """Store the new messages and a running turn in one transaction.

        Args:
            principal: Who is talking; the conversation must be theirs.
            assistant: The assistant's name, recorded on a new conversation.
            model: The model the turn runs on.
            conversation_id: An existing conversation, or ``None`` to start one.
            new_messages: What the caller sent this turn (system and user messages).

        Returns:
            ``(conversation_id, turn_id)``.

        Raises:
            ConversationNotFound: ``conversation_id`` is not one of the principal's.
        """

        def work(conn: Connection) -> tuple[str, str]:
            now = datetime.now(UTC)
            title = make_title(new_messages)
            if conversation_id is None:
                cid = new_id("conv")
                conn.execute(
                    t_conversations.insert().values(
                        id=cid,
                        tenant=principal.tenant,
                        user_id=principal.user_id,
                        assistant=assistant,
                        title=title,
                        created_at=now,
                        updated_at=now,
                    )
                )
            else:
                cid = conversation_id
                # NO KEY UPDATE holds off a concurrent delete but lets the foreign-key
                # checks of other turns in this conversation through.
                row = conn.execute(
                    select(t_conversations.c.title)
                    .where(_owned(cid, principal))
                    .with_for_update(key_share=True)
                ).one_or_none()
                if row is None:
                    raise _not_found(cid)
                values: dict[str, Any] = {"updated_at": now}
                if not row.title and title:
                    values["title"] = title
                conn.execute(update(t_conversations).where(t_conversations.c.id == cid), values)
            tid = new_id("turn")
            conn.execute(
                t_turns.insert().values(
                    id=tid,
                    conversation_id=cid,
                    status="running",
                    model=model,
                    prompt_tokens=0,
                    completion_tokens=0,
                    started_at=now,
                )
            )
            _insert_messages(conn, cid, tid, new_messages, now)
            return cid, tid

        return await self._run(work)

    async def finish_turn(
        self,
        turn_id: str,
        *,
        messages: list[Message],
        tool_runs: list[ToolRun],
        usage: Usage,
        finish_reason: str | None,
        error: str | None = None,
    ) -> None:
        """Store what a running turn produced and mark it done, or failed if ``error``.

        Args:
            turn_id: The id ``begin_turn`` returned.
            messages: Assistant and tool messages the turn produced, in order.
            tool_runs: Server-side tool executions, in order.
            usage: Tokens used by the whole turn.
            finish_reason: The model's last finish reason, if any.
            error: Why the turn failed; ``None`` for a turn that succeeded.

        Raises:
            NotFound: No running turn has this id (unknown, finished, or deleted with its
                conversation).
        """

        def work(conn: Connection) -> None:
            now = datetime.now(UTC)
            # Lock the conversation before the turn, in the order delete_conversation
            # takes them (its cascade reaches the turn last); the other order deadlocks
            # on PostgreSQL when a conversation is deleted while its turn finishes.
            owner = select(t_turns.c.conversation_id).where(t_turns.c.id == turn_id)
            bumped = conn.execute(
                update(t_conversations)
                .where(t_conversations.c.id == owner.scalar_subquery())
                .values(updated_at=now)
            )
            row = conn.execute(
                select(t_turns.c.conversation_id, t_turns.c.status, t_turns.c.started_at)
                .where(t_turns.c.id == turn_id)
                .with_for_update()
            ).one_or_none()
            if bumped.rowcount == 0 or row is None or row.status != "running":
                raise NotFound(f"no running turn {turn_id!r}", code="turn_not_found")
            cid: str = row.conversation_id
            _insert_messages(conn, cid, turn_id, messages, now)
            if tool_runs:
                conn.execute(
                    t_tool_runs.insert(),
                    [
                        {
                            "turn_id": turn_id,
                            "conversation_id": cid,
                            "call_id": run.call_id,
                            "name": run.name,
                            "arguments": run.arguments,
                            "result": run.result,
                            "is_error": run.is_error,
                            "duration_ms": run.duration_ms,
                            "created_at": now,
                        }
                        for run in tool_runs
                    ],
                )
            status: TurnStatus = "failed" if error is not None else "done"
            conn.execute(
                update(t_turns)
                .where(t_turns.c.id == turn_id)
                .values(
                    status=status,
                    finish_reason=finish_reason,
                    error=error,
                    prompt_tokens=usage.prompt_tokens,
                    completion_tokens=usage.completion_tokens,
                    finished_at=now,
                    duration_ms=(now - row.started_at).total_seconds() * 1000,
                )
            )

        await self._run(work)

    async def load_history(self, conversation_id: str, principal: Principal) -> list[Message]:
        """Every message of the principal's conversation, oldest first.

        Raises:
            ConversationNotFound: The conversation is not one of the principal's.
        """

        def work(conn: Connection) -> list[Message]:
            _check_owned(conn, conversation_id, principal)
            return [_message(r) for r in _select_messages(conn, conversation_id)]

        return await self._run(work, write=False)

    async def list_conversations(
        self, principal: Principal, *, limit: int = 50, offset: int = 0
    ) -> list[ConversationInfo]:
        """The principal's conversations, most recently updated first.

        Raises:
            InvalidRequest: ``limit`` or ``offset`` is negative.
        """
        check_page(limit, offset)

        def work(conn: Connection) -> list[ConversationInfo]:
            rows = conn.execute(
                select(t_conversations)
                .where(
                    t_conversations.c.tenant == principal.tenant,
                    t_conversations.c.user_id == principal.user_id,
                )
                .order_by(t_conversations.c.updated_at.desc(), t_conversations.c.id.desc())
                .limit(limit)
                .offset(offset)
            )
            return [_conversation(r) for r in rows]

        return await self._run(work, write=False)

    async def get_conversation(
        self, conversation_id: str, principal: Principal
    ) -> tuple[ConversationInfo, list[StoredMessage], list[TurnInfo]]:
        """One conversation with its messages (oldest first) and turns (by start time).

        Raises:
            ConversationNotFound: The conversation is not one of the principal's.
        """

        def work(conn: Connection) -> tuple[ConversationInfo, list[StoredMessage], list[TurnInfo]]:
            row = conn.execute(
                select(t_conversations).where(_owned(conversation_id, principal))
            ).one_or_none()
            if row is None:
                raise _not_found(conversation_id)
            stored = [
                StoredMessage(_message(r), r.turn_id, r.created_at)
                for r in _select_messages(conn, conversation_id)
            ]
            runs: dict[str, list[ToolRun]] = {}
            for r in conn.execute(
                select(t_tool_runs)
                .where(t_tool_runs.c.conversation_id == conversation_id)
                .order_by(t_tool_runs.c.id)
            ):
                runs.setdefault(r.turn_id, []).append(
                    ToolRun(r.call_id, r.name, r.arguments, r.result, r.is_error, r.duration_ms)
                )
            turn_rows = conn.execute(
                select(t_turns)
                .where(t_turns.c.conversation_id == conversation_id)
                .order_by(t_turns.c.started_at, t_turns.c.id)
            )
            infos = [_turn(r, runs.get(r.id, [])) for r in turn_rows]
            return _conversation(row), stored, infos

        return await self._run(work, write=False)

    async def delete_conversation(self, conversation_id: str, principal: Principal) -> None:
        """Delete the principal's conversation; its turns, messages and tool runs cascade.

        Raises:
            ConversationNotFound: The conversation is not one of the principal's.
        """

        def work(conn: Connection) -> None:
            result = conn.execute(delete(t_conversations).where(_owned(conversation_id, principal)))
            if result.rowcount == 0:
                raise _not_found(conversation_id)

        await self._run(work)

    async def _run(self, fn: Callable[[Connection], T], *, write: bool = True) -> T:
        """Run ``fn`` in one transaction, in a worker thread."""
        return await anyio.to_thread.run_sync(partial(self._transaction, fn, write))

    def _transaction(self, fn: Callable[[Connection], T], write: bool) -> T:
        engine = self._writer if write else self._engine
        with self._lock or nullcontext(), engine.begin() as conn:
            return fn(conn)

    def _migrate(self, conn: Connection) -> None:
        from alembic import command
        from alembic.config import Config

        if conn.dialect.name == "postgresql":
            # Several workers may start at once; the lock ends with the transaction.
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATION_LOCK})
        config = Config()
        config.set_main_option("script_location", str(_MIGRATIONS).replace("%", "%%"))
        config.attributes["connection"] = conn
        command.upgrade(config, "head")

    def __repr__(self) -> str:
        return f"SQLStore({self._url.render_as_string(hide_password=True)!r})"


def make_title(new_messages: list[Message]) -> str:
    """Return a conversation title: the first user message, on one line, cut to length.

    Args:
        new_messages: The messages that open the conversation.

    Returns:
        The title, or ``""`` when there is no user text.
    """
    for message in new_messages:
        if message.role == "user" and message.content and message.content.strip():
            title = " ".join(message.content.split())
            if len(title) > TITLE_LENGTH:
                title = title[: TITLE_LENGTH - 1].rstrip() + "…"
            return title
    return ""


def check_page(limit: int, offset: int) -> None:
    """Refuse a negative page size or offset.

    Raises:
        InvalidRequest: ``limit`` or ``offset`` is negative.
    """
    if limit < 0:
        raise InvalidRequest("limit must not be negative", param="limit")
    if offset < 0:
        raise InvalidRequest("offset must not be negative", param="offset")


def _resolve_url(url: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError as exc:
        raise ConfigError("the database URL is not a valid SQLAlchemy URL") from exc
    if parsed.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        try:
            importlib.import_module("psycopg")
        except ImportError:
            raise ConfigError('PostgreSQL needs psycopg 3: pip install "graft[postgres]"') from None
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed


def _on_sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
    # SQLAlchemy emits BEGIN itself (see _on_sqlite_begin); pysqlite must not.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    finally:
        cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    # A deferred transaction that reads and then writes fails at once (no busy wait) when
    # another writer committed in between; IMMEDIATE takes the write lock up front.
    write = conn.get_execution_options().get("graft_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def _owned(conversation_id: str, principal: Principal) -> ColumnElement[bool]:
    return (
        (t_conversations.c.id == conversation_id)
        & (t_conversations.c.tenant == principal.tenant)
        & (t_conversations.c.user_id == principal.user_id)
    )


def _not_found(conversation_id: str) -> ConversationNotFound:
    return ConversationNotFound(f"conversation {conversation_id!r} not found")


def _check_owned(conn: Connection, conversation_id: str, principal: Principal) -> None:
    found = conn.execute(
        select(t_conversations.c.id).where(_owned(conversation_id, principal))
    ).first()
    if found is None:
        raise _not_found(conversation_id)


def _insert_messages(
    conn: Connection, cid: str, tid: str, new: list[Message], now: datetime
) -> None:
    if not new:
        return
    conn.execute(
        t_messages.insert(),
        [
            {
                "conversation_id": cid,
                "turn_id": tid,
                "role": m.role,
                "content": m.content,
                "tool_calls": _dump_calls(m.tool_calls),
                "tool_call_id": m.tool_call_id,
                "name": m.name,
                "created_at": now,
            }
            for m in new
        ],
    )


def _select_messages(conn: Connection, conversation_id: str) -> list[Row[Any]]:
    return list(
        conn.execute(
            select(t_messages)
            .where(t_messages.c.conversation_id == conversation_id)
            .order_by(t_messages.c.id)
        )
    )


def _dump_calls(calls: list[ToolCall]) -> str | None:
    if not calls:
        return None
    return json.dumps(
        [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in calls],
        ensure_ascii=False,
    )


def _message(row: Row[Any]) -> Message:
    calls = json.loads(row.tool_calls) if row.tool_calls else []
    return Message(
        role=row.role,
        content=row.content,
        tool_calls=[ToolCall(c["id"], c["name"], c["arguments"]) for c in calls],
        tool_call_id=row.tool_call_id,
        name=row.name,
    )


def _conversation(row: Row[Any]) -> ConversationInfo:
    return ConversationInfo(
        id=row.id,
        user_id=row.user_id,
        tenant=row.tenant,
        assistant=row.assistant,
        title=row.title,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def _turn(row: Row[Any], runs: list[ToolRun]) -> TurnInfo:
    return TurnInfo(
        id=row.id,
        conversation_id=row.conversation_id,
        status=row.status,
        model=row.model,
        started_at=row.started_at,
        finished_at=row.finished_at,
        duration_ms=row.duration_ms,
        finish_reason=row.finish_reason,
        error=row.error,
        usage=Usage(row.prompt_tokens, row.completion_tokens),
        tool_runs=runs,
    )

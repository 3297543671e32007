"""The SQL store: conversations, messages, turns and tool runs in SQLite or PostgreSQL.

One class, ``SQLStore``, implements the ``Store`` protocol with SQLAlchemy Core (``Table``
objects, no ORM: a turn is a handful of plain statements, built once in
``graft.store.conversations``; the other tables (users, keys, sessions, feedback...) have
modules of their own, whose functions this class runs in its transactions or whose
``...Methods`` it mixes in). The engine is synchronous and no database call runs on the event
loop's thread. Each protocol call is one transaction (or, for SQLite writes that queued up
together, one savepoint of a shared transaction, with the same outcome: see below).

SQLite is the embedded default: WAL journal, ``synchronous=NORMAL``, foreign keys on and a
busy timeout, set on every new connection. pysqlite's own transaction handling is turned off
and SQLAlchemy emits ``BEGIN`` itself, so a read followed by a write happens in one
transaction (SQLAlchemy's SQLite recipe, done in the dialect, ``GraftSQLiteDialect``, rather than
in an event listener, which would cost every statement an event dispatch).

SQLite lets one connection write at a time, so all of a store's write transactions go to one
writer (``SQLiteWriter``), each starting with ``BEGIN IMMEDIATE``. Concurrent writers then
wait in line in Python, where waiting costs nothing, instead of each holding a worker thread
and a connection while it sleeps and polls in SQLite's busy handler for the write lock (at
50 concurrent turns that was most of the process's time, and a p99 above a second). Small
writes that find the writer idle run on the event loop (cheaper than two thread wake-ups,
and never waiting: if another process holds the lock they are queued instead), those of one
turn of the loop in one transaction; the others run in arrival order in the writer's thread,
where writes that queued up together share one commit too. Every caller still gets the
outcome of its own transaction (a savepoint each when one of them fails). A write returns
only once it is committed, so the user's message is stored before the model is called.
Reads run in worker threads on pooled connections beside the writer: WAL readers neither
wait for the writer nor block it. An in-memory database exists once per connection, so
there every transaction goes through the writer.

PostgreSQL is reached with ``postgresql://`` URLs through psycopg 3 (the ``postgres``
extra). Its transactions run in worker threads, at most ``POOL_SIZE`` at once (a limiter of
the store's own, apart from anyio's default one), and the pool keeps that many connections,
so none is opened and closed under load. Row locks order concurrent writers; every
transaction that locks a conversation and one of its turns takes the conversation first.

Message contents, tool calls, tool arguments and results, titles and the passages a turn
cited are encrypted at rest when the store is given data keys (``graft.crypto``; the columns
and their contexts are in ``graft.store.encrypted``). The turn's writes seal their values
before executing their ``Prepared`` statements (``finish_turn`` once its transaction has
found the conversation, whose id is part of each value's associated data); reads decrypt
them.

``start()`` brings the schema to the newest Alembic revision; the migrations live in
``graft/store/migrations`` and the tables of ``graft.store.schema`` must match them (a test
compares the two).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
from sqlalchemy import (
    Engine,
    create_engine,
    event,
    text,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool import StaticPool

from graft.context import Principal
from graft.crypto import DataKeys, KeySource
from graft.errors import ConfigError, NotFound
from graft.messages import Message, Usage, new_id
from graft.store import sentiments, sessions, titles, users
from graft.store.base import (
    ApiKeyInfo,
    ConversationInfo,
    SentimentBucket,
    SentimentPoint,
    SentimentTag,
    StoredKey,
    StoredMessage,
    StoredSession,
    ToolRun,
    TurnInfo,
    TurnStatus,
    User,
    check_page,
    make_title,
)
from graft.store.conversations import (
    DELETE_CONVERSATION,
    FINISH_TURN,
    HISTORY,
    INSERT_CONVERSATION,
    INSERT_TOOL_RUNS,
    INSERT_TURN,
    LOCK_CONVERSATION,
    LOCK_TURNS_CONVERSATION,
    SELECT_CONVERSATION,
    SELECT_MESSAGES,
    SELECT_TOOL_RUNS,
    SELECT_TURNS,
    TOUCH_AND_TITLE_CONVERSATION,
    TOUCH_CONVERSATION,
    as_conversation,
    as_message,
    as_tool_run,
    as_turn,
    insert_messages,
    message_row,
    not_found,
    owner_params,
    payload_size,
    seal_message,
    seal_run,
    tool_run_rows,
)
from graft.store.encrypted import (
    CONVERSATIONS,
    ENCRYPTED_TABLES,
    Reencrypted,
    compact_sqlite,
    count_values,
    reencrypt_tables,
    seal,
)
from graft.store.feedback_sql import FeedbackMethods
from graft.store.model_stats import ModelStatsMethods
from graft.store.records_sql import RecordsMethods
from graft.store.schema import metadata, t_conversations, t_messages, t_tool_runs, t_turns
from graft.store.sqlite import FINISH_LINGER, INLINE_MAX_BYTES, SQLiteWriter, on_sqlite_connect
from graft.store.turn_citations import encode_citations, seal_citations
from graft.store.workers import WorkerMethods

__all__ = ["SQLStore", "metadata", "t_conversations", "t_messages", "t_tool_runs", "t_turns"]

T = TypeVar("T")

POOL_SIZE = 10
"""Transactions a store runs at once in worker threads, and the connections pooled for them.

On SQLite these are the reads; the writer has one more connection of its own.
"""

_MIGRATIONS = Path(__file__).with_name("migrations")
_PG_MIGRATION_LOCK = 0x67726166  # any fixed bigint; serialises concurrent start()s


class SQLStore(
    FeedbackMethods, ModelStatsMethods, RecordsMethods, WorkerMethods, users.UserMethods
):
    """The ``Store`` over a SQLAlchemy URL (``sqlite:///path`` or ``postgresql://...``)."""

    def __init__(self, url: str, *, data_keys: DataKeys | KeySource | None = None) -> None:
        """Prepare the engine; nothing connects until the first operation.

        Args:
            url: A SQLAlchemy database URL. ``sqlite://`` uses Python's ``sqlite3``;
                ``postgresql://`` and ``postgres://`` use psycopg 3.
            data_keys: The keys that encrypt contents at rest, or where ``start()`` reads
                them; ``None`` stores plaintext (and cannot read encrypted values).

        Raises:
            ConfigError: The URL is malformed, names another SQLite driver, or PostgreSQL is
                asked for without psycopg.
        """
        self._url = _resolve_url(url)
        self._sqlite = self._url.get_backend_name() == "sqlite"
        self._memory = self._sqlite and self._url.database in (None, "", ":memory:")
        if self._memory:
            # One in-memory database exists per connection: the writer's, used by everything.
            self._engine = create_engine(
                self._url, poolclass=StaticPool, connect_args={"check_same_thread": False}
            )
        else:
            # The store never has more than POOL_SIZE transactions in worker threads (and, on
            # SQLite, the writer's): the overflow is only for callers of ``engine``.
            self._engine = create_engine(
                self._url,
                pool_size=POOL_SIZE + 1 if self._sqlite else POOL_SIZE,
                pool_pre_ping=not self._sqlite,
            )
        if self._sqlite:
            event.listen(self._engine, "connect", on_sqlite_connect)
        self._writer = (
            SQLiteWriter(self._engine, checkpoint=not self._memory) if self._sqlite else None
        )
        self._limiter: anyio.CapacityLimiter | None = None
        self._key_source = data_keys if isinstance(data_keys, KeySource) else None
        self._keys = data_keys if isinstance(data_keys, DataKeys) else None
        self.worker_id = new_id("worker")  # on its turns, for graft.heartbeat

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for other modules that share this database)."""
        return self._engine

    @property
    def data_keys(self) -> DataKeys | None:
        """The keys contents are encrypted with (read by ``start()`` from a ``KeySource``)."""
        return self._keys

    async def start(self) -> None:
        """Read the data keys, create the SQLite file's folder if needed, migrate to head.

        Raises:
            ConfigError: The data keys cannot be read (see ``KeySource.load``).
        """
        if self._key_source is not None and self._keys is None:
            self._keys = await anyio.to_thread.run_sync(self._key_source.load)
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
        await self._write(self._migrate, alone=True)

    async def close(self) -> None:
        """Stop the writer once its queued transactions are done; close every connection."""
        if self._writer is not None:
            await self._writer.stop()
        await anyio.to_thread.run_sync(self._engine.dispose)

    async def ping(self) -> None:
        """Return once the database answered a trivial query (``graft.readiness``)."""
        await self._read(_select_one)

    async def begin_turn(
        self,
        principal: Principal,
        *,
        assistant: str,
        model: str,
        conversation_id: str | None,
        new_messages: list[Message],
    ) -> tuple[str, str]:
        """Store the new messages and a running turn in one transaction, committed on return.

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
        title = make_title(new_messages)
        rows = [message_row(m) for m in new_messages]
        size = payload_size(rows)
        # Known before the transaction, so values are sealed outside it.
        new_cid = new_id("conv") if conversation_id is None else None
        keys = self._keys
        if keys is not None and keys.encrypting:
            owner = conversation_id or new_cid
            assert owner is not None
            title = seal(keys, title, CONVERSATIONS.context("title", owner)) or ""
            for row in rows:
                seal_message(keys, row, owner)

        def work(conn: Connection) -> tuple[str, str]:
            now = datetime.now(UTC)
            if new_cid is not None:
                cid = new_cid
                INSERT_CONVERSATION.execute(
                    conn,
                    {
                        "id": cid,
                        "tenant": principal.tenant,
                        "user_id": principal.user_id,
                        "assistant": assistant,
                        "title": title,
                        "created_at": now,
                        "updated_at": now,
                    },
                )
            else:
                assert conversation_id is not None
                cid = conversation_id
                row = LOCK_CONVERSATION.execute(conn, owner_params(cid, principal)).fetchone()
                if row is None:
                    raise not_found(cid)
                if not row[0] and title:  # an untitled conversation gets this turn's title
                    TOUCH_AND_TITLE_CONVERSATION.execute(
                        conn, {"b_cid": cid, "b_now": now, "b_title": title}
                    )
                else:
                    TOUCH_CONVERSATION.execute(conn, {"b_cid": cid, "b_now": now})
            tid = new_id("turn")
            INSERT_TURN.execute(
                conn,
                {
                    "id": tid,
                    "conversation_id": cid,
                    "status": "running",
                    "model": model,
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "started_at": now,
                    "worker_id": self.worker_id,
                },
            )
            insert_messages(conn, cid, tid, rows, now)
            return cid, tid

        return await self._write(work, size=size)

    async def finish_turn(
        self,
        turn_id: str,
        *,
        messages: list[Message],
        tool_runs: list[ToolRun],
        usage: Usage,
        finish_reason: str | None,
        duration_ms: float,
        error: str | None = None,
        citations: list[dict[str, Any]] | None = None,
        model: str | None = None,
        route: str | None = None,
        first_token_ms: float | None = None,
        status: TurnStatus | None = None,
    ) -> None:
        """Store what a running turn produced and mark it done, or failed if ``error``.

        Args:
            turn_id: The id ``begin_turn`` returned.
            messages: Assistant and tool messages the turn produced, in order.
            tool_runs: Server-side tool executions, in order.
            usage: Tokens used by the whole turn.
            finish_reason: The model's last finish reason, if any.
            duration_ms: How long the turn ran, as its runner measured it.
            error: Why the turn failed; ``None`` for a turn that succeeded.
            citations: The passages the answer cited (``graft.store.turn_citations``).
            model: The model that answered, if not the one ``begin_turn`` was given.
            route: How the model was chosen (``graft.model_routing``).
            first_token_ms: From the agent loop's start to its first event.
            status: The final status, instead of ``done``/``failed`` (``interrupted``).

        Raises:
            NotFound: No running turn has this id (unknown, finished, or deleted).
        """
        rows = [message_row(m) for m in messages]
        runs = tool_run_rows(turn_id, tool_runs)
        cited = encode_citations(citations)
        if status is None:
            status = "failed" if error is not None else "done"
        keys = self._keys if self._keys is not None and self._keys.encrypting else None
        routing = {"b_model": model, "b_route": route, "b_first_token_ms": first_token_ms}

        def work(conn: Connection) -> None:
            now = datetime.now(UTC)
            # The conversation first, then the turn: see LOCK_TURNS_CONVERSATION.
            found = LOCK_TURNS_CONVERSATION.execute(conn, {"b_tid": turn_id}).fetchone()
            finished = FINISH_TURN.execute(
                conn,
                {
                    "b_tid": turn_id,
                    "b_status": status,
                    "b_finish_reason": finish_reason,
                    "b_error": error,
                    "b_prompt_tokens": usage.prompt_tokens,
                    "b_completion_tokens": usage.completion_tokens,
                    "b_now": now,
                    "b_duration_ms": duration_ms,
                    "b_citations": seal_citations(keys, cited, found[0]) if found else None,
                    **routing,
                },
            )
            if found is None or finished.rowcount != 1:
                raise NotFound(f"no running turn {turn_id!r}", code="turn_not_found")
            cid = found[0]
            # Sealed copies, made now that the conversation is known (the writer may run
            # this function again, so the plaintext rows stay as they are).
            sealed = rows if keys is None else [seal_message(keys, dict(r), cid) for r in rows]
            insert_messages(conn, cid, turn_id, sealed, now)
            if runs:
                stored = runs if keys is None else [seal_run(keys, dict(r), cid) for r in runs]
                for run in stored:
                    run["conversation_id"] = cid
                    run["created_at"] = now
                INSERT_TOOL_RUNS.executemany(conn, stored)

        size = payload_size(rows) + sum(len(r.arguments) + len(r.result) for r in tool_runs)
        size += len(cited or "")
        await self._write(work, size=size, linger=FINISH_LINGER)

    async def load_history(self, conversation_id: str, principal: Principal) -> list[Message]:
        """Every message of the principal's conversation, oldest first.

        Raises:
            ConversationNotFound: The conversation is not one of the principal's.
        """
        keys = self._keys

        def work(conn: Connection) -> list[Message]:
            rows = conn.execute(HISTORY, owner_params(conversation_id, principal)).all()
            if not rows:
                raise not_found(conversation_id)
            # A conversation without messages is one row with no message in it.
            return [as_message(r, keys, r.id) for r in rows if r.role is not None]

        return await self._read(work)

    async def list_conversations(
        self, principal: Principal, *, limit: int = 50, offset: int = 0, query: str | None = None
    ) -> list[ConversationInfo]:
        """The principal's conversations, most recently updated first; titled with ``query``.

        Raises:
            InvalidRequest: ``limit`` or ``offset`` is negative.
        """
        check_page(limit, offset)
        search = partial(titles.list_conversations, principal=principal, keys=self._keys)
        return await self._read(partial(search, limit=limit, offset=offset, query=query))

    async def rename_conversation(
        self, conversation_id: str, principal: Principal, title: str
    ) -> ConversationInfo:
        """Set the title of the principal's conversation (``graft.store.titles``)."""
        sealed = titles.stored_title(self._keys, conversation_id, title)  # off the transaction
        rename = partial(titles.rename_conversation, principal=principal, keys=self._keys)
        return await self._write(partial(rename, conversation_id=conversation_id, title=sealed))

    async def get_conversation(
        self, conversation_id: str, principal: Principal
    ) -> tuple[ConversationInfo, list[StoredMessage], list[TurnInfo]]:
        """One conversation with its messages (oldest first) and turns (by start time).

        Raises:
            ConversationNotFound: The conversation is not one of the principal's.
        """
        keys = self._keys

        def work(conn: Connection) -> tuple[ConversationInfo, list[StoredMessage], list[TurnInfo]]:
            row = conn.execute(
                SELECT_CONVERSATION, owner_params(conversation_id, principal)
            ).one_or_none()
            if row is None:
                raise not_found(conversation_id)
            params = {"b_cid": conversation_id}
            stored = [
                StoredMessage(as_message(r, keys, conversation_id), r.turn_id, r.created_at)
                for r in conn.execute(SELECT_MESSAGES, params)
            ]
            runs: dict[str, list[ToolRun]] = {}
            for r in conn.execute(SELECT_TOOL_RUNS, params):
                runs.setdefault(r.turn_id, []).append(as_tool_run(r, keys))
            turns = conn.execute(SELECT_TURNS, params)
            infos = [as_turn(r, runs.get(r.id, []), keys) for r in turns]
            sentiments.attach(stored, sentiments.conversation_tags(conn, conversation_id))
            return as_conversation(row, keys), stored, infos

        return await self._read(work)

    async def delete_conversation(self, conversation_id: str, principal: Principal) -> None:
        """Delete the principal's conversation; its turns, messages and tool runs cascade.

        Raises:
            ConversationNotFound: The conversation is not one of the principal's.
        """

        def work(conn: Connection) -> None:
            result = conn.execute(DELETE_CONVERSATION, owner_params(conversation_id, principal))
            if result.rowcount == 0:
                raise not_found(conversation_id)

        await self._write(work)

    # --- sentiments (graft.store.sentiments does the SQL) ----------------------------------

    async def tag_sentiment(self, turn_id: str, tag: SentimentTag) -> None:
        """Store the tag of the turn's user message, replacing any; ``NotFound`` if no turn."""
        sentiments.check_tag(tag)
        await self._write(partial(sentiments.tag_sentiment, turn_id=turn_id, tag=tag))

    async def recent_sentiments(self, conversation_id: str, limit: int) -> list[SentimentTag]:
        """The conversation's latest ``limit`` tags, newest first."""
        check_page(limit, 0)
        return await self._read(
            partial(sentiments.recent_sentiments, conversation_id=conversation_id, limit=limit)
        )

    async def sentiment_report(
        self,
        tenant: str,
        *,
        assistant: str | None = None,
        conversation_id: str | None = None,
        user_id: str | None = None,
        since: datetime | None = None,
        bucket: SentimentBucket = "day",
        until: datetime | None = None,
    ) -> list[SentimentPoint]:
        """Counts and mean of ``tenant``'s tags per bucket and assistant, oldest first."""
        sentiments.check_report(since, bucket, until)
        return await self._read(
            partial(
                sentiments.sentiment_report,
                tenant=tenant,
                assistant=assistant,
                conversation_id=conversation_id,
                user_id=user_id,
                since=since,
                until=until,
                bucket=bucket,
            )
        )

    # --- users and keys (graft.store.users does the SQL) ---------------------------------

    async def create_user(
        self, *, tenant: str, name: str, roles: list[str], groups: list[str]
    ) -> User:
        """Add a user; ``Conflict`` if the tenant has one of that name."""
        return await self._write(
            partial(users.create_user, tenant=tenant, name=name, roles=roles, groups=groups)
        )

    async def get_user(self, tenant: str, name: str) -> User:
        """One user; ``NotFound`` if there is none."""
        return await self._read(partial(users.get_user, tenant=tenant, name=name))

    async def list_users(self, tenant: str | None = None) -> list[User]:
        """Users of one tenant, or of all, ordered by tenant and name."""
        return await self._read(partial(users.list_users, tenant=tenant))

    async def set_user_disabled(self, tenant: str, name: str, disabled: bool) -> User:
        """Disable a user or enable them again."""
        return await self._write(
            partial(users.set_user_disabled, tenant=tenant, name=name, disabled=disabled)
        )

    async def has_users(self) -> bool:
        """Whether any user exists."""
        return await self._read(users.has_users)

    async def create_key(
        self, user: User, *, key_id: str, sha256: str, name: str, roles: list[str], created_by: str
    ) -> ApiKeyInfo:
        """Store a new key of ``user``."""
        return await self._write(
            partial(
                users.create_key,
                user=user,
                key_id=key_id,
                sha256=sha256,
                name=name,
                roles=roles,
                created_by=created_by,
            )
        )

    async def find_key(self, key_id: str) -> StoredKey | None:
        """The key with this public id and its user; ``None`` if unknown."""
        return await self._read(partial(users.find_key, key_id=key_id))

    async def list_keys(
        self, tenant: str | None = None, user: str | None = None
    ) -> list[ApiKeyInfo]:
        """Keys, newest first."""
        return await self._read(partial(users.list_keys, tenant=tenant, user=user))

    async def revoke_key(self, key_id: str, tenant: str | None = None) -> ApiKeyInfo:
        """Revoke a key."""
        return await self._write(partial(users.revoke_key, key_id=key_id, tenant=tenant))

    # --- browser sessions (graft.store.sessions does the SQL) ----------------------------

    async def create_session(
        self, *, session_id: str, key_id: str, expires_at: datetime
    ) -> StoredSession:
        """Store a session opened with ``key_id``; its user's expired sessions go."""
        return await self._write(
            partial(
                sessions.create_session,
                session_id=session_id,
                key_id=key_id,
                expires_at=expires_at,
            )
        )

    async def find_session(self, session_id: str) -> StoredSession | None:
        """The live session with its key and user; ``None`` if gone, expired or refused."""
        return await self._read(partial(sessions.find_session, session_id=session_id))

    async def touch_session(self, session_id: str, at: datetime) -> None:
        """Set the session's ``last_seen_at``."""
        await self._write(partial(sessions.touch_session, session_id=session_id, at=at))

    async def delete_session(self, session_id: str) -> bool:
        """End a session; whether there was one."""
        return await self._write(partial(sessions.delete_session, session_id=session_id))

    async def delete_user_sessions(self, tenant: str, name: str) -> int:
        """End every session of one user."""
        return await self._write(partial(sessions.delete_user_sessions, tenant=tenant, name=name))

    # --- encryption at rest (graft.store.encrypted does the SQL) --------------------------

    async def count_encrypted_rows(self) -> int:
        """How many rows ``reencrypt`` goes through (for a progress bar)."""

        def work(conn: Connection) -> int:
            return sum(count_values(conn, spec) for spec in ENCRYPTED_TABLES)

        return await self._read(work)

    async def reencrypt(
        self, *, batch_size: int = 500, progress: Callable[[int], None] | None = None
    ) -> Reencrypted:
        """Seal every encrypted value with the newest data key, a batch of rows at a time.

        Each batch is one write transaction, so turns go on in between. Values stored in
        plaintext (before encryption was on) are encrypted; values of other keys are
        decrypted and sealed again. On SQLite, space freed meanwhile is overwritten
        (``secure_delete``), and at the end the file is compacted (``VACUUM``) and the WAL
        emptied, so no old copy of a value stays in the file or its WAL.

        Args:
            batch_size: Rows per transaction.
            progress: Called with the number of rows of each batch done.

        Raises:
            ConfigError: The store has no data keys, or they do not encrypt.
            DataIntegrityError: A stored value fails its integrity check (the batches before
                it stay done; running again resumes).
        """
        keys = self._keys
        if keys is None or not keys.encrypting:
            raise ConfigError("encryption at rest is off: there is no data key to encrypt with")
        found = await reencrypt_tables(
            partial(self._write, size=INLINE_MAX_BYTES + 1),  # the writer's thread
            keys,
            batch_size=batch_size,
            progress=progress,
            secure_delete=self._sqlite,
        )
        scrubbed = None
        if self._sqlite and not self._memory:
            scrubbed = await anyio.to_thread.run_sync(compact_sqlite, self._engine)
        return Reencrypted(found, scrubbed)

    async def _write(
        self,
        fn: Callable[[Connection], T],
        *,
        alone: bool = False,
        size: int = 0,
        linger: float = 0.0,
    ) -> T:
        """Run ``fn`` in a write transaction: SQLite's writer, or a worker thread.

        ``size`` is about how many characters the transaction stores: SQLite's writer runs
        small ones on the event loop when it is idle, committing those that arrive together
        in one transaction; ``linger`` lets one wait that long for others (``SQLiteWriter``).
        """
        if self._writer is not None:
            inline = size <= INLINE_MAX_BYTES
            return await self._writer.run(fn, alone=alone, inline=inline, linger=linger)
        return await self._in_thread(fn)

    async def _read(self, fn: Callable[[Connection], T]) -> T:
        """Run ``fn`` in a read transaction in a worker thread (in-memory SQLite: the writer)."""
        if self._memory and self._writer is not None:
            return await self._writer.run(fn)
        return await self._in_thread(fn)

    async def _in_thread(self, fn: Callable[[Connection], T]) -> T:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(POOL_SIZE)
        return await anyio.to_thread.run_sync(
            partial(_transaction, self._engine, fn), limiter=self._limiter
        )

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
        url = self._url.set(drivername="sqlite") if self._sqlite else self._url
        return f"SQLStore({url.render_as_string(hide_password=True)!r})"


def _select_one(conn: Connection) -> None:
    conn.execute(text("SELECT 1")).scalar_one()


def _transaction(engine: Engine, fn: Callable[[Connection], T]) -> T:
    with engine.begin() as conn:
        return fn(conn)


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
    elif parsed.get_backend_name() == "sqlite":
        if parsed.get_driver_name() != "pysqlite":
            raise ConfigError("SQLite is reached through Python's sqlite3: use a sqlite:/// URL")
        parsed = parsed.set(drivername="sqlite+graft")  # GraftSQLiteDialect
    return parsed

"""The tables graft stores conversations in, shared by the SQL store and the migrations.

Four tables for conversations: conversations, turns, messages and tool runs, each scoped by
tenant and user through its conversation. Two for identity: users (a name per tenant, roles,
groups, disabled or not) and their API keys (a public id, the SHA-256 digest of the whole
key, the roles the key carries, revoked or not), and browser sessions (the SHA-256 digest of
the session token, the user and the key that signed in, when it expires; ``graft.sessions``).
One for the sentiment of each turn's user message (``graft.store.sentiments``), deleted with
its turn and conversation, and carrying the conversation's tenant, user and assistant so
that reports need no join. One for the audit log (``graft.audit``): an append-only,
hash-chained record of who did what, numbered by ``seq``. One for the assistants builders
create at run time (``graft.assistants``): a definition per tenant and name. One for the
ratings users give the turns of their conversations (``graft.store.feedback_sql``), deleted
with the turn and the conversation. Timestamps are
timezone-aware UTC on every backend; row ids are 64-bit where the database has them. Schema
changes go through Alembic migrations (``graft/store/migrations``), which are checked against
these definitions by the tests.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)

__all__ = [
    "metadata",
    "t_api_keys",
    "t_assistants",
    "t_audit_log",
    "t_conversations",
    "t_feedback",
    "t_knowledge_chunks",
    "t_knowledge_documents",
    "t_knowledge_readers",
    "t_messages",
    "t_sentiments",
    "t_sessions",
    "t_tool_runs",
    "t_turns",
    "t_users",
    "t_workers",
]


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
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    }
)

t_conversations = Table(
    "conversations",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant", String(255), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("assistant", String(255), nullable=False),
    # Encrypted (graft.store.encrypted): a sealed 80-character title is longer than 255.
    # SQLite does not enforce a length, so only PostgreSQL's column changed (migration 0004).
    Column("title", String(255).with_variant(Text(), "postgresql"), nullable=False),
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
    # The passages the answer cited (JSON list, sealed at rest: graft.store.turn_citations).
    Column("citations", Text(), nullable=True),
    # How the model was chosen (graft.model_routing): primary, canary or fallback.
    Column("route", String(16), nullable=True),
    Column("first_token_ms", Float(), nullable=True),
    # The worker running it (graft.heartbeat): a dead worker's running turns are interrupted.
    Column("worker_id", String(64), nullable=True),
    Index(None, "conversation_id", "started_at"),
    Index(None, "worker_id"),
    Index(None, "started_at"),  # per-model reports read a window of all turns
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

t_sentiments = Table(
    "sentiments",
    metadata,
    Column("turn_id", String(64), ForeignKey("turns.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "conversation_id",
        String(64),
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    # Copies of the conversation's, so a report reads this table alone.
    Column("tenant", String(255), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column("assistant", String(255), nullable=False),
    Column("label", String(16), nullable=False),  # negative, neutral or positive
    Column("score", Float(), nullable=False),  # confidence in the label, 0 to 1
    Column("emotion", String(32), nullable=True),
    Column("backend", String(255), nullable=False),
    Column("created_at", _UTCDateTime(), nullable=False),  # when the turn began
    Index(None, "conversation_id", "created_at"),
    Index(None, "tenant", "assistant", "created_at"),
)

t_users = Table(
    "users",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant", String(255), nullable=False),
    Column("name", String(255), nullable=False),
    Column("roles", Text(), nullable=False),  # a JSON list
    Column("groups", Text(), nullable=False),  # a JSON list
    Column("created_at", _UTCDateTime(), nullable=False),
    Column("disabled_at", _UTCDateTime(), nullable=True),
    UniqueConstraint("tenant", "name"),
)

t_api_keys = Table(
    "api_keys",
    metadata,
    Column("id", String(64), primary_key=True),  # the key's public part, "gk_" + 12 hex
    Column("user_pk", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("name", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("roles", Text(), nullable=False),  # a JSON list
    Column("created_by", String(255), nullable=False),
    Column("created_at", _UTCDateTime(), nullable=False),
    Column("revoked_at", _UTCDateTime(), nullable=True),
    Index(None, "user_pk"),
)

t_sessions = Table(
    "sessions",
    metadata,
    Column("id", String(64), primary_key=True),  # the SHA-256 hex digest of the session token
    Column("user_pk", String(64), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("key_id", String(64), ForeignKey("api_keys.id", ondelete="CASCADE"), nullable=False),
    Column("created_at", _UTCDateTime(), nullable=False),
    Column("expires_at", _UTCDateTime(), nullable=False),
    Column("last_seen_at", _UTCDateTime(), nullable=False),
    Index(None, "user_pk"),
    Index(None, "key_id"),
)

t_audit_log = Table(
    "audit_log",
    metadata,
    # Given by the store as the newest seq + 1, under the append lock: gapless, so a
    # deleted record shows as a gap (graft.audit).
    Column("seq", _RowId, primary_key=True, autoincrement=True),
    Column("at", _UTCDateTime(), nullable=False),
    Column("tenant", String(255), nullable=False),
    Column("actor", String(255), nullable=False),
    Column("action", String(255), nullable=False),
    Column("target", String(255), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("details", Text(), nullable=False),  # a JSON object, masked
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index(None, "tenant", "seq"),
)

t_assistants = Table(
    "assistants",
    metadata,
    # The key is the tenant and the name: each tenant has its own name space.
    Column("tenant", String(255), primary_key=True),
    Column("name", String(255), primary_key=True),
    # A JSON object of graft.config.AssistantSettings fields, as the builder set them. Plain
    # text, like the settings file it extends: configuration, not anyone's conversation.
    Column("definition", Text(), nullable=False),
    Column("created_by", String(255), nullable=False),
    Column("created_at", _UTCDateTime(), nullable=False),
    Column("updated_at", _UTCDateTime(), nullable=False),
)

t_feedback = Table(
    "feedback",
    metadata,
    Column("id", String(64), primary_key=True),  # "fb_...": sorts by creation time
    Column("tenant", String(255), nullable=False),
    Column("user_id", String(255), nullable=False),
    Column(
        "conversation_id",
        String(64),
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("turn_id", String(64), ForeignKey("turns.id", ondelete="CASCADE"), nullable=False),
    Column("rating", String(8), nullable=False),  # "up" or "down"
    Column("comment", Text(), nullable=True),  # encrypted (graft.store.encrypted)
    Column("created_at", _UTCDateTime(), nullable=False),
    Column("updated_at", _UTCDateTime(), nullable=False),
    # One per user and turn; turn_id first, so the turns' cascade finds rows by it.
    UniqueConstraint("turn_id", "tenant", "user_id"),
    Index(None, "conversation_id"),
    Index(None, "tenant", "id"),
)


# --- document knowledge (graft.knowledge.index) -------------------------------------------------
# Documents are the organisation's, kept as text so that they can be searched: unlike
# conversations they are not encrypted at rest (docs/configuration.md says so).

t_knowledge_documents = Table(
    "knowledge_documents",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("tenant", String(255), nullable=False),
    Column("collection", String(255), nullable=False),
    Column("source", String(2048), nullable=False),  # a file path or a URL
    Column("title", Text(), nullable=False),
    Column("media_type", String(128), nullable=False),
    Column("content_hash", String(64), nullable=False),  # SHA-256 of the file's bytes
    Column("modified_at", _UTCDateTime(), nullable=True),
    Column("ingested_at", _UTCDateTime(), nullable=False),
    Column("everyone", Boolean(), nullable=False),  # every user of the tenant may read it
    Column("chunk_count", Integer(), nullable=False),
    UniqueConstraint("tenant", "collection", "source"),
)

t_knowledge_readers = Table(
    "knowledge_readers",
    metadata,
    Column(
        "document_id",
        String(64),
        ForeignKey("knowledge_documents.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("kind", String(8), primary_key=True),  # "user" or "group"
    Column("name", String(255), primary_key=True),
    Index(None, "kind", "name"),
)

t_knowledge_chunks = Table(
    "knowledge_chunks",
    metadata,
    Column("id", _RowId, primary_key=True, autoincrement=True),
    Column(
        "document_id",
        String(64),
        ForeignKey("knowledge_documents.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("position", Integer(), nullable=False),
    Column("text", Text(), nullable=False),
    Column("heading", Text(), nullable=False),  # "Handbook > Leave > Sick leave"
    Column("page", Integer(), nullable=True),
    Column("char_start", Integer(), nullable=False),
    Column("char_end", Integer(), nullable=False),
    Column("embedding", LargeBinary(), nullable=True),  # float32, L2-normalised
    Index(None, "document_id", "position"),
)

# The running workers (graft.heartbeat): each updates its row's heartbeat every few seconds.
t_workers = Table(
    "workers",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("host", String(255), nullable=False),
    Column("pid", Integer(), nullable=False),
    Column("started_at", _UTCDateTime(), nullable=False),
    Column("heartbeat_at", _UTCDateTime(), nullable=False),
)

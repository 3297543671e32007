"""The ``Store`` protocol: what a chat turn needs to persist, and what REST reads back.

A turn writes twice. ``begin_turn`` stores the caller's new messages and a ``running`` turn
row in one transaction, before any model is called, so nothing the user typed is lost to an
upstream failure. ``finish_turn`` stores what the turn produced (assistant and tool
messages, tool runs with arguments, results and timings, token usage) and marks the turn
``done`` or ``failed`` with its error. Every read is scoped to the principal: a conversation
that belongs to another user or tenant does not exist for the caller.

The store also keeps who may come in: users (unique by name within a tenant) and their API
keys, of which only a digest is stored (``graft.identity`` makes and checks keys), and the
browser sessions signed in with those keys, stored by the digest of their token
(``graft.sessions``).

For privacy (``graft.store.privacy``) it hands a user all their data or deletes it, purges
conversations past an assistant's retention period, and lists a tenant's conversations to
its admins as metadata only, never their contents.

And it keeps the audit log (``graft.audit``): records are only ever appended, each one hashed
together with the hash of the record before it, under a lock that makes concurrent appends
one chain.

Each turn's user message may carry a sentiment tag (``tag_sentiment``), stored with the
conversation's tenant, user and assistant and deleted with it; ``get_conversation`` shows it
on the message, and ``sentiment_report`` counts tags over time within one tenant
(``graft.store.sentiments``).

Assistants that builders create at run time (``graft.assistants``) are kept per tenant and
name, as a JSON object of ``AssistantSettings`` fields (``graft.store.assistants``).

A conversation's owner may rename it (``rename_conversation``) and find theirs by title
(``list_conversations(query=...)``); and may rate each turn of their own conversations, up
or down with an optional comment (``put_feedback``): one rating per user and turn, encrypted
like the messages, deleted with its conversation, and listed per tenant to its admins
(``graft.store.feedback_sql``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

from graft.audit import AuditEvent, AuditRecord
from graft.context import Principal
from graft.errors import InvalidRequest
from graft.messages import Message, Usage

if TYPE_CHECKING:
    from graft.store.model_stats import ModelStats

__all__ = [
    "ApiKeyInfo",
    "COMMENT_LENGTH",
    "RATINGS",
    "TITLE_MAX",
    "ConversationInfo",
    "FeedbackRating",
    "SentimentBucket",
    "SentimentPoint",
    "SentimentTag",
    "StoredAssistant",
    "StoredFeedback",
    "StoredKey",
    "Store",
    "StoredMessage",
    "StoredSession",
    "ToolRun",
    "TurnInfo",
    "TurnStatus",
    "User",
    "check_comment",
    "check_page",
    "check_rating",
    "check_title",
    "make_title",
]

TurnStatus = Literal["running", "done", "failed", "interrupted"]
"""``interrupted``: cut short by its client going away, or by its worker dying (recovered
at the next start, ``graft.heartbeat``); its partial answer is kept."""
SentimentBucket = Literal["hour", "day", "week"]
FeedbackRating = Literal["up", "down"]


@dataclass(slots=True)
class ConversationInfo:
    """A conversation's header."""

    id: str
    user_id: str
    tenant: str
    assistant: str
    title: str
    created_at: datetime
    updated_at: datetime
    message_count: int | None = None
    """How many messages it holds; only ``list_tenant_conversations`` counts them."""


@dataclass(frozen=True, slots=True)
class SentimentTag:
    """The sentiment of one user message, as a classifier judged it."""

    label: str
    """``"negative"``, ``"neutral"`` or ``"positive"``."""
    score: float
    """Confidence in ``label``, from 0 to 1."""
    backend: str
    """What judged it, e.g. ``"e5"`` or ``"lexicon (fallback)"``."""
    emotion: str | None = None

    def to_json(self) -> dict[str, Any]:
        """As the REST API and exports show it."""
        return {
            "label": self.label,
            "score": round(self.score, 4),
            "emotion": self.emotion,
            "backend": self.backend,
        }


@dataclass(frozen=True, slots=True)
class SentimentPoint:
    """One bucket of a sentiment report."""

    start: datetime
    """The bucket's start, UTC."""
    assistant: str
    conversation_id: str | None
    """Set when the report is of one conversation."""
    negative: int
    neutral: int
    positive: int
    mean: float
    """The mean of +score (positive), 0 (neutral) and -score (negative)."""

    def to_json(self) -> dict[str, Any]:
        """The point as a JSON object, for the CLI and the REST API."""
        return {
            "start": self.start.isoformat(),
            "assistant": self.assistant,
            "conversation_id": self.conversation_id,
            "negative": self.negative,
            "neutral": self.neutral,
            "positive": self.positive,
            "mean": round(self.mean, 4),
        }


@dataclass(slots=True)
class StoredMessage:
    """A message as stored, with its position and the turn that wrote it."""

    message: Message
    turn_id: str
    created_at: datetime
    sentiment: SentimentTag | None = None
    """The turn's tag, on the last user message of the turn (the one the turn answers)."""


@dataclass(slots=True)
class ToolRun:
    """One server-side tool execution within a turn."""

    call_id: str
    name: str
    arguments: str
    result: str
    is_error: bool
    duration_ms: float


@dataclass(slots=True)
class TurnInfo:
    """One turn's outcome: status, model, timings, usage, error."""

    id: str
    conversation_id: str
    status: TurnStatus
    model: str
    started_at: datetime
    finished_at: datetime | None = None
    duration_ms: float | None = None
    finish_reason: str | None = None
    error: str | None = None
    usage: Usage = field(default_factory=Usage)
    tool_runs: list[ToolRun] = field(default_factory=list)
    citations: list[dict[str, Any]] = field(default_factory=list)
    """The passages the answer cited (its ``cited`` event), for footnotes; empty if none."""
    route: str | None = None
    """``primary``, ``canary`` or ``fallback`` (``graft.model_routing``); ``None`` before."""
    first_token_ms: float | None = None
    """From the agent loop's start to its first event."""


@dataclass(frozen=True, slots=True)
class User:
    """Someone who may sign in: a name unique within a tenant, roles and groups."""

    id: str
    tenant: str
    name: str
    roles: tuple[str, ...]
    groups: tuple[str, ...]
    created_at: datetime
    disabled_at: datetime | None = None

    @property
    def active(self) -> bool:
        """Whether the user may sign in (not disabled)."""
        return self.disabled_at is None


@dataclass(frozen=True, slots=True)
class ApiKeyInfo:
    """An API key as it may be shown: its public id, never the key or its digest."""

    id: str
    tenant: str
    user: str
    name: str
    roles: tuple[str, ...]
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StoredKey:
    """What checking a presented key needs: the key, its digest and its user as they are now."""

    info: ApiKeyInfo
    sha256: str
    user: User


@dataclass(frozen=True, slots=True)
class StoredAssistant:
    """An assistant created at run time, as stored: its definition and who made it when."""

    tenant: str
    name: str
    definition: dict[str, Any]
    """``AssistantSettings`` fields as JSON values, only those its builder set."""
    created_by: str
    created_at: datetime
    updated_at: datetime
    """When it was last created or replaced (``created_*`` stay those of the first time)."""


@dataclass(frozen=True, slots=True)
class StoredFeedback:
    """A user's rating of one turn of their conversation, with an optional comment."""

    id: str
    tenant: str
    user_id: str
    conversation_id: str
    turn_id: str
    assistant: str
    """The conversation's assistant (what was rated)."""
    rating: FeedbackRating
    comment: str | None
    created_at: datetime
    updated_at: datetime
    """When it was last given (``created_at`` and ``id`` stay those of the first time)."""

    def to_json(self) -> dict[str, Any]:
        """As the REST API and exports show it."""
        return {
            "id": self.id,
            "object": "feedback",
            "turn_id": self.turn_id,
            "conversation_id": self.conversation_id,
            "rating": self.rating,
            "comment": self.comment,
            "created_at": self.created_at.isoformat(),
            "updated_at": self.updated_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class StoredSession:
    """A live browser session: its id (the token's digest), the key that opened it, its user."""

    id: str
    key: ApiKeyInfo
    user: User
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime


@runtime_checkable
class Store(Protocol):
    """Persistence of conversations, messages, turns and tool runs."""

    async def start(self) -> None:
        """Open connections and bring the schema up to date (migrations)."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    async def begin_turn(
        self,
        principal: Principal,
        *,
        assistant: str,
        model: str,
        conversation_id: str | None,
        new_messages: list[Message],
    ) -> tuple[str, str]:
        """Store the new messages and a running turn; return ``(conversation_id, turn_id)``.

        With ``conversation_id=None`` a conversation is created (titled after the first
        user message). An id that does not exist for ``principal`` raises
        ``ConversationNotFound``.
        """
        ...

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
        """Store what the turn produced and mark it done (or failed when ``error`` is set).

        ``status`` overrides that: ``interrupted`` for a turn its client left.

        ``model`` replaces the one ``begin_turn`` recorded when another answered (a canary's
        fallback); ``route`` and ``first_token_ms`` are kept for per-model reports
        (``graft.model_routing``, ``graft.store.model_stats``).

        ``duration_ms`` is how long the turn ran, as its runner measured it. The
        conversation's ``updated_at`` is when its latest turn began. ``citations`` are those
        of the turn's ``cited`` event (JSON values; sealed at rest like the messages:
        ``graft.store.turn_citations``); ``TurnInfo.citations`` gives them back.
        """
        ...

    async def load_history(self, conversation_id: str, principal: Principal) -> list[Message]:
        """Every message of the conversation, oldest first."""
        ...

    async def list_conversations(
        self, principal: Principal, *, limit: int = 50, offset: int = 0, query: str | None = None
    ) -> list[ConversationInfo]:
        """The principal's conversations, most recently updated first.

        With ``query``, only those whose title contains it, ignoring case; ``limit`` and
        ``offset`` page through the matches. Titles are encrypted, so they are compared once
        decrypted, not in SQL.
        """
        ...

    async def rename_conversation(
        self, conversation_id: str, principal: Principal, title: str
    ) -> ConversationInfo:
        """Set the title of the principal's conversation (``check_title`` makes it one line).

        ``updated_at`` stays: it is when the latest turn began. ``ConversationNotFound`` if
        the conversation is not the principal's; ``InvalidRequest`` for an empty or long title.
        """
        ...

    async def get_conversation(
        self, conversation_id: str, principal: Principal
    ) -> tuple[ConversationInfo, list[StoredMessage], list[TurnInfo]]:
        """One conversation with its messages and turns; ``ConversationNotFound`` if absent."""
        ...

    async def delete_conversation(self, conversation_id: str, principal: Principal) -> None:
        """Delete a conversation and everything in it; ``ConversationNotFound`` if absent."""
        ...

    async def tag_sentiment(self, turn_id: str, tag: SentimentTag) -> None:
        """Store the sentiment of the user message that started ``turn_id`` (again replaces it).

        The tag is dated when the turn began. ``NotFound`` (code ``turn_not_found``) if no
        turn has this id; ``ValueError`` for a label, score or length the table cannot hold.
        """
        ...

    async def recent_sentiments(self, conversation_id: str, limit: int) -> list[SentimentTag]:
        """The conversation's latest tags, newest first (for rules such as N negative in a row).

        Not scoped to a principal: the caller must already know the conversation is theirs.
        """
        ...

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
        """Counts and mean per bucket and assistant, oldest first, of ``tenant``'s tags only.

        Per conversation too when ``conversation_id`` is given; ``user_id`` narrows to one
        user, ``since`` (timezone-aware) to tags dated from then on, ``until`` (the same) to
        tags dated before it. Buckets start on the UTC hour, day or Monday.
        ``InvalidRequest`` for another ``bucket``, or an ``until`` before ``since``.
        """
        ...

    async def put_feedback(
        self,
        principal: Principal,
        turn_id: str,
        rating: FeedbackRating,
        comment: str | None = None,
    ) -> StoredFeedback:
        """Store the principal's rating of a turn of their conversation; again replaces it.

        ``NotFound`` (code ``turn_not_found``) unless the turn is in one of the principal's
        conversations; ``InvalidRequest`` for another rating or a comment longer than
        ``COMMENT_LENGTH``. An empty comment is stored as none.
        """
        ...

    async def delete_feedback(self, principal: Principal, turn_id: str) -> bool:
        """Delete the principal's rating of a turn; whether there was one."""
        ...

    async def get_feedback_for(
        self, conversation_id: str, principal: Principal
    ) -> dict[str, StoredFeedback]:
        """The principal's ratings of the conversation's turns, by turn id.

        Empty when the conversation is not the principal's (or has no ratings).
        """
        ...

    async def list_feedback(
        self,
        tenant: str,
        *,
        rating: FeedbackRating | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[StoredFeedback]:
        """The tenant's ratings, newest first (ids sort by creation time): for its admins.

        ``rating`` keeps only those; ``after`` is the id of the last one of the previous
        page. ``InvalidRequest`` for another rating or a negative ``limit``.
        """
        ...

    async def model_stats(
        self,
        tenant: str | None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        assistant: str | None = None,
    ) -> list[ModelStats]:
        """Finished turns by assistant, model and route (``graft.store.model_stats``).

        ``tenant`` ``None``: every tenant's. ``InvalidRequest`` for a bad window.
        """
        ...

    async def turn_model(self, turn_id: str) -> tuple[str, str] | None:
        """The assistant and the model that answered the turn; ``None`` if there is none."""
        ...

    async def create_user(
        self, *, tenant: str, name: str, roles: list[str], groups: list[str]
    ) -> User:
        """Add a user; ``Conflict`` if the tenant has one of that name."""
        ...

    async def get_user(self, tenant: str, name: str) -> User:
        """One user; ``NotFound`` (code ``user_not_found``) if there is none."""
        ...

    async def list_users(self, tenant: str | None = None) -> list[User]:
        """Users of one tenant, or of all, ordered by tenant and name."""
        ...

    async def set_user_disabled(self, tenant: str, name: str, disabled: bool) -> User:
        """Disable a user (their keys stop working) or enable them again."""
        ...

    async def set_user_roles(self, tenant: str, name: str, roles: list[str]) -> User:
        """Replace a user's roles (checked by the caller); ``NotFound`` if there is no user.

        Keys are not changed: each request gets the roles its key carries that the user
        still has (``graft.identity``), so a role taken away is gone from the user's keys and
        sessions at their next request, and a role given reaches only keys made after.
        """
        ...

    async def set_user_groups(self, tenant: str, name: str, groups: list[str]) -> User:
        """Replace a user's groups; ``NotFound`` if there is no user.

        They apply to the user's keys and sessions from their next request.
        """
        ...

    async def has_users(self) -> bool:
        """Whether any user exists (then requests need credentials)."""
        ...

    async def create_key(
        self, user: User, *, key_id: str, sha256: str, name: str, roles: list[str], created_by: str
    ) -> ApiKeyInfo:
        """Store a new key of ``user`` by its public id and the digest of the whole key."""
        ...

    async def find_key(self, key_id: str) -> StoredKey | None:
        """The key with this public id and its user, revoked or not; ``None`` if unknown."""
        ...

    async def list_keys(
        self, tenant: str | None = None, user: str | None = None
    ) -> list[ApiKeyInfo]:
        """Keys, newest first, of one tenant (and one user of it), or of all."""
        ...

    async def revoke_key(self, key_id: str, tenant: str | None = None) -> ApiKeyInfo:
        """Revoke a key (again is a no-op); ``NotFound`` unless it exists in ``tenant``."""
        ...

    async def create_session(
        self, *, session_id: str, key_id: str, expires_at: datetime
    ) -> StoredSession:
        """Store a session opened with the key ``key_id``, by ``session_id`` (a digest).

        The key's user's expired sessions go at the same time. ``NotFound`` if the key is
        unknown.
        """
        ...

    async def find_session(self, session_id: str) -> StoredSession | None:
        """The session with its key and user as they are now.

        ``None`` if it is unknown or expired, its key revoked or its user disabled.
        """
        ...

    async def touch_session(self, session_id: str, at: datetime) -> None:
        """Set the session's ``last_seen_at`` (nothing if it is gone)."""
        ...

    async def delete_session(self, session_id: str) -> bool:
        """End a session; whether there was one."""
        ...

    async def delete_user_sessions(self, tenant: str, name: str) -> int:
        """End every session of one user; return how many."""
        ...

    async def append_audit(self, event: AuditEvent) -> AuditRecord:
        """Append ``event`` to the audit log as the next record of the chain, and return it.

        The newest record is read and the new one written under one lock, so concurrent
        appends (from any process sharing the database) still make one gapless chain.
        """
        ...

    async def list_audit(
        self, after_seq: int | None, limit: int, tenant: str | None = None
    ) -> list[AuditRecord]:
        """Audit records oldest first: the first ``limit`` after ``after_seq``, or the newest.

        With ``after_seq=None``, the newest ``limit`` records. ``tenant`` keeps only the
        records of that tenant.
        """
        ...

    def iter_audit(self, *, batch: int = 500) -> AsyncIterator[AuditRecord]:
        """Every audit record in ``seq`` order, read ``batch`` at a time (for ``verify``)."""
        ...

    async def export_user_data(self, tenant: str, user: str) -> dict[str, Any]:
        """Everything stored of one user's conversations, as one JSON-serialisable document.

        Every conversation with its messages (a tagged one with its ``sentiment``), turns and
        tool runs, oldest first, in the shape of ``graft.store.privacy.export_document``; none
        of another user's or tenant's.
        """
        ...

    async def delete_user_data(self, tenant: str, user: str) -> int:
        """Delete every conversation of one user (with everything in it); return how many.

        The user's account and keys stay: ``set_user_disabled`` and ``revoke_key`` end those.
        """
        ...

    async def purge_conversations(self, assistant: str, older_than: datetime) -> int:
        """Delete the assistant's conversations last updated before ``older_than``.

        Every tenant's; ``older_than`` must be timezone-aware. Returns how many went.
        """
        ...

    async def list_tenant_conversations(
        self, tenant: str, *, limit: int = 50, offset: int = 0
    ) -> list[ConversationInfo]:
        """Every user's conversations in ``tenant``, most recently updated first: metadata.

        For admins. ``title`` is always ``""``: a title is the first user message, which is
        content, not metadata. ``message_count`` is set.
        """
        ...

    async def put_assistant(
        self, tenant: str, name: str, definition: dict[str, Any], actor: str
    ) -> None:
        """Create the tenant's assistant ``name``, or replace its definition.

        ``actor`` is who creates it (kept as ``created_by`` when it is replaced). The caller
        validates ``definition`` (``graft.assistants``); the store keeps any JSON object.
        """
        ...

    async def get_assistant(self, tenant: str, name: str) -> dict[str, Any] | None:
        """The definition of the tenant's assistant ``name``; ``None`` if it has none."""
        ...

    async def list_assistants(self, tenant: str) -> list[StoredAssistant]:
        """The tenant's stored assistants, by name."""
        ...

    async def delete_assistant(self, tenant: str, name: str) -> bool:
        """Delete the tenant's assistant ``name``; whether there was one."""
        ...


TITLE_LENGTH = 80
"""Conversation titles are the first user message cut to this many characters."""


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


TITLE_MAX = 200
"""The longest title a conversation may be renamed to, in characters."""

COMMENT_LENGTH = 4000
"""The longest comment a rating may carry, in characters."""

RATINGS: tuple[FeedbackRating, ...] = ("up", "down")
"""The ratings a turn may get."""


def check_title(title: str) -> str:
    """A title as a rename stores it: on one line, whitespace runs made one space.

    Raises:
        InvalidRequest: It is empty once stripped, or longer than ``TITLE_MAX``.
    """
    line = " ".join(title.split())
    if not line:
        raise InvalidRequest("title must not be empty", param="title")
    if len(line) > TITLE_MAX:
        raise InvalidRequest(
            f"title is {len(line)} characters long; the limit is {TITLE_MAX}", param="title"
        )
    return line


def check_rating(rating: str) -> FeedbackRating:
    """``rating`` if it is one of ``RATINGS``.

    Raises:
        InvalidRequest: It is not.
    """
    for known in RATINGS:
        if rating == known:
            return known
    raise InvalidRequest(f"rating must be 'up' or 'down', not {rating[:20]!r}", param="rating")


def check_comment(comment: str | None) -> str | None:
    """A comment as it is stored: ``None`` for none or an empty one.

    Raises:
        InvalidRequest: It is longer than ``COMMENT_LENGTH``.
    """
    if not comment or not comment.strip():
        return None
    if len(comment) > COMMENT_LENGTH:
        raise InvalidRequest(
            f"comment is {len(comment)} characters long; the limit is {COMMENT_LENGTH}",
            param="comment",
        )
    return comment


def check_page(limit: int, offset: int) -> None:
    """Refuse a negative page size or offset.

    Raises:
        InvalidRequest: ``limit`` or ``offset`` is negative.
    """
    if limit < 0:
        raise InvalidRequest("limit must not be negative", param="limit")
    if offset < 0:
        raise InvalidRequest("offset must not be negative", param="offset")

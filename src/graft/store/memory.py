"""The in-memory store: the ``Store`` protocol over plain dicts, for tests and ``memory://``.

It keeps the SQL store's semantics exactly (scoping by tenant and user, the errors it
raises, the order it returns things in, the titles it makes) so that code tested against it
behaves the same on SQLite and PostgreSQL; ``tests/store`` runs one suite over all three.
Everything handed in or out is copied, as a database would, so callers cannot change stored
state by mutating what they passed or got back. Nothing survives the process.

It encrypts nothing: encryption at rest (``graft.crypto``) protects what reaches a disk,
and nothing here does; ``memory://`` ignores the data key settings.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import anyio.lowlevel

from graft.audit import GENESIS_HASH, AuditEvent, AuditRecord, seal
from graft.context import Principal
from graft.errors import Conflict, ConversationNotFound, NotFound
from graft.messages import Message, ToolCall, Usage, new_id
from graft.store import assistants, privacy, sentiments
from graft.store.base import (
    ApiKeyInfo,
    ConversationInfo,
    FeedbackRating,
    SentimentBucket,
    SentimentPoint,
    SentimentTag,
    StoredAssistant,
    StoredFeedback,
    StoredKey,
    StoredMessage,
    StoredSession,
    ToolRun,
    TurnInfo,
    TurnStatus,
    User,
    check_comment,
    check_page,
    check_rating,
    check_title,
    make_title,
)
from graft.store.model_stats import ModelStats, TurnFacts, check_window, summarize
from graft.store.turn_citations import decode_citations, encode_citations
from graft.store.users import user_not_found

__all__ = ["MemoryStore"]


@dataclass(slots=True)
class _Conversation:
    info: ConversationInfo
    messages: list[StoredMessage] = field(default_factory=list)
    turns: dict[str, TurnInfo] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Tagged:
    """A sentiment tag with what the SQL table keeps beside it."""

    tag: SentimentTag
    conversation: ConversationInfo
    created_at: datetime


@dataclass(slots=True)
class _Session:
    key_id: str
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime


class MemoryStore:
    """The ``Store`` in memory, with the SQL store's semantics."""

    def __init__(self) -> None:
        """Start empty."""
        self._conversations: dict[str, _Conversation] = {}
        self._turn_owner: dict[str, str] = {}
        """Turn id to conversation id."""
        self._users: dict[tuple[str, str], User] = {}
        """(tenant, name) to user."""
        self._keys: dict[str, tuple[ApiKeyInfo, str]] = {}
        """Key id to the key and its digest."""
        self._sessions: dict[str, _Session] = {}
        """Session id (the token's digest) to the session."""
        self._audit: list[AuditRecord] = []
        """The audit log, oldest first (records are frozen: shared safely)."""
        self._sentiments: dict[str, _Tagged] = {}
        """Turn id to its sentiment tag (frozen: shared safely)."""
        self._assistants: dict[tuple[str, str], StoredAssistant] = {}
        """(tenant, name) to the stored assistant, its definition as encoded JSON would be."""
        self._feedback: dict[tuple[str, str, str], StoredFeedback] = {}
        """(tenant, user, turn id) to the rating (frozen: shared safely)."""

    async def start(self) -> None:
        """Nothing to open or migrate."""
        await anyio.lowlevel.checkpoint()

    async def close(self) -> None:
        """Nothing to release; the data stays until the object goes."""
        await anyio.lowlevel.checkpoint()

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

        Raises:
            ConversationNotFound: ``conversation_id`` is not one of the principal's.
        """
        await anyio.lowlevel.checkpoint()
        now = datetime.now(UTC)
        title = make_title(new_messages)
        if conversation_id is None:
            cid = new_id("conv")
            conv = _Conversation(
                ConversationInfo(
                    id=cid,
                    user_id=principal.user_id,
                    tenant=principal.tenant,
                    assistant=assistant,
                    title=title,
                    created_at=now,
                    updated_at=now,
                )
            )
            self._conversations[cid] = conv
        else:
            cid = conversation_id
            conv = self._owned(cid, principal)
            conv.info.updated_at = now
            if not conv.info.title and title:
                conv.info.title = title
        tid = new_id("turn")
        conv.turns[tid] = TurnInfo(
            id=tid, conversation_id=cid, status="running", model=model, started_at=now
        )
        self._turn_owner[tid] = cid
        conv.messages.extend(StoredMessage(_copy(m), tid, now) for m in new_messages)
        return cid, tid

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

        Raises:
            NotFound: No running turn has this id (unknown, finished, or deleted with its
                conversation).
            TypeError: A citation holds a value JSON cannot.
        """
        cited = encode_citations(citations)  # as the SQL column keeps them
        await anyio.lowlevel.checkpoint()
        now = datetime.now(UTC)
        cid = self._turn_owner.get(turn_id)
        conv = self._conversations.get(cid) if cid is not None else None
        turn = conv.turns.get(turn_id) if conv is not None else None
        if conv is None or turn is None or turn.status != "running":
            raise NotFound(f"no running turn {turn_id!r}", code="turn_not_found")
        conv.messages.extend(StoredMessage(_copy(m), turn_id, now) for m in messages)
        turn.tool_runs = [dataclasses.replace(run) for run in tool_runs]
        turn.status = status or ("failed" if error is not None else "done")
        turn.finish_reason = finish_reason
        turn.error = error
        turn.usage = Usage(usage.prompt_tokens, usage.completion_tokens)
        turn.finished_at = now
        turn.duration_ms = duration_ms
        turn.citations = decode_citations(cited)
        turn.model = model or turn.model
        turn.route, turn.first_token_ms = route, first_token_ms

    async def load_history(self, conversation_id: str, principal: Principal) -> list[Message]:
        """Every message of the principal's conversation, oldest first.

        Raises:
            ConversationNotFound: The conversation is not one of the principal's.
        """
        await anyio.lowlevel.checkpoint()
        conv = self._owned(conversation_id, principal)
        return [_copy(s.message) for s in conv.messages]

    async def list_conversations(
        self, principal: Principal, *, limit: int = 50, offset: int = 0, query: str | None = None
    ) -> list[ConversationInfo]:
        """The principal's conversations, most recently updated first; titled with ``query``.

        Raises:
            InvalidRequest: ``limit`` or ``offset`` is negative.
        """
        check_page(limit, offset)
        await anyio.lowlevel.checkpoint()
        wanted = (query or "").casefold()
        mine = [
            c.info
            for c in self._conversations.values()
            if c.info.tenant == principal.tenant
            and c.info.user_id == principal.user_id
            and wanted in c.info.title.casefold()
        ]
        # The SQL store's ORDER BY updated_at DESC, id DESC.
        mine.sort(key=lambda info: (info.updated_at, info.id), reverse=True)
        return [dataclasses.replace(info) for info in mine[offset : offset + limit]]

    async def rename_conversation(
        self, conversation_id: str, principal: Principal, title: str
    ) -> ConversationInfo:
        """Set the title of the principal's conversation; ``updated_at`` stays.

        Raises:
            ConversationNotFound: The conversation is not the principal's.
            InvalidRequest: The title is empty or too long (``check_title``).
        """
        line = check_title(title)
        await anyio.lowlevel.checkpoint()
        conv = self._owned(conversation_id, principal)
        conv.info.title = line
        return dataclasses.replace(conv.info)

    async def get_conversation(
        self, conversation_id: str, principal: Principal
    ) -> tuple[ConversationInfo, list[StoredMessage], list[TurnInfo]]:
        """One conversation with its messages (oldest first) and turns (by start time).

        Raises:
            ConversationNotFound: The conversation is not one of the principal's.
        """
        await anyio.lowlevel.checkpoint()
        conv = self._owned(conversation_id, principal)
        stored = [StoredMessage(_copy(s.message), s.turn_id, s.created_at) for s in conv.messages]
        sentiments.attach(
            stored, {t: self._sentiments[t].tag for t in conv.turns if t in self._sentiments}
        )
        turns = sorted(conv.turns.values(), key=lambda t: (t.started_at, t.id))
        return dataclasses.replace(conv.info), stored, [_copy_turn(t) for t in turns]

    async def delete_conversation(self, conversation_id: str, principal: Principal) -> None:
        """Delete the principal's conversation with its turns, messages and tool runs.

        Raises:
            ConversationNotFound: The conversation is not one of the principal's.
        """
        await anyio.lowlevel.checkpoint()
        self._owned(conversation_id, principal)
        self._delete([conversation_id])

    # --- sentiments ---------------------------------------------------------------------

    async def tag_sentiment(self, turn_id: str, tag: SentimentTag) -> None:
        """Store the tag of the turn's user message, replacing any; ``NotFound`` if no turn."""
        sentiments.check_tag(tag)
        await anyio.lowlevel.checkpoint()
        cid = self._turn_owner.get(turn_id)
        if cid is None:
            raise NotFound(f"no turn {turn_id!r}", code="turn_not_found")
        conv = self._conversations[cid]
        started_at = conv.turns[turn_id].started_at
        self._sentiments[turn_id] = _Tagged(tag, dataclasses.replace(conv.info), started_at)

    async def recent_sentiments(self, conversation_id: str, limit: int) -> list[SentimentTag]:
        """The conversation's latest ``limit`` tags, newest first."""
        check_page(limit, 0)
        await anyio.lowlevel.checkpoint()
        theirs = [
            (t.created_at, turn_id, t.tag)
            for turn_id, t in self._sentiments.items()
            if t.conversation.id == conversation_id
        ]
        theirs.sort(key=lambda found: found[:2], reverse=True)  # created_at, turn_id DESC
        return [tag for _, _, tag in theirs[:limit]]

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
        await anyio.lowlevel.checkpoint()
        found = sorted(
            (t.created_at, turn_id, t)
            for turn_id, t in self._sentiments.items()
            if t.conversation.tenant == tenant
            and assistant in (None, t.conversation.assistant)
            and conversation_id in (None, t.conversation.id)
            and user_id in (None, t.conversation.user_id)
            and (since is None or t.created_at >= since)
            and (until is None or t.created_at < until)
        )
        rows = [
            (at, t.conversation.assistant, t.conversation.id, t.tag.label, t.tag.score)
            for at, _, t in found
        ]
        return sentiments.report_points(rows, bucket, per_conversation=conversation_id is not None)

    # --- per-model reports (graft.store.model_stats) --------------------------------------

    async def model_stats(
        self,
        tenant: str | None,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        assistant: str | None = None,
    ) -> list[ModelStats]:
        """Finished turns by assistant, model and route, as the SQL store groups them."""
        check_window(since, until)
        await anyio.lowlevel.checkpoint()
        votes: dict[tuple[str, str], int] = {}
        for rated in self._feedback.values():
            votes[rated.turn_id, rated.rating] = votes.get((rated.turn_id, rated.rating), 0) + 1
        facts = [
            TurnFacts(
                conv.info.assistant,
                turn.model,
                turn.route,
                turn.status,
                turn.usage.prompt_tokens,
                turn.usage.completion_tokens,
                turn.duration_ms,
                turn.first_token_ms,
                votes.get((turn.id, "up"), 0),
                votes.get((turn.id, "down"), 0),
            )
            for conv in self._conversations.values()
            if tenant in (None, conv.info.tenant) and assistant in (None, conv.info.assistant)
            for turn in conv.turns.values()
            if turn.status != "running"
            and (since is None or turn.started_at >= since)
            and (until is None or turn.started_at < until)
        ]
        return summarize(facts)

    async def turn_model(self, turn_id: str) -> tuple[str, str] | None:
        """The assistant and the model of the turn ``turn_id``; ``None`` if there is none."""
        await anyio.lowlevel.checkpoint()
        cid = self._turn_owner.get(turn_id)
        conv = self._conversations.get(cid) if cid is not None else None
        turn = conv.turns.get(turn_id) if conv is not None else None
        return None if conv is None or turn is None else (conv.info.assistant, turn.model)

    # --- feedback -----------------------------------------------------------------------

    async def put_feedback(
        self,
        principal: Principal,
        turn_id: str,
        rating: FeedbackRating,
        comment: str | None = None,
    ) -> StoredFeedback:
        """Store the principal's rating of a turn of their conversation; again replaces it.

        Raises:
            NotFound: The turn is not in one of the principal's conversations.
            InvalidRequest: Another rating, or a comment longer than ``COMMENT_LENGTH``.
        """
        rating, comment = check_rating(rating), check_comment(comment)
        await anyio.lowlevel.checkpoint()
        cid = self._turn_owner.get(turn_id)
        conv = self._conversations.get(cid) if cid is not None else None
        if conv is None or (conv.info.tenant, conv.info.user_id) != (
            principal.tenant,
            principal.user_id,
        ):
            raise NotFound(f"no turn {turn_id!r} in your conversations", code="turn_not_found")
        key = (principal.tenant, principal.user_id, turn_id)
        now = datetime.now(UTC)
        old = self._feedback.get(key)
        stored = StoredFeedback(
            id=old.id if old else new_id("fb"),
            tenant=principal.tenant,
            user_id=principal.user_id,
            conversation_id=conv.info.id,
            turn_id=turn_id,
            assistant=conv.info.assistant,
            rating=rating,
            comment=comment,
            created_at=old.created_at if old else now,
            updated_at=now,
        )
        self._feedback[key] = stored
        return stored

    async def delete_feedback(self, principal: Principal, turn_id: str) -> bool:
        """Delete the principal's rating of a turn; whether there was one."""
        await anyio.lowlevel.checkpoint()
        key = (principal.tenant, principal.user_id, turn_id)
        return self._feedback.pop(key, None) is not None

    async def get_feedback_for(
        self, conversation_id: str, principal: Principal
    ) -> dict[str, StoredFeedback]:
        """The principal's ratings of the conversation's turns, by turn id."""
        await anyio.lowlevel.checkpoint()
        return {
            f.turn_id: f
            for (tenant, user, _), f in self._feedback.items()
            if (tenant, user) == (principal.tenant, principal.user_id)
            and f.conversation_id == conversation_id
        }

    async def list_feedback(
        self,
        tenant: str,
        *,
        rating: FeedbackRating | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[StoredFeedback]:
        """A page of the tenant's ratings, newest first (by id), from after the id ``after``."""
        check_page(limit, 0)
        wanted = None if rating is None else check_rating(rating)
        await anyio.lowlevel.checkpoint()
        found = sorted(
            (
                f
                for f in self._feedback.values()
                if f.tenant == tenant
                and wanted in (None, f.rating)
                and (after is None or f.id < after)
            ),
            key=lambda f: f.id,
            reverse=True,
        )
        return found[:limit]

    # --- users and keys (frozen dataclasses: shared safely, never mutated) ----------------

    async def create_user(
        self, *, tenant: str, name: str, roles: list[str], groups: list[str]
    ) -> User:
        """Add a user; ``Conflict`` if the tenant has one of that name."""
        await anyio.lowlevel.checkpoint()
        if (tenant, name) in self._users:
            raise Conflict(f"tenant {tenant!r} already has a user {name!r}", code="user_exists")
        user = User(new_id("user"), tenant, name, tuple(roles), tuple(groups), datetime.now(UTC))
        self._users[tenant, name] = user
        return user

    async def get_user(self, tenant: str, name: str) -> User:
        """One user; ``NotFound`` if there is none."""
        await anyio.lowlevel.checkpoint()
        return self._user(tenant, name)

    async def list_users(self, tenant: str | None = None) -> list[User]:
        """Users of one tenant, or of all, ordered by tenant and name."""
        await anyio.lowlevel.checkpoint()
        return [u for key, u in sorted(self._users.items()) if tenant in (None, u.tenant)]

    async def set_user_disabled(self, tenant: str, name: str, disabled: bool) -> User:
        """Disable a user or enable them again; disabling twice keeps the first time."""
        await anyio.lowlevel.checkpoint()
        user = self._user(tenant, name)
        if disabled != (not user.active):
            user = dataclasses.replace(user, disabled_at=datetime.now(UTC) if disabled else None)
            self._users[tenant, name] = user
        return user

    async def set_user_roles(self, tenant: str, name: str, roles: list[str]) -> User:
        """Replace a user's roles; ``NotFound`` if there is no such user."""
        await anyio.lowlevel.checkpoint()
        user = dataclasses.replace(self._user(tenant, name), roles=tuple(roles))
        self._users[tenant, name] = user
        return user

    async def set_user_groups(self, tenant: str, name: str, groups: list[str]) -> User:
        """Replace a user's groups; ``NotFound`` if there is no such user."""
        await anyio.lowlevel.checkpoint()
        user = dataclasses.replace(self._user(tenant, name), groups=tuple(groups))
        self._users[tenant, name] = user
        return user

    async def has_users(self) -> bool:
        """Whether any user exists."""
        await anyio.lowlevel.checkpoint()
        return bool(self._users)

    async def create_key(
        self, user: User, *, key_id: str, sha256: str, name: str, roles: list[str], created_by: str
    ) -> ApiKeyInfo:
        """Store a new key of ``user``."""
        await anyio.lowlevel.checkpoint()
        self._user(user.tenant, user.name)
        info = ApiKeyInfo(
            key_id, user.tenant, user.name, name, tuple(roles), created_by, datetime.now(UTC)
        )
        self._keys[key_id] = (info, sha256)
        return info

    async def find_key(self, key_id: str) -> StoredKey | None:
        """The key with this public id and its user; ``None`` if unknown."""
        await anyio.lowlevel.checkpoint()
        if key_id not in self._keys:
            return None
        info, sha256 = self._keys[key_id]
        return StoredKey(info, sha256, self._user(info.tenant, info.user))

    async def list_keys(
        self, tenant: str | None = None, user: str | None = None
    ) -> list[ApiKeyInfo]:
        """Keys, newest first."""
        await anyio.lowlevel.checkpoint()
        keys = [
            info
            for info, _ in self._keys.values()
            if tenant in (None, info.tenant) and user in (None, info.user)
        ]
        return sorted(keys, key=lambda info: (info.created_at, info.id), reverse=True)

    async def revoke_key(self, key_id: str, tenant: str | None = None) -> ApiKeyInfo:
        """Revoke a key (again is a no-op)."""
        await anyio.lowlevel.checkpoint()
        info, sha256 = self._keys.get(key_id, (None, ""))
        if info is None or tenant not in (None, info.tenant):
            raise NotFound(f"no API key {key_id!r}", code="key_not_found")
        if info.revoked_at is None:
            info = dataclasses.replace(info, revoked_at=datetime.now(UTC))
            self._keys[key_id] = (info, sha256)
        return info

    # --- browser sessions ---------------------------------------------------------------

    async def create_session(
        self, *, session_id: str, key_id: str, expires_at: datetime
    ) -> StoredSession:
        """Store a session opened with ``key_id``; its user's expired sessions go."""
        await anyio.lowlevel.checkpoint()
        if key_id not in self._keys:
            raise NotFound(f"no API key {key_id!r}", code="key_not_found")
        info, _ = self._keys[key_id]
        now = datetime.now(UTC)
        owner = (info.tenant, info.user)
        self._sessions = {
            sid: s
            for sid, s in self._sessions.items()
            if s.expires_at > now or self._session_owner(s) != owner
        }
        self._sessions[session_id] = _Session(key_id, now, expires_at, now)
        return StoredSession(
            session_id, info, self._user(info.tenant, info.user), now, expires_at, now
        )

    async def find_session(self, session_id: str) -> StoredSession | None:
        """The live session with its key and user; ``None`` if gone, expired or refused."""
        await anyio.lowlevel.checkpoint()
        session = self._sessions.get(session_id)
        if session is None or session.expires_at <= datetime.now(UTC):
            return None
        info, _ = self._keys[session.key_id]
        user = self._user(info.tenant, info.user)
        if info.revoked_at is not None or not user.active:
            return None
        return StoredSession(
            session_id,
            info,
            user,
            session.created_at,
            session.expires_at,
            session.last_seen_at,
        )

    async def touch_session(self, session_id: str, at: datetime) -> None:
        """Set the session's ``last_seen_at``."""
        await anyio.lowlevel.checkpoint()
        if session_id in self._sessions:
            self._sessions[session_id].last_seen_at = at

    async def delete_session(self, session_id: str) -> bool:
        """End a session; whether there was one."""
        await anyio.lowlevel.checkpoint()
        return self._sessions.pop(session_id, None) is not None

    async def delete_user_sessions(self, tenant: str, name: str) -> int:
        """End every session of one user."""
        await anyio.lowlevel.checkpoint()
        self._user(tenant, name)
        theirs = [
            sid for sid, s in self._sessions.items() if self._session_owner(s) == (tenant, name)
        ]
        for sid in theirs:
            del self._sessions[sid]
        return len(theirs)

    # --- the audit log ------------------------------------------------------------------

    async def append_audit(self, event: AuditEvent) -> AuditRecord:
        """Append ``event`` as the next record of the audit chain."""
        await anyio.lowlevel.checkpoint()
        # No await from reading the newest record to appending: one step for the event loop.
        newest = self._audit[-1] if self._audit else None
        seq, prev_hash = (newest.seq + 1, newest.hash) if newest else (1, GENESIS_HASH)
        record = seal(event, seq=seq, prev_hash=prev_hash)
        self._audit.append(record)
        return record

    async def list_audit(
        self, after_seq: int | None, limit: int, tenant: str | None = None
    ) -> list[AuditRecord]:
        """Audit records oldest first: ``limit`` after ``after_seq``, or the newest."""
        check_page(limit, 0)
        await anyio.lowlevel.checkpoint()
        found = [r for r in self._audit if tenant in (None, r.tenant)]
        if after_seq is None:
            return found[len(found) - limit :] if limit else []
        return [r for r in found if r.seq > after_seq][:limit]

    async def iter_audit(self, *, batch: int = 500) -> AsyncIterator[AuditRecord]:
        """Every audit record in ``seq`` order."""
        for start in range(0, len(self._audit), batch):
            await anyio.lowlevel.checkpoint()
            for record in self._audit[start : start + batch]:
                yield record

    # --- privacy: export, erasure, retention ----------------------------------------------

    async def export_user_data(self, tenant: str, user: str) -> dict[str, Any]:
        """Every conversation of one user, oldest first (``graft.store.privacy``)."""
        await anyio.lowlevel.checkpoint()
        theirs = sorted(
            (c.info for c in self._conversations.values()),
            key=lambda info: (info.created_at, info.id),
        )
        ids = [info.id for info in theirs if (info.tenant, info.user_id) == (tenant, user)]
        return await privacy.export_conversations(self, tenant, user, ids)

    async def delete_user_data(self, tenant: str, user: str) -> int:
        """Delete one user's conversations with everything in them; return how many."""
        await anyio.lowlevel.checkpoint()
        return self._delete(
            [
                cid
                for cid, c in self._conversations.items()
                if (c.info.tenant, c.info.user_id) == (tenant, user)
            ]
        )

    async def purge_conversations(self, assistant: str, older_than: datetime) -> int:
        """Delete the assistant's conversations not updated since ``older_than``."""
        privacy.check_aware(older_than)
        await anyio.lowlevel.checkpoint()
        return self._delete(
            [
                cid
                for cid, c in self._conversations.items()
                if c.info.assistant == assistant and c.info.updated_at < older_than
            ]
        )

    async def list_tenant_conversations(
        self, tenant: str, *, limit: int = 50, offset: int = 0
    ) -> list[ConversationInfo]:
        """A page of the tenant's conversations as metadata: no titles, message counts."""
        check_page(limit, offset)
        await anyio.lowlevel.checkpoint()
        found = [c for c in self._conversations.values() if c.info.tenant == tenant]
        found.sort(key=lambda c: (c.info.updated_at, c.info.id), reverse=True)
        return [
            dataclasses.replace(c.info, title="", message_count=len(c.messages))
            for c in found[offset : offset + limit]
        ]

    # --- stored assistants --------------------------------------------------------------

    async def put_assistant(
        self, tenant: str, name: str, definition: dict[str, Any], actor: str
    ) -> None:
        """Create or replace the tenant's assistant ``name``."""
        await anyio.lowlevel.checkpoint()
        now = datetime.now(UTC)
        old = self._assistants.get((tenant, name))
        self._assistants[tenant, name] = StoredAssistant(
            tenant,
            name,
            _copy_definition(definition),
            old.created_by if old else actor,
            old.created_at if old else now,
            now,
        )

    async def get_assistant(self, tenant: str, name: str) -> dict[str, Any] | None:
        """The definition of the tenant's assistant ``name``, or ``None``."""
        await anyio.lowlevel.checkpoint()
        found = self._assistants.get((tenant, name))
        return None if found is None else _copy_definition(found.definition)

    async def list_assistants(self, tenant: str) -> list[StoredAssistant]:
        """The tenant's stored assistants, by name."""
        await anyio.lowlevel.checkpoint()
        return [
            dataclasses.replace(found, definition=_copy_definition(found.definition))
            for (owner, _), found in sorted(self._assistants.items())
            if owner == tenant
        ]

    async def delete_assistant(self, tenant: str, name: str) -> bool:
        """Delete the tenant's assistant ``name``; whether there was one."""
        await anyio.lowlevel.checkpoint()
        return self._assistants.pop((tenant, name), None) is not None

    def _delete(self, conversation_ids: list[str]) -> int:
        for cid in conversation_ids:
            for turn_id in self._conversations.pop(cid).turns:
                self._turn_owner.pop(turn_id, None)
                self._sentiments.pop(turn_id, None)  # ON DELETE CASCADE
        gone = set(conversation_ids)
        self._feedback = {
            key: f for key, f in self._feedback.items() if f.conversation_id not in gone
        }
        return len(conversation_ids)

    def _session_owner(self, session: _Session) -> tuple[str, str]:
        info, _ = self._keys[session.key_id]
        return info.tenant, info.user

    def _user(self, tenant: str, name: str) -> User:
        user = self._users.get((tenant, name))
        if user is None:
            raise user_not_found(tenant, name)
        return user

    def _owned(self, conversation_id: str, principal: Principal) -> _Conversation:
        conv = self._conversations.get(conversation_id)
        if (
            conv is None
            or conv.info.tenant != principal.tenant
            or conv.info.user_id != principal.user_id
        ):
            raise ConversationNotFound(f"conversation {conversation_id!r} not found")
        return conv


def _copy(message: Message) -> Message:
    # Images belong to one model request, never to the stored conversation (as in SQL).
    return dataclasses.replace(
        message,
        tool_calls=[ToolCall(c.id, c.name, c.arguments) for c in message.tool_calls],
        images=[],
    )


def _copy_turn(turn: TurnInfo) -> TurnInfo:
    return dataclasses.replace(
        turn,
        usage=Usage(turn.usage.prompt_tokens, turn.usage.completion_tokens),
        tool_runs=[dataclasses.replace(run) for run in turn.tool_runs],
        citations=decode_citations(encode_citations(turn.citations)),
    )


def _copy_definition(definition: dict[str, Any]) -> dict[str, Any]:
    """A copy through JSON, as the column keeps it: what it cannot hold fails here too."""
    return assistants.decode(assistants.encode(definition))

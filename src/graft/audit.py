"""The audit log: who did what to what, and how it ended; append-only and hash-chained.

graft records security-relevant events here: user and key changes made with ``graft users``
and ``graft keys``, failed authentications, every server-side tool call (with a digest of
its arguments, never the arguments), and refusals (``access.denied``). A record says when
(``at``), in which tenant, who (``actor``: a user id, ``cli:NAME`` for the command line, or
``anonymous``), what (``action``, such as ``key.create`` or ``tool.call``), to what
(``target``), with which ``outcome`` (``ok``, ``denied``, ``error``) and a few ``details``:
a small JSON object that never holds message contents or tool arguments, and in which every
string has been through ``graft.secrets.mask_secrets``.

**The chain.** Every record carries the hash of the record before it (``prev_hash``; the
first one has 64 zeros) and its own ``hash``: the SHA-256 of a canonical JSON encoding
(sorted keys, no whitespace, UTF-8, non-ASCII kept as is) of all its other fields, ``seq``
and ``prev_hash`` included (``chain_hash``). ``seq`` counts from 1 without gaps: the store
gives each record the next number while it holds the log's append lock (an advisory lock on
PostgreSQL, the single writer on SQLite), so concurrent appends still make one chain.

**What ``verify`` detects.** Anyone who edits a record (any field) without recomputing its
hash, deletes or inserts a record anywhere but at the end, or reorders records, breaks the
chain, and ``verify`` names the first record where it breaks and why: ``edited`` (its hash
does not match its content), ``missing`` (a gap in ``seq``) or ``broken_link`` (its
``prev_hash`` is not the hash of the record before it: that one, or this one, was rewritten).
Deleting the *newest* records leaves a shorter chain that is still valid: nothing in the
log can tell. Anchoring closes that: ``graft audit verify`` prints the newest hash, and
``verify(store, anchor=H)`` (``graft audit verify --expect-hash H``) fails unless the chain
still holds a record with that hash, so keeping the printed hash elsewhere (a ticket, a
log shipper, another database) makes truncation, and the log's wholesale replacement,
detectable up to that point.

**Threat model.** The chain stops nobody from writing to the database; it makes changes
visible to whoever verifies. It detects edits, deletions and reordering by someone who can
change rows but does not rewrite the chain from the changed record on; the hash is keyless,
so a database superuser who recomputes every following hash is *not* detected, except
against an anchor kept out of their reach (see above).

**When recording fails.** ``record`` never raises: a tool call, a failed authentication or
a refusal happens whether or not the audit write succeeds, and a database hiccup must not
turn into failed requests (or let an attacker make requests fail by filling the disk). The
failure is logged at ERROR level with the event, so a log pipeline keeps a trace of it.
Administrative changes from the command line check the result instead: the CLI exits with
an error when a change it made could not be recorded.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Literal, TypeVar

from graft.errors import GraftError, PermissionDenied
from graft.secrets import mask_secrets

if TYPE_CHECKING:
    from graft.context import Context, Principal
    from graft.store.base import Store

__all__ = [
    "GENESIS_HASH",
    "AuditEvent",
    "AuditRecord",
    "Outcome",
    "Problem",
    "VerifyResult",
    "arguments_digest",
    "audited_tool_call",
    "chain_hash",
    "encode_details",
    "record",
    "record_denied",
    "seal",
    "tail",
    "verify",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

Outcome = Literal["ok", "denied", "error"]
Problem = Literal["edited", "missing", "broken_link", "anchor_not_found", "unreadable"]

GENESIS_HASH: Final = "0" * 64
"""The ``prev_hash`` of the first record."""

FIELD_CHARS: Final = 255
"""``tenant``, ``actor``, ``action`` and ``target`` are cut to this many characters."""
DETAIL_CHARS: Final = 512
"""A string in ``details`` longer than this is cut: details stay small."""


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """Something to record: who (``actor``) did ``action`` to ``target``, and the outcome."""

    action: str
    """What happened, ``noun.verb``: ``user.create``, ``key.revoke``, ``tool.call``."""
    actor: str
    """A user id, ``cli:NAME`` for the command line, or ``anonymous``."""
    tenant: str = ""
    """The tenant it happened in; ``""`` when unknown (a failed authentication)."""
    target: str = ""
    """What it was done to: a user name, a key id, a tool name, a path."""
    outcome: Outcome = "ok"
    details: Mapping[str, Any] = field(default_factory=dict)
    """A few JSON-serialisable facts; never message contents, arguments or secrets."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An event as stored: its place in the chain, its time, and the hashes."""

    seq: int
    at: datetime
    tenant: str
    actor: str
    action: str
    target: str
    outcome: str
    details: str
    """The details as stored: JSON text, masked."""
    prev_hash: str
    hash: str

    def computed_hash(self) -> str:
        """The hash this record's content calls for (``hash`` unless it was edited)."""
        return chain_hash(
            seq=self.seq,
            at=self.at,
            tenant=self.tenant,
            actor=self.actor,
            action=self.action,
            target=self.target,
            outcome=self.outcome,
            details=self.details,
            prev_hash=self.prev_hash,
        )

    def to_json(self) -> dict[str, Any]:
        """The record as a JSON object (details parsed), for the CLI and the REST API."""
        try:
            details: Any = json.loads(self.details)
        except json.JSONDecodeError:  # an edited record: show what is there
            details = self.details
        return {
            "seq": self.seq,
            "at": _timestamp(self.at),
            "tenant": self.tenant,
            "actor": self.actor,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "details": details,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


def _timestamp(at: datetime) -> str:
    """``at`` in UTC with microseconds, always the same length: the form that is hashed."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def chain_hash(
    *,
    seq: int,
    at: datetime,
    tenant: str,
    actor: str,
    action: str,
    target: str,
    outcome: str,
    details: str,
    prev_hash: str,
) -> str:
    """SHA-256 (hex) of the canonical JSON of every field of a record but its hash."""
    canonical = json.dumps(
        {
            "seq": seq,
            "at": _timestamp(at),
            "tenant": tenant,
            "actor": actor,
            "action": action,
            "target": target,
            "outcome": outcome,
            "details": details,
            "prev_hash": prev_hash,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def _clean(value: Any) -> Any:
    """``value`` with every string masked and cut, at any depth; other scalars as they are."""
    if isinstance(value, str):
        masked = mask_secrets(value)
        return masked if len(masked) <= DETAIL_CHARS else masked[: DETAIL_CHARS - 1] + "…"
    if isinstance(value, Mapping):
        return {str(_clean(str(k))): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value) if isinstance(value, set | frozenset) else value
        return [_clean(item) for item in items]
    if value is None or isinstance(value, bool | int | float):
        return value
    return _clean(str(value))


def encode_details(details: Mapping[str, Any]) -> str:
    """The stored form of ``details``: compact JSON, sorted keys, every string masked."""
    return json.dumps(_clean(details), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _field(value: str) -> str:
    return mask_secrets(value)[:FIELD_CHARS]


def seal(event: AuditEvent, *, seq: int, prev_hash: str, at: datetime | None = None) -> AuditRecord:
    """The record ``event`` becomes at position ``seq`` after the record hashed ``prev_hash``.

    Stores call this while they hold the log's append lock, with the newest record's
    ``seq + 1`` and ``hash`` (``1`` and ``GENESIS_HASH`` for the first).
    """
    unsealed = AuditRecord(
        seq=seq,
        at=(at or datetime.now(UTC)).astimezone(UTC),
        tenant=_field(event.tenant),
        actor=_field(event.actor),
        action=_field(event.action),
        target=_field(event.target),
        outcome=event.outcome,
        details=encode_details(event.details),
        prev_hash=prev_hash,
        hash="",
    )
    return dataclasses.replace(unsealed, hash=unsealed.computed_hash())


# --- recording ------------------------------------------------------------------------------


_writing: set[asyncio.Task[AuditRecord | None]] = set()
"""Writes under way, kept referenced until they finish (a caller may be gone by then)."""


async def record(store: Store, event: AuditEvent) -> AuditRecord | None:
    """Append ``event`` to the log; on failure log an error and return ``None``, never raise.

    The write runs as a task of its own, shielded: a caller cut short (a client gone, a
    turn cancelled) stops waiting for it, and it is written all the same.
    """
    write = asyncio.ensure_future(_append(store, event))
    _writing.add(write)
    write.add_done_callback(_writing.discard)
    return await asyncio.shield(write)


async def _append(store: Store, event: AuditEvent) -> AuditRecord | None:
    try:
        return await store.append_audit(event)
    except Exception:
        log.error(
            "audit: could not record %s by %r on %r (%s): the event is not in the audit log",
            event.action,
            mask_secrets(event.actor),
            mask_secrets(event.target),
            event.outcome,
            exc_info=True,
        )
        return None


async def record_ok(
    store: Store,
    action: str,
    principal: Principal,
    target: str,
    details: Mapping[str, Any] | None = None,
) -> None:
    """Record that ``principal`` did ``action`` (``user.create``...) to ``target``."""
    event = AuditEvent(
        action, principal.user_id, principal.tenant, target, "ok", dict(details or {})
    )
    await record(store, event)


async def record_denied(
    store: Store, principal: Principal, target: str, reason: str | GraftError
) -> None:
    """Record that ``principal`` was refused ``target`` (``access.denied``); never raises."""
    message = reason.message if isinstance(reason, GraftError) else reason
    event = AuditEvent(
        "access.denied",
        principal.user_id,
        principal.tenant,
        target,
        "denied",
        {"reason": message},
    )
    await record(store, event)


def arguments_digest(arguments: str | Mapping[str, Any]) -> str:
    """SHA-256 (hex) of a tool call's arguments.

    Of the text as the model sent it, which the turn stores as the tool run's arguments, so a
    record can be matched with its run; of canonical JSON for arguments given as an object.
    The digest hides nothing that can be guessed: it identifies arguments, it does not
    protect them.
    """
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(arguments.encode("utf-8")).hexdigest()


async def audited_tool_call(
    store: Store,
    run: Callable[[], Awaitable[_T]],
    *,
    name: str,
    arguments: str | Mapping[str, Any],
    ctx: Context,
) -> _T:
    """Run a tool call (``run``) and record it as ``tool.call``, whatever its outcome."""
    started = time.perf_counter()
    outcome: Outcome = "error"
    error: str | None = "Cancelled"
    try:
        result = await run()
        outcome, error = "ok", None
        return result
    except PermissionDenied:
        outcome, error = "denied", "PermissionDenied"
        raise
    except Exception as exc:
        error = type(exc).__name__
        raise
    finally:
        event = AuditEvent(
            "tool.call",
            ctx.principal.user_id,
            ctx.principal.tenant,
            name,
            outcome,
            {
                "assistant": ctx.assistant_name,
                "arguments_sha256": arguments_digest(arguments),
                "conversation_id": ctx.conversation_id,
                "turn_id": ctx.turn_id,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "is_error": outcome != "ok",
                "error": error,
            },
        )
        await record(store, event)


# --- reading --------------------------------------------------------------------------------


async def tail(store: Store, n: int = 20, *, tenant: str | None = None) -> list[AuditRecord]:
    """The newest ``n`` records (of ``tenant``, or of all), oldest first."""
    return await store.list_audit(None, n, tenant)


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """What ``verify`` found: how many records hold together, and the first that does not."""

    count: int
    """Records checked and found good (all of them, when ``ok``)."""
    latest_seq: int
    """The ``seq`` of the last good record (0 for none)."""
    latest_hash: str
    """The hash of the last good record: keep it elsewhere as an anchor."""
    bad_seq: int | None = None
    """The first record that is wrong (or, for ``missing``, the first missing one)."""
    problem: Problem | None = None
    reason: str = ""
    """What is wrong, in a sentence."""

    @property
    def ok(self) -> bool:
        """Whether the whole chain holds (and contains the anchor, if one was given)."""
        return self.problem is None


async def verify(store: Store, *, anchor: str | None = None) -> VerifyResult:
    """Walk the whole log in order and check every record's hash, link and ``seq``.

    Args:
        store: The store whose log to check (read in batches, never all at once).
        anchor: A hash printed by an earlier ``verify``: the chain must still contain it.
    """
    expected_seq, prev_hash, count, anchored = 1, GENESIS_HASH, 0, anchor is None

    def bad(seq: int | None, problem: Problem, reason: str) -> VerifyResult:
        return VerifyResult(count, expected_seq - 1, prev_hash, seq, problem, reason)

    records: AsyncIterator[AuditRecord] = store.iter_audit()
    try:
        async for rec in records:
            if rec.seq != expected_seq:
                last = "the first record" if expected_seq == 1 else f"record {expected_seq - 1}"
                return bad(
                    expected_seq,
                    "missing",
                    f"record {expected_seq} is missing: {last} is followed by record {rec.seq}",
                )
            if rec.computed_hash() != rec.hash:
                return bad(
                    rec.seq,
                    "edited",
                    f"record {rec.seq} was edited: its hash does not match its content",
                )
            if rec.prev_hash != prev_hash:
                before = "the start of the log" if rec.seq == 1 else f"record {rec.seq - 1}"
                return bad(
                    rec.seq,
                    "broken_link",
                    f"record {rec.seq} does not follow {before}: its prev_hash is not that "
                    "record's hash (one of the two was rewritten)",
                )
            anchored = anchored or rec.hash == anchor
            expected_seq, prev_hash, count = rec.seq + 1, rec.hash, count + 1
    except (GraftError, ValueError, TypeError, LookupError) as exc:  # a value edited unreadable
        # Records are read a batch at a time: which one of the batch it is, is not known.
        return bad(
            None,
            "unreadable",
            f"the records after record {expected_seq - 1} cannot be read, a value was edited "
            f"into one that is not of its type ({type(exc).__name__})",
        )
    if not anchored:
        return bad(
            None,
            "anchor_not_found",
            f"no record has the hash {anchor}: records were deleted from the end of the "
            "log, or the log was rewritten",
        )
    return VerifyResult(count, expected_seq - 1, prev_hash)

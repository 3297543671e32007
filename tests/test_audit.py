"""The audit log: what ``verify`` detects, what gets recorded, and that recording never breaks.

What ``verify`` can tell on its own: an edited field of any record, a record deleted or
inserted anywhere but at the end, records swapped, and a single record rewritten with a
fresh hash (its successor no longer links to it). What it cannot: the newest records
deleted (the shorter chain is still valid), or the whole chain rewritten from some record
on by someone who recomputes every hash after it. Both are caught against an anchor, a hash
an earlier ``verify`` printed and that was kept elsewhere (``verify(store, anchor=H)``,
``graft audit verify --expect-hash H``): the chain must still hold that record.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from graft import tool
from graft.audit import (
    GENESIS_HASH,
    AuditEvent,
    audited_tool_call,
    chain_hash,
    record,
    verify,
)
from graft.context import Context, Principal
from graft.errors import PermissionDenied
from graft.events import TurnStarted
from graft.hookspecs import hookimpl
from graft.messages import Message
from graft.runtime import Graft
from graft.store.sql import SQLStore
from graft.testing import FakeModel, MemoryStore, call
from graft.turn import TurnRequest

EVENTS = [
    AuditEvent("user.create", "cli:root", "acme", "ann", details={"roles": ["user"]}),
    AuditEvent("key.create", "cli:root", "acme", "gk_000000000001", details={"user": "ann"}),
    AuditEvent("tool.call", "ann", "acme", "calculator", details={"is_error": False}),
    AuditEvent("auth.failure", "anonymous", "", "/v1/models", "denied", {"client": "10.0.0.9"}),
    AuditEvent("key.revoke", "cli:root", "acme", "gk_000000000001"),
]


@pytest.fixture
async def logged(tmp_path: Path) -> AsyncIterator[tuple[SQLStore, sqlite3.Connection]]:
    """A SQLite store holding EVENTS, and a connection that edits its file behind its back."""
    path = tmp_path / "graft.db"
    store = SQLStore(f"sqlite:///{path}")
    await store.start()
    for event in EVENTS:
        await store.append_audit(event)
    db = sqlite3.connect(path, isolation_level=None)
    yield store, db
    db.close()
    await store.close()


def rehash(db: sqlite3.Connection, seqs: list[int]) -> None:
    """What someone who can compute hashes does: make ``seqs`` consistent again, in order."""
    for seq in seqs:
        row = db.execute(
            "SELECT seq, at, tenant, actor, action, target, outcome, details FROM audit_log "
            "WHERE seq = ?",
            (seq,),
        ).fetchone()
        prev = db.execute("SELECT hash FROM audit_log WHERE seq = ?", (seq - 1,)).fetchone()
        fields = dict(
            zip(
                ("seq", "at", "tenant", "actor", "action", "target", "outcome", "details"),
                row,
                strict=True,
            )
        )
        fields["at"] = datetime.fromisoformat(fields["at"]).replace(tzinfo=UTC)
        prev_hash = prev[0] if prev else GENESIS_HASH
        digest = chain_hash(**fields, prev_hash=prev_hash)
        db.execute(
            "UPDATE audit_log SET prev_hash = ?, hash = ? WHERE seq = ?", (prev_hash, digest, seq)
        )


async def test_an_intact_log_verifies_and_names_its_newest_hash(logged: Any) -> None:
    store, _ = logged
    result = await verify(store)
    [newest] = await store.list_audit(None, 1)
    assert result.ok and result.count == 5 and result.latest_seq == 5
    assert result.latest_hash == newest.hash and result.problem is None
    assert (await verify(store, anchor=newest.hash)).ok


async def test_an_empty_log_verifies() -> None:
    result = await verify(MemoryStore())
    assert result.ok and result.count == 0 and result.latest_hash == GENESIS_HASH


@pytest.mark.parametrize(
    ("tamper", "problem", "bad_seq"),
    [
        ("""UPDATE audit_log SET details = '{"roles":["admin"]}' WHERE seq = 1""", "edited", 1),
        ("UPDATE audit_log SET outcome = 'ok' WHERE seq = 4", "edited", 4),
        ("UPDATE audit_log SET actor = 'cli:someone' WHERE seq = 2", "edited", 2),
        ("UPDATE audit_log SET at = '2020-01-01 00:00:00.000000' WHERE seq = 3", "edited", 3),
        ("DELETE FROM audit_log WHERE seq = 3", "missing", 3),
        ("DELETE FROM audit_log WHERE seq = 1", "missing", 1),
        # Records 2 and 3 swapped: each now sits at a seq its hash was not made for.
        (
            "UPDATE audit_log SET seq = 100 WHERE seq = 2; "
            "UPDATE audit_log SET seq = 2 WHERE seq = 3; "
            "UPDATE audit_log SET seq = 3 WHERE seq = 100",
            "edited",
            2,
        ),
    ],
)
async def test_verify_names_the_first_bad_record(
    logged: Any, tamper: str, problem: str, bad_seq: int
) -> None:
    store, db = logged
    db.executescript(tamper)
    result = await verify(store)
    assert not result.ok
    assert (result.problem, result.bad_seq) == (problem, bad_seq), result.reason
    assert result.count == bad_seq - 1 and f"record {bad_seq}" in result.reason


async def test_a_value_edited_out_of_its_type_is_unreadable(logged: Any) -> None:
    store, db = logged
    db.execute("UPDATE audit_log SET at = 'garbage' WHERE seq = 2")
    result = await verify(store)
    assert (result.problem, result.bad_seq) == ("unreadable", None)
    assert "after record 0" in result.reason


async def test_a_record_rewritten_with_a_fresh_hash_breaks_the_next_link(logged: Any) -> None:
    store, db = logged
    db.execute("""UPDATE audit_log SET details = '{"roles":["admin"]}' WHERE seq = 1""")
    rehash(db, [1])
    result = await verify(store)
    assert (result.problem, result.bad_seq) == ("broken_link", 2)
    assert result.count == 1


async def test_deleting_the_newest_records_is_caught_only_against_an_anchor(logged: Any) -> None:
    store, db = logged
    before = await verify(store)
    second = (await store.list_audit(1, 1))[0]
    db.execute("DELETE FROM audit_log WHERE seq >= 4")
    # The shorter chain is valid: nothing in the log says a record was there.
    after = await verify(store)
    assert after.ok and after.count == 3
    # The hash printed before is gone, and with it the deletion shows.
    anchored = await verify(store, anchor=before.latest_hash)
    assert not anchored.ok and anchored.problem == "anchor_not_found"
    assert anchored.bad_seq is None and before.latest_hash in anchored.reason
    # An older anchor still in the chain holds.
    assert (await verify(store, anchor=second.hash)).ok


async def test_a_rechained_log_is_caught_only_against_an_anchor(logged: Any) -> None:
    # A database superuser who edits record 2 and recomputes every hash from there on
    # leaves a valid chain: the threat model in graft.audit says so.
    store, db = logged
    anchor = (await verify(store)).latest_hash
    db.execute("UPDATE audit_log SET actor = 'cli:nobody' WHERE seq = 2")
    rehash(db, [2, 3, 4, 5])
    assert (await verify(store)).ok
    result = await verify(store, anchor=anchor)
    assert result.problem == "anchor_not_found"


async def test_a_hash_covers_every_field_in_a_canonical_form() -> None:
    store = MemoryStore()
    rec = await store.append_audit(EVENTS[0])
    canonical = json.dumps(
        {
            "seq": 1,
            "at": rec.at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
            "tenant": "acme",
            "actor": "cli:root",
            "action": "user.create",
            "target": "ann",
            "outcome": "ok",
            "details": '{"roles":["user"]}',
            "prev_hash": "0" * 64,
        },
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    assert rec.hash == hashlib.sha256(canonical.encode()).hexdigest()


class BrokenStore(MemoryStore):
    async def append_audit(self, event: AuditEvent) -> Any:
        raise RuntimeError("disk full")


async def test_recording_never_raises_and_logs_what_was_lost(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="graft.audit"):
        got = await record(BrokenStore(), AuditEvent("tool.call", "ann", "acme", "calculator"))
    assert got is None
    [logged] = caplog.records
    assert "tool.call" in logged.getMessage() and "'calculator'" in logged.getMessage()
    assert logged.exc_info is not None


# --- what gets recorded ---------------------------------------------------------------------


async def turn(graft: Graft, text: str = "hi", assistant: str = "default") -> list[Any]:
    request = TurnRequest(assistant, [Message("user", text)])
    return [e async for e in graft.run_turn(request, graft.principal_for())]


async def test_a_tool_call_is_recorded_with_a_digest_of_its_arguments(started: Any) -> None:
    calc = call("calculator", expression="6*7")
    graft = await started(FakeModel([calc, call("no_such_tool")], "It is 42."))
    events = await turn(graft, "what is 6*7?")
    begun = next(e for e in events if isinstance(e, TurnStarted))
    records = await graft.store.list_audit(None, 10)
    # The two calls run in parallel: either may be recorded first.
    assert sorted((r.action, r.target, r.outcome) for r in records) == [
        ("tool.call", "calculator", "ok"),
        ("tool.call", "no_such_tool", "error"),
    ]
    ok = next(r for r in records if r.target == "calculator")
    assert (ok.actor, ok.tenant) == ("local", "default")
    details = json.loads(ok.details)
    assert details["arguments_sha256"] == hashlib.sha256(calc.arguments.encode()).hexdigest()
    assert details["conversation_id"] == begun.conversation_id
    assert details["turn_id"] == begun.turn_id
    assert details["is_error"] is False and details["error"] is None
    assert details["assistant"] == "default" and details["duration_ms"] >= 0
    assert "6*7" not in ok.details
    failed = json.loads(next(r for r in records if r.target == "no_such_tool").details)
    assert failed["is_error"] is True and failed["error"] == "ToolNotFound"
    assert (await verify(graft.store)).ok


async def test_a_plain_turn_writes_nothing_to_the_audit_log(started: Any) -> None:
    graft = await started(FakeModel("Hello."))
    await turn(graft)
    assert await graft.store.list_audit(None, 10) == []


async def test_a_refused_assistant_is_recorded(started: Any) -> None:
    graft = await started(FakeModel("x"), assistants={"hr": {"roles": ["hr"]}})
    graft.settings.auth.default_roles = ["user"]
    with pytest.raises(PermissionDenied):
        await turn(graft, assistant="hr")
    [denied] = await graft.store.list_audit(None, 10)
    assert (denied.action, denied.actor, denied.target, denied.outcome) == (
        "access.denied",
        "local",
        "assistant:hr",
        "denied",
    )
    assert "hr" in json.loads(denied.details)["reason"]


async def test_a_tool_denied_by_its_own_check_is_recorded_as_denied(started: Any) -> None:
    class Guarded:
        @hookimpl
        def register_tools(self, register: Any) -> None:
            @tool
            def payroll() -> str:
                """Read the payroll."""
                raise PermissionDenied("payroll is for HR")

            register(payroll)

    graft = await started(FakeModel([call("payroll")], "no"), plugins=(Guarded(),))
    await turn(graft)
    [rec] = await graft.store.list_audit(None, 10)
    assert (rec.target, rec.outcome) == ("payroll", "denied")


async def test_a_tool_call_cut_short_is_still_recorded(settings_factory: Any) -> None:
    settings = settings_factory()
    ctx = Context(Principal("ann"), settings, "default", settings.assistant("default"))
    store = MemoryStore()

    async def slow() -> str:
        await asyncio.sleep(10)
        return "never"

    task = asyncio.ensure_future(
        audited_tool_call(store, slow, name="slow", arguments="{}", ctx=ctx)
    )
    await asyncio.sleep(0.01)
    task.cancel()
    await asyncio.sleep(0)
    task.cancel()  # and again, while the record is being written
    with pytest.raises(asyncio.CancelledError):
        await task
    [rec] = await store.list_audit(None, 10)
    assert (rec.target, rec.outcome, json.loads(rec.details)["error"]) == (
        "slow",
        "error",
        "Cancelled",
    )

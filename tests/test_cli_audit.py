"""``graft audit verify|tail`` over a SQLite file, and the changes ``graft users|keys`` record."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest
from tests.conftest import invoke

from graft import cli_audit
from graft.audit import AuditEvent, AuditRecord
from graft.testing import MemoryStore


def records() -> list[dict[str, Any]]:
    result = invoke("audit", "tail", "-n", "100", "--json")
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_user_and_key_changes_are_recorded_by_the_operator(home: Path) -> None:
    assert invoke("users", "add", "ann", "--tenant", "acme", "--group", "sales").exit_code == 0
    created = invoke("keys", "create", "--user", "ann", "--tenant", "acme", "--name", "ci")
    key = created.stdout.strip()
    assert created.exit_code == 0 and key.startswith("gk_")
    assert invoke("keys", "revoke", key[:15]).exit_code == 0
    assert invoke("users", "disable", "ann", "--tenant", "acme").exit_code == 0
    assert invoke("users", "enable", "ann", "--tenant", "acme").exit_code == 0
    found = records()
    assert [(r["seq"], r["action"], r["target"]) for r in found] == [
        (1, "user.create", "ann"),
        (2, "key.create", key[:15]),
        (3, "key.revoke", key[:15]),
        (4, "user.disable", "ann"),
        (5, "user.enable", "ann"),
    ]
    assert all(r["actor"].startswith("cli:") and r["tenant"] == "acme" for r in found)
    assert found[0]["details"] == {"roles": ["user"], "groups": ["sales"]}
    assert found[1]["details"] == {"user": "ann", "roles": ["user"], "name": "ci"}
    assert key[16:] not in json.dumps(found)  # the key's secret part is nowhere
    text = invoke("audit", "tail", "-n", "2")
    assert text.exit_code == 0 and len(text.stdout.splitlines()) == 2
    assert "user.disable" in text.stdout and "user.enable" in text.stdout
    assert invoke("audit", "tail", "--tenant", "globex").stdout == ""


def test_tools_call_is_recorded(home: Path) -> None:
    result = invoke("tools", "call", "calculator", '{"expression": "2+2"}')
    assert result.exit_code == 0, result.output
    [found] = records()
    assert (found["action"], found["target"], found["outcome"]) == ("tool.call", "calculator", "ok")
    assert found["actor"] == "local" and found["details"]["arguments_sha256"]


def test_verify_passes_then_names_an_edited_record(home: Path) -> None:
    for name in ("ann", "bob", "cy"):
        assert invoke("users", "add", name).exit_code == 0
    ok = invoke("audit", "verify")
    assert ok.exit_code == 0
    [newest] = records()[-1:]
    assert ok.stdout.strip() == f"ok: 3 records, latest hash {newest['hash']}"
    with sqlite3.connect(home / "graft.db") as db:
        db.execute("""UPDATE audit_log SET details = '{"roles":["admin"]}' WHERE seq = 2""")
    bad = invoke("audit", "verify")
    assert bad.exit_code == 1
    assert "FAILED at record 2 (edited)" in bad.stderr and "the 1 records before it" in bad.stderr


def test_verify_against_an_anchor_catches_a_deleted_tail(home: Path) -> None:
    for name in ("ann", "bob"):
        assert invoke("users", "add", name).exit_code == 0
    anchor = invoke("audit", "verify").stdout.split()[-1]
    assert invoke("audit", "verify", "--expect-hash", anchor).exit_code == 0
    with sqlite3.connect(home / "graft.db") as db:
        db.execute("DELETE FROM audit_log WHERE seq = 2")
    assert invoke("audit", "verify").exit_code == 0  # alone, a shorter chain looks whole
    bad = invoke("audit", "verify", "--expect-hash", anchor)
    assert bad.exit_code == 1 and "anchor_not_found" in bad.stderr and anchor in bad.stderr


def test_audit_commands_refuse_a_store_that_forgets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFT_DATABASE_URL", "memory://")
    for args in (["verify"], ["tail"]):
        result = invoke("audit", *args)
        assert result.exit_code == 1 and "no audit log" in result.output


async def test_follow_prints_new_records_as_they_come(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(cli_audit, "FOLLOW_INTERVAL_S", 0.01)
    store = MemoryStore()
    await store.append_audit(AuditEvent("user.create", "cli:root", "acme", "old"))
    shown: list[AuditRecord] = []
    arrived = anyio.Event()

    def show(record: AuditRecord) -> None:
        shown.append(record)
        arrived.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(cli_audit._follow, store, 1, "acme", show)
        await store.append_audit(AuditEvent("user.create", "cli:root", "globex", "elsewhere"))
        await store.append_audit(AuditEvent("user.create", "cli:root", "acme", "new"))
        with anyio.fail_after(5):
            await arrived.wait()
        await anyio.sleep(0.05)  # another poll or two: nothing more comes
        tg.cancel_scope.cancel()
    assert [r.target for r in shown] == ["new"]


def test_tail_follow_stops_quietly_on_ctrl_c(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def interrupted(*args: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli_audit, "_follow", interrupted)
    assert invoke("users", "add", "ann").exit_code == 0
    result = invoke("audit", "tail", "--follow")
    assert result.exit_code == 0 and "user.create" in result.stdout

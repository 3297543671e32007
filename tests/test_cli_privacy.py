"""``graft privacy``: export, delete and purge from the command line, on a SQLite home."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import pytest
from sqlalchemy import select, update
from tests.conftest import invoke

from graft.context import Principal
from graft.messages import Message
from graft.store.sql import SQLStore, t_conversations


def seed(home: Path, *people: tuple[str, str, str, str]) -> list[str]:
    """Conversations of (tenant, user, assistant, text); their ids."""

    async def run() -> list[str]:
        store = SQLStore(f"sqlite:///{home / 'graft.db'}")
        await store.start()
        try:
            ids = []
            for tenant, user, assistant, text in people:
                cid, _ = await store.begin_turn(
                    Principal(user, tenant=tenant),
                    assistant=assistant,
                    model="fake:ok",
                    conversation_id=None,
                    new_messages=[Message("user", text)],
                )
                ids.append(cid)
            return ids
        finally:
            await store.close()

    return anyio.run(run)


def stored(home: Path) -> dict[str, str]:
    """Every conversation's id and user."""
    store = SQLStore(f"sqlite:///{home / 'graft.db'}")
    with store.engine.connect() as conn:
        rows = conn.execute(select(t_conversations.c.id, t_conversations.c.user_id)).all()
    store.engine.dispose()
    return dict(rows)


def test_export_prints_or_saves_one_users_conversations(home: Path, tmp_path: Path) -> None:
    ann1, ann2, _, _ = seed(
        home,
        ("acme", "ann", "default", "ann's first"),
        ("acme", "ann", "default", "ann's second"),
        ("acme", "bob", "default", "bob's secret"),
        ("default", "ann", "default", "the other ann"),
    )
    printed = invoke("privacy", "export", "--user", "ann", "--tenant", "acme")
    assert printed.exit_code == 0, printed.output
    document = json.loads(printed.stdout)
    assert [c["id"] for c in document["conversations"]] == [ann1, ann2]
    assert "bob's secret" not in printed.stdout and "the other ann" not in printed.stdout
    assert "exported 2 conversation(s) of 'ann' in tenant 'acme'" in printed.stderr

    target = tmp_path / "ann.json"
    target.write_text("old")
    target.chmod(0o644)
    saved = invoke("privacy", "export", "--user", "ann", "--tenant", "acme", "-o", str(target))
    assert saved.exit_code == 0, saved.output
    assert saved.stdout == "" and f"to {target}" in saved.stderr
    assert json.loads(target.read_text())["conversations"] == document["conversations"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o600
    # The default tenant is "default".
    other = json.loads(invoke("privacy", "export", "--user", "ann").stdout)
    assert [m["content"] for m in other["conversations"][0]["messages"]] == ["the other ann"]


def test_delete_wants_yes_and_takes_only_that_user(home: Path) -> None:
    _, _, bobs, other_ann = seed(
        home,
        ("acme", "ann", "default", "one"),
        ("acme", "ann", "default", "two"),
        ("acme", "bob", "default", "bob's"),
        ("default", "ann", "default", "the other ann"),
    )
    refused = invoke("privacy", "delete", "--user", "ann", "--tenant", "acme")
    assert refused.exit_code == 2 and "add --yes" in refused.output
    assert len(stored(home)) == 4

    deleted = invoke("privacy", "delete", "--user", "ann", "--tenant", "acme", "--yes")
    assert deleted.exit_code == 0, deleted.output
    assert "deleted 2 conversation(s) of 'ann' in tenant 'acme'" in deleted.stdout
    assert stored(home) == {bobs: "bob", other_ann: "ann"}


def test_purge_runs_the_retention_pass_once(home: Path, tmp_path: Path) -> None:
    nothing = invoke("privacy", "purge")
    assert nothing.exit_code == 0 and "no assistant sets retention_days" in nothing.stderr

    old, new, kept = seed(
        home,
        ("acme", "ann", "helper", "old"),
        ("acme", "ann", "helper", "new"),
        ("acme", "ann", "keeper", "kept"),
    )
    store = SQLStore(f"sqlite:///{home / 'graft.db'}")
    with store.engine.begin() as conn:
        conn.execute(
            update(t_conversations)
            .where(t_conversations.c.id.in_([old, kept]))
            .values(updated_at=datetime.now(UTC) - timedelta(days=10))
        )
    store.engine.dispose()
    config = tmp_path / "graft.toml"
    config.write_text("[assistants.helper]\nretention_days = 7\n\n[assistants.keeper]\n")

    purged = invoke("--config", str(config), "privacy", "purge")
    assert purged.exit_code == 0, purged.output
    assert purged.stdout == "helper: removed 1 conversation(s)\n"
    assert set(stored(home)) == {new, kept}


def test_privacy_commands_refuse_a_store_that_forgets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFT_DATABASE_URL", "memory://")
    result = invoke("privacy", "export", "--user", "ann")
    assert result.exit_code == 1 and "memory://" in result.output


def test_a_deletion_the_audit_log_missed_exits_non_zero(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graft import cli_privacy

    async def lost(*args: object) -> None:
        return None

    seed(home, ("default", "ann", "default", "one"))
    monkeypatch.setattr(cli_privacy.audit, "record", lost)
    result = invoke("privacy", "delete", "--user", "ann", "--yes")
    assert result.exit_code == 1
    assert "deleted 1 conversation(s)" in result.stdout and "not in the audit log" in result.stderr
    assert stored(home) == {}

"""``graft assistants``: create, list, show, replace and delete on the store, as the operator."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from tests.conftest import invoke

from graft.audit import AuditRecord
from graft.config import load_settings
from graft.crypto import KeySource
from graft.store import open_store

pytestmark = pytest.mark.usefixtures("home")


def test_create_list_show_replace_delete(tmp_path: Path) -> None:
    created = invoke(
        "assistants",
        "create",
        "helpdesk",
        "--prompt",
        "You are the helpdesk.",
        "--tools",
        "calculator, current_time",
        "--collections",
        "handbook",
        "--description",
        "IT answers",
    )
    assert created.exit_code == 0, created.output
    assert "created assistant 'helpdesk' in tenant 'default'" in created.stdout
    assert "graft ask -a helpdesk" in created.stderr

    listed = json.loads(invoke("assistants", "list", "--json").stdout)
    assert [(a["name"], a["source"]) for a in listed] == [
        ("default", "config"),
        ("helpdesk", "stored"),
    ]
    assert listed[1]["created_by"].startswith("cli:") and listed[1]["description"] == "IT answers"
    assert "helpdesk" in invoke("assistants", "list").stdout

    shown = json.loads(invoke("assistants", "show", "helpdesk").stdout)
    assert shown["definition"] == {
        "system_prompt": "You are the helpdesk.",
        "tools": ["calculator", "current_time"],
        "collections": ["handbook"],
        "description": "IT answers",
    }

    again = invoke("assistants", "create", "helpdesk", "--prompt", "Shorter.")
    assert again.exit_code == 1 and "--replace" in again.output
    replaced = invoke("assistants", "create", "helpdesk", "--prompt", "Shorter.", "--replace")
    assert replaced.exit_code == 0 and "replaced" in replaced.stdout
    shown = json.loads(invoke("assistants", "show", "helpdesk").stdout)
    assert shown["definition"] == {"system_prompt": "Shorter."}

    assert invoke("assistants", "delete", "helpdesk").exit_code == 0
    gone = invoke("assistants", "delete", "helpdesk")
    assert gone.exit_code == 1 and "no assistant 'helpdesk'" in gone.output
    missing = invoke("assistants", "show", "helpdesk")
    assert missing.exit_code == 1 and "no assistant 'helpdesk'" in missing.output


def test_a_file_holds_the_fields_and_the_options_win(tmp_path: Path) -> None:
    toml = tmp_path / "analyst.toml"
    toml.write_text(
        'description = "Numbers"\nsystem_prompt = "Count."\ntemperature = 0.1\n'
        'tools = ["calculator"]\n',
        encoding="utf-8",
    )
    created = invoke(
        "assistants", "create", "analyst", "--from-file", str(toml), "--description", "Figures"
    )
    assert created.exit_code == 0, created.output
    definition = json.loads(invoke("assistants", "show", "analyst").stdout)["definition"]
    assert definition == {
        "description": "Figures",
        "system_prompt": "Count.",
        "temperature": 0.1,
        "tools": ["calculator"],
    }

    as_json = tmp_path / "other.json"
    as_json.write_text(json.dumps({"system_prompt": "Other.", "tools": []}), encoding="utf-8")
    assert invoke("assistants", "create", "other", "--from-file", str(as_json)).exit_code == 0
    other = json.loads(invoke("assistants", "show", "other", "--tenant", "default").stdout)
    assert other["definition"]["tools"] == []


def test_tenants_have_their_own_assistants() -> None:
    created = invoke("assistants", "create", "helper", "--prompt", "x", "--tenant", "acme")
    assert created.exit_code == 0, created.output
    assert "graft ask" not in created.stderr  # the command line's own user is not of acme
    assert invoke("assistants", "show", "helper").exit_code == 1
    assert invoke("assistants", "show", "helper", "--tenant", "acme").exit_code == 0
    assert invoke("assistants", "delete", "helper").exit_code == 1
    assert invoke("assistants", "delete", "helper", "--tenant", "acme").exit_code == 0


def test_mistakes_are_one_clear_line(tmp_path: Path) -> None:
    no_prompt = invoke("assistants", "create", "helper")
    assert no_prompt.exit_code == 2 and "--prompt" in no_prompt.output
    taken = invoke("assistants", "create", "default", "--prompt", "x")
    assert taken.exit_code == 1 and "taken by the settings (assistants.default)" in taken.output
    bad_model = invoke("assistants", "create", "helper", "--prompt", "x", "--model", "gpt-4")
    assert bad_model.exit_code == 1 and "provider:name" in bad_model.output
    bad_tool = invoke("assistants", "create", "helper", "--prompt", "x", "--tools", "teleport")
    assert bad_tool.exit_code == 1 and "no tool named 'teleport'" in bad_tool.output
    bad_name = invoke("assistants", "create", "two words", "--prompt", "x")
    assert bad_name.exit_code == 1 and "assistant names have" in bad_name.output
    broken = tmp_path / "broken.toml"
    broken.write_text("system_prompt = ", encoding="utf-8")
    unreadable = invoke("assistants", "create", "helper", "--from-file", str(broken))
    assert unreadable.exit_code == 2 and "cannot read" in unreadable.output
    assert "Traceback" not in unreadable.output


def test_a_store_that_forgets_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFT_DATABASE_URL", "memory://")
    result = invoke("assistants", "create", "helper", "--prompt", "x")
    assert result.exit_code == 1 and "would vanish" in result.output


def test_changes_are_in_the_audit_log(home: Path) -> None:
    assert invoke("assistants", "create", "helper", "--prompt", "x").exit_code == 0
    assert invoke("assistants", "delete", "helper").exit_code == 0
    settings = load_settings()

    async def read() -> list[AuditRecord]:
        store = open_store(settings.sqlalchemy_url, data_keys=KeySource.from_settings(settings))
        await store.start()
        try:
            return await store.list_audit(None, 10, "default")
        finally:
            await store.close()

    records = asyncio.run(read())
    assert [(r.action, r.target) for r in records] == [
        ("assistant.put", "helper"),
        ("assistant.delete", "helper"),
    ]
    assert all(r.actor.startswith("cli:") for r in records)


def test_graft_tools_lists_and_calls_through_a_stored_assistant() -> None:
    created = invoke(
        "assistants", "create", "calc", "--prompt", "Compute.", "--tools", "calculator"
    )
    assert created.exit_code == 0, created.output
    listed = invoke("tools", "list", "-a", "calc")
    assert listed.exit_code == 0, listed.output
    assert [line.split()[0] for line in listed.stdout.splitlines()] == ["calculator"]
    called = invoke("tools", "call", "calculator", '{"expression": "6*7"}', "-a", "calc")
    assert called.exit_code == 0 and json.loads(called.stdout)["result"] == 42
    unknown = invoke("tools", "list", "-a", "nobody")
    assert unknown.exit_code != 0 and "nobody" in unknown.output

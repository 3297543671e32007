"""``graft users set-roles|set-groups`` over a SQLite file: the change, its checks, its record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.conftest import invoke


def ann() -> dict[str, Any]:
    listed = invoke("users", "list", "--tenant", "acme", "--json")
    assert listed.exit_code == 0, listed.output
    [found] = json.loads(listed.stdout)
    return {"roles": found["roles"], "groups": found["groups"]}


def updates() -> list[dict[str, Any]]:
    result = invoke("audit", "tail", "-n", "100", "--json")
    assert result.exit_code == 0, result.output
    found = [json.loads(line) for line in result.stdout.splitlines()]
    return [r for r in found if r["action"] == "user.update"]


def test_roles_and_groups_are_replaced_and_recorded(home: Path) -> None:
    assert invoke("users", "add", "ann", "--tenant", "acme", "--group", "sales").exit_code == 0
    roles = invoke("users", "set-roles", "ann", "user,admin", "builder", "--tenant", "acme")
    assert roles.exit_code == 0, roles.output
    assert "roles admin, builder, user" in roles.stdout
    groups = invoke("users", "set-groups", "ann", "hr", " 研发 ", "hr", "--tenant", "acme")
    assert groups.exit_code == 0, groups.output
    assert ann() == {"roles": ["admin", "builder", "user"], "groups": ["hr", "研发"]}
    assert (
        invoke("users", "set-roles", "ann", "admin,builder,user", "--tenant", "acme").exit_code == 0
    )
    assert invoke("users", "set-groups", "ann", "--tenant", "acme").exit_code == 0  # no group
    assert ann() == {"roles": ["admin", "builder", "user"], "groups": []}
    assert [(r["target"], r["tenant"], r["details"]) for r in updates()] == [
        ("ann", "acme", {"roles": ["admin", "builder", "user"], "before": {"roles": ["user"]}}),
        ("ann", "acme", {"groups": ["hr", "研发"], "before": {"groups": ["sales"]}}),
        ("ann", "acme", {"groups": [], "before": {"groups": ["hr", "研发"]}}),
    ]
    assert all(r["actor"].startswith("cli:") for r in updates())


def test_bad_roles_groups_and_users_are_refused(home: Path) -> None:
    assert invoke("users", "add", "ann", "--tenant", "acme").exit_code == 0
    wizard = invoke("users", "set-roles", "ann", "user,wizard", "--tenant", "acme")
    assert wizard.exit_code == 2 and "unknown role 'wizard'" in wizard.output
    none = invoke("users", "set-roles", "ann", ",", "--tenant", "acme")
    assert none.exit_code == 2 and "at least one role" in none.output
    missing = invoke("users", "set-roles", "ann", "--tenant", "acme")
    assert missing.exit_code == 2
    blank = invoke("users", "set-groups", "ann", " ", "--tenant", "acme")
    assert blank.exit_code == 2 and "1 to 255 characters" in blank.output
    nobody = invoke("users", "set-roles", "bob", "user", "--tenant", "acme")
    assert nobody.exit_code == 1 and "no user 'bob'" in nobody.output
    elsewhere = invoke("users", "set-groups", "ann", "hr")  # tenant "default"
    assert elsewhere.exit_code == 1 and "no user 'ann' in tenant 'default'" in elsewhere.output
    assert ann() == {"roles": ["user"], "groups": []} and updates() == []

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from graft.cli import cli


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(cli, list(args), input=input, catch_exceptions=False)


def test_tools_list_shows_builtin_tools() -> None:
    result = invoke("tools", "list")
    assert result.exit_code == 0, result.output
    assert "calculator" in result.output and "current_time" in result.output
    listed = json.loads(invoke("tools", "list", "--json").output)
    calculator = next(t for t in listed if t["name"] == "calculator")
    assert calculator["parameters"]["required"] == ["expression"]
    assert calculator["toolset"] == "builtin_tools"


def test_tools_call_runs_through_the_policy_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GRAFT_HOME", str(tmp_path / "home"))  # the call is audited there
    ok = invoke("tools", "call", "calculator", '{"expression": "1234*5678"}')
    assert ok.exit_code == 0 and json.loads(ok.output)["result"] == 7006652
    bad = invoke("tools", "call", "calculator", '{"expr": "1"}')
    assert bad.exit_code == 1 and "invalid arguments for tool 'calculator'" in bad.output
    broken = invoke("tools", "call", "calculator", "{oops")
    assert broken.exit_code == 1 and "not valid JSON" in broken.output
    config = tmp_path / "graft.toml"
    config.write_text('[assistants.clock]\ntools = ["current_time"]\n')
    denied = invoke("--config", str(config), "tools", "call", "calculator", "{}", "-a", "clock")
    assert denied.exit_code == 1 and "no tool named 'calculator'" in denied.output


def test_plugins_lists_default_plugins_with_their_package() -> None:
    result = invoke("plugins", "--json")
    infos = {p["name"]: p for p in json.loads(result.output)}
    tools = infos["graft.default_plugins.builtin_tools"]
    assert tools["package"] == "graft" and tools["hooks"] == ["register_tools"]
    assert "register_models" in infos["graft.default_plugins.openai_models"]["hooks"]


async def test_keys_new_prints_a_working_settings_entry(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["keys", "new", "--user", "ann", "--role", "staff"])
    key = result.stderr.split(": ")[-1].strip()
    config = tmp_path / "graft.toml"
    config.write_text(result.stdout)
    from graft.config import load_settings
    from graft.default_plugins.api_key_auth import authenticate
    from graft.store.memory import MemoryStore

    settings = load_settings(config)
    principal = await authenticate({"authorization": f"Bearer {key}"}, settings, MemoryStore())
    assert principal is not None and principal.user_id == "ann" and principal.roles == {"staff"}


def test_configuration_errors_are_one_clear_line(tmp_path: Path) -> None:
    config = tmp_path / "graft.toml"
    config.write_text("[limits]\nmax_steps = 0\n")
    result = invoke("--config", str(config), "tools", "list")
    assert result.exit_code == 1
    assert "limits.max_steps" in result.output and "Traceback" not in result.output
    missing = invoke("--config", str(tmp_path / "nope.toml"), "plugins")
    assert missing.exit_code == 1 and "does not exist" in missing.output


def test_check_reports_what_would_fail_on_the_first_request(tmp_path: Path) -> None:
    ok = invoke("check")
    assert ok.exit_code == 0 and ok.output.startswith("ok: default")
    config = tmp_path / "graft.toml"
    config.write_text('[assistants.gpt]\nmodel = "openai:gpt-4o-mini"\n')
    result = CliRunner().invoke(cli, ["--config", str(config), "check"])
    assert result.exit_code == 1
    assert "assistant 'gpt' (openai:gpt-4o-mini)" in result.stderr
    assert "OPENAI_API_KEY" in result.stderr


def test_users_and_keys_commands(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFT_HOME", str(tmp_path / "home"))
    assert invoke("users", "add", "ann", "--role", "builder", "--group", "sales").exit_code == 0
    taken = CliRunner().invoke(cli, ["users", "add", "ann"])
    assert taken.exit_code == 1 and "already has a user 'ann'" in taken.output
    wizard = CliRunner().invoke(cli, ["users", "add", "bob", "--role", "wizard"])
    assert wizard.exit_code == 2 and "'wizard' is not one of" in wizard.output
    [ann] = json.loads(invoke("users", "list", "--json").output)
    assert ann["roles"] == ["builder"] and ann["groups"] == ["sales"] and not ann["disabled_at"]
    created = CliRunner().invoke(cli, ["keys", "create", "--user", "ann", "--name", "ci"])
    key = created.stdout.strip()
    assert created.exit_code == 0 and key.startswith("gk_") and "shown once" in created.stderr
    too_much = CliRunner().invoke(cli, ["keys", "create", "--user", "ann", "--role", "admin"])
    assert too_much.exit_code == 1 and "does not have the role 'admin'" in too_much.output
    missing = CliRunner().invoke(cli, ["keys", "create", "--user", "nobody"])
    assert missing.exit_code == 1 and "no user 'nobody'" in missing.output
    listing = invoke("keys", "list").output
    assert key[:15] in listing and key not in listing and "active" in listing
    assert invoke("keys", "revoke", key).exit_code == 0  # the whole key: cut to its id
    assert "revoked" in invoke("keys", "list").output
    assert invoke("users", "disable", "ann").exit_code == 0
    assert json.loads(invoke("users", "list", "--json").output)[0]["disabled_at"]
    unknown = CliRunner().invoke(cli, ["keys", "revoke", "gk_000000000000"])
    assert unknown.exit_code == 1 and "no API key" in unknown.output


def test_users_commands_refuse_a_store_that_forgets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRAFT_DATABASE_URL", "memory://")
    result = CliRunner().invoke(cli, ["users", "add", "ann"])
    assert result.exit_code == 1 and "would vanish" in result.output

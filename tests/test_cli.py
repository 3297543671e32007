from __future__ import annotations

import json
from pathlib import Path

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


def test_tools_call_runs_through_the_policy_path(tmp_path: Path) -> None:
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


def test_keys_new_prints_a_working_settings_entry(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["keys", "new", "--user", "ann", "--role", "staff"])
    key = result.stderr.split(": ")[-1].strip()
    config = tmp_path / "graft.toml"
    config.write_text(result.stdout)
    from graft.config import load_settings
    from graft.default_plugins.api_key_auth import authenticate

    settings = load_settings(config)
    principal = authenticate({"authorization": f"Bearer {key}"}, settings)
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

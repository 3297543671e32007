from __future__ import annotations

from pathlib import Path

import pytest

from graft.config import load_settings, split_model_id
from graft.errors import ConfigError


def test_defaults_need_no_file_and_no_key() -> None:
    settings = load_settings()
    assert settings.model == "local:smollm2"
    assert settings.assistant("default") is not None
    assert settings.assistant_names() == ["default"]
    assert settings.sqlalchemy_url.endswith("graft.db")


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "graft.toml"
    config.write_text('model = "openai:gpt-4o-mini"\n[limits]\nmax_steps = 4\n')
    monkeypatch.setenv("GRAFT_LIMITS__MAX_STEPS", "6")
    settings = load_settings(config)
    assert settings.model == "openai:gpt-4o-mini" and settings.limits.max_steps == 6
    monkeypatch.setenv("GRAFT_MODEL", "deepseek:deepseek-chat")
    assert load_settings(config).model == "deepseek:deepseek-chat"


def test_graft_toml_in_the_working_directory_is_read(tmp_path: Path) -> None:
    (tmp_path / "graft.toml").write_text('[assistants.support]\nsystem_prompt = "Be kind."\n')
    settings = load_settings()
    assert settings.assistant_names() == ["default", "support"]


def test_keys_come_from_the_environment_and_survive_preset_merging(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DEEPSEEK_API_KEY", "sk-secret")
    monkeypatch.setenv("GRAFT_PROVIDERS__DEEPSEEK__TIMEOUT", "30")
    provider = load_settings().provider("deepseek")
    assert provider is not None and provider.timeout == 30
    assert provider.api_key is not None and provider.api_key.get_secret_value() == "sk-secret"
    assert "sk-secret" not in repr(provider) and "sk-secret" not in provider.model_dump_json()


def test_custom_providers_and_presets() -> None:
    settings = load_settings(providers={"corp": {"base_url": "http://10.0.0.5:8000/v1"}})
    assert settings.provider("corp").base_url == "http://10.0.0.5:8000/v1"  # type: ignore[union-attr]
    assert settings.provider("ollama").base_url == "http://127.0.0.1:11434/v1"  # type: ignore[union-attr]
    assert settings.provider("nope") is None


@pytest.mark.parametrize(
    ("content", "fragment"),
    [
        ('model = "gpt-4o"', "provider:name"),
        ("[limits]\nmax_steps = 0", "limits.max_steps"),
        ("unknown_setting = 1", "unknown_setting"),
        ("[assistants.x]\ntemperature = 9", "assistants.x.temperature"),
        ("model = ", "not valid TOML"),
        ('[[auth.api_keys]]\nuser = "a"\nsha256 = "short"', "sha256"),
        ('[providers.openai]\napi_key = "sk-live"', "do not belong in the settings file"),
    ],
)
def test_invalid_settings_say_what_is_wrong(tmp_path: Path, content: str, fragment: str) -> None:
    config = tmp_path / "bad.toml"
    config.write_text(content)
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        load_settings(config)


def test_split_model_id_keeps_tags() -> None:
    assert split_model_id("ollama:qwen2.5:7b") == ("ollama", "qwen2.5:7b")
    with pytest.raises(ValueError):
        split_model_id(":x")

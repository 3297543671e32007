from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import SecretStr

from graft.config import load_settings, split_model_id
from graft.errors import ConfigError
from graft.secrets import mask_secrets


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


# --- secrets: references in the settings file -----------------------------------------------


def test_a_provider_key_can_be_a_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORP_TOKEN", "sk-corp-Rq7Tw2Yx5Mb8Nc3Vd6abcd")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-ignored-because-api_key-wins")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "openai.key").write_text("sk-file-Hk4Jm7Pq2Ws5Xz8Lt1wxyz\n")
    (tmp_path / "conf" / "openai.key").chmod(0o600)
    config = tmp_path / "conf" / "graft.toml"
    config.write_text(
        '[providers.corp]\nbase_url = "http://10.0.0.5/v1"\napi_key = { "$env" = "CORP_TOKEN" }\n'
        '[providers.openai]\napi_key = { "$file" = "openai.key" }\n'
    )
    settings = load_settings(config)  # the file is found beside graft.toml, not in the cwd
    corp, openai = settings.provider("corp"), settings.provider("openai")
    assert corp is not None and openai is not None
    assert corp.api_key == SecretStr("sk-corp-Rq7Tw2Yx5Mb8Nc3Vd6abcd")
    assert openai.api_key == SecretStr("sk-file-Hk4Jm7Pq2Ws5Xz8Lt1wxyz")
    for shown in (repr(settings), str(settings), settings.model_dump_json(), repr(corp)):
        assert "sk-corp" not in shown and "sk-file" not in shown
    assert mask_secrets("key sk-corp-Rq7Tw2Yx5Mb8Nc3Vd6abcd") == "key sk-…abcd"
    # Keyword overrides keep the keys (they are excluded from dumps).
    overridden = load_settings(config, port=9000).provider("corp")
    assert overridden is not None and overridden.api_key == corp.api_key


def test_a_missing_reference_names_the_setting_and_the_variable(tmp_path: Path) -> None:
    config = tmp_path / "graft.toml"
    config.write_text('[providers.openai]\napi_key = { "$env" = "NOT_SET_ANYWHERE" }\n')
    with pytest.raises(
        ConfigError,
        match="providers.openai.api_key: the environment variable NOT_SET_ANYWHERE is not set",
    ):
        load_settings(config)
    config.write_text('[providers.openai]\napi_key = { "$file" = "nope.key" }\n')
    with pytest.raises(ConfigError, match=r"providers\.openai\.api_key: the secret file .*nope"):
        load_settings(config)


def test_a_plain_key_in_the_file_is_refused_with_the_reference_syntax(tmp_path: Path) -> None:
    config = tmp_path / "graft.toml"
    config.write_text('[providers.openai]\napi_key = "sk-live-Hk4Jm7Pq2Ws5Xz8Lt1"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings(config)
    assert '{ "$env" = "VARIABLE" }' in caught.value.message
    assert "sk-live" not in caught.value.message


def test_plain_keys_still_come_from_graft_variables_and_overrides(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GRAFT_PROVIDERS__OPENAI__API_KEY", "sk-plain-Qw3Er5Ty7Ui9Op1Asdf")
    openai = load_settings().provider("openai")
    assert openai is not None and openai.api_key == SecretStr("sk-plain-Qw3Er5Ty7Ui9Op1Asdf")
    assert mask_secrets("sk-plain-Qw3Er5Ty7Ui9Op1Asdf") == "sk-…Asdf"


def test_plugin_settings_resolve_references_to_plain_strings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SEARCH_TOKEN", "search-token-Lk8Jh6Gf4Ds2")
    (tmp_path / "db.pass").write_text("db-password-Mn3Bv5Cx7\n")
    (tmp_path / "db.pass").chmod(0o600)
    config = tmp_path / "graft.toml"
    config.write_text(
        "[plugins.search]\n"
        'url = "https://search.example.com"\n'
        'token = { "$env" = "SEARCH_TOKEN" }\n'
        'backends = [{ name = "db", password = { "$file" = "db.pass" } }]\n'
    )
    settings = load_settings(config)
    assert settings.plugin_config("search") == {
        "url": "https://search.example.com",
        "token": "search-token-Lk8Jh6Gf4Ds2",
        "backends": [{"name": "db", "password": "db-password-Mn3Bv5Cx7"}],
    }
    assert "search-token" not in repr(settings) and "db-password" not in repr(settings)
    masked = mask_secrets("search-token-Lk8Jh6Gf4Ds2 db-password-Mn3Bv5Cx7")
    assert masked == "…4Ds2 db-…5Cx7"


def test_references_from_graft_variables_and_overrides_start_from_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "token").write_text("home-token-Zx9Cv7Bn5")
    (home / "token").chmod(0o600)
    monkeypatch.setenv("GRAFT_HOME", str(home))
    monkeypatch.setenv("GRAFT_PLUGINS", '{"a": {"token": {"$file": "token"}}}')
    monkeypatch.setenv("DB_URL", "postgresql://graft:s3cret-Pw0rd-123@db/graft")
    settings = load_settings(
        database_url={"$env": "DB_URL"}, plugins={"b": {"token": {"$file": "token"}}}
    )
    assert settings.plugin_config("b") == {"token": "home-token-Zx9Cv7Bn5"}
    assert load_settings().plugin_config("a") == {"token": "home-token-Zx9Cv7Bn5"}
    assert settings.database_url == "postgresql://graft:s3cret-Pw0rd-123@db/graft"
    assert "s3cret" not in repr(settings)
    # What a reference names is a secret whole; a plain URL's password is one too.
    assert mask_secrets(settings.database_url) == "…raft"
    monkeypatch.setenv("GRAFT_DATABASE_URL", "postgresql://graft:other-Pw0rd-456@db/graft")
    plain = load_settings().database_url
    assert plain is not None and mask_secrets(plain) == "postgresql://graft:…-456@db/graft"


def test_a_missing_reference_in_an_override_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"plugins\.x\.hooks\[1\]: .*variable NOPE is not set"):
        load_settings(plugins={"x": {"hooks": ["a", {"$env": "NOPE"}]}})


def test_plugin_settings_from_the_environment_and_unknown_keys(settings_factory) -> None:
    from graft.config import AssistantSettings, setting_value
    from graft.context import Context, Principal

    assert [setting_value(v) for v in ("5", "true", '["a"]', "https://x", 3)] == [
        5,
        True,
        ["a"],
        "https://x",
        3,
    ]
    assistant = AssistantSettings(plugins={"sentiment": {"escalate_after": "2", "colour": 1}})
    ctx = Context(Principal("ann"), settings_factory(), "a", assistant)
    assert ctx.plugin_config("sentiment")["escalate_after"] == "2"
    with pytest.raises(ConfigError, match=r"unknown setting plugins.sentiment.colour \(known: "):
        ctx.plugin_config("sentiment", known={"escalate_after"})

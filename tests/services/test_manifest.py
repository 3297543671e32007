"""Manifests and ``[services.NAME]``: fields, secrets by reference, merging."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from graft.errors import ConfigError
from graft.secrets import mask_secrets
from graft.services.manifest import (
    ApiKeyAuth,
    BearerAuth,
    Manifest,
    OAuth2ClientCredentials,
    ServiceSettings,
    load_manifest,
    service_manifest,
)


def write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_a_chatgpt_style_manifest_with_a_referenced_key(tmp_path: Path) -> None:
    path = write(
        tmp_path / "ai-plugin.json",
        {
            "schema_version": "v1",
            "name_for_human": "Weather",
            "name_for_model": "weather",
            "description_for_human": "Forecasts.",
            "description_for_model": "Forecasts for our sites.",
            "logo_url": "https://example.com/logo.png",
            "api": {"type": "openapi", "url": "https://example.com/openapi.json"},
            "auth": {"type": "api_key", "in": "query", "name": "k", "key": {"$env": "WX_KEY"}},
        },
    )
    manifest = load_manifest(path, environ={"WX_KEY": "wx-0123456789abcdef"})
    assert manifest.name == "weather" and manifest.description_for_model.startswith("Forecasts")
    assert isinstance(manifest.auth, ApiKeyAuth)
    assert (manifest.auth.in_, manifest.auth.name) == ("query", "k")
    assert manifest.auth.key.get_secret_value() == "wx-0123456789abcdef"
    assert "wx-0123456789abcdef" not in repr(manifest)
    assert mask_secrets("key is wx-0123456789abcdef") == "key is wx-…cdef"


def test_a_secret_written_into_a_manifest_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "m.json", {"name": "x", "auth": {"type": "bearer", "token": "t0k"}})
    with pytest.raises(ConfigError, match=r"auth.token: secrets do not belong in the manifest"):
        load_manifest(path)


def test_toml_manifest_with_a_file_reference_and_oauth(tmp_path: Path) -> None:
    (tmp_path / "secret.txt").write_text("cs-from-a-file-123\n", encoding="utf-8")
    (tmp_path / "secret.txt").chmod(0o600)
    path = tmp_path / "m.toml"
    path.write_text(
        'name = "crm"\n[auth]\ntype = "oauth2_client_credentials"\n'
        'token_url = "https://login.corp/token"\nclient_id = "graft"\n'
        'client_secret = { "$file" = "secret.txt" }\n',
        encoding="utf-8",
    )
    auth = load_manifest(path).auth
    assert isinstance(auth, OAuth2ClientCredentials)
    assert auth.client_secret.get_secret_value() == "cs-from-a-file-123"
    assert auth.client_auth == "basic" and auth.scope is None


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"name": "has space"}, "name"),
        ({"name": "x", "allow_hosts": ["not a host!"]}, "allow_hosts"),
        ({"name": "x", "base_url": "ftp://x/"}, "base_url"),
        ({"name": "x", "timeout": 0}, "timeout"),
        ({"name": "x", "auth": {"type": "basic"}}, "auth"),
        ({"name": "x", "retry": 3}, "retry"),
    ],
)
def test_invalid_manifests(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        Manifest.model_validate(fields)


def test_settings_options_win_over_the_manifest_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "m.json",
        {
            "name": "other",
            "description_for_model": "From the file.",
            "timeout": 9,
            "auth": {"type": "bearer", "token": {"$env": "TOKEN"}},
        },
    )
    service = ServiceSettings.model_validate(
        {"spec": "api.json", "manifest": str(path), "timeout": 3, "allow_hosts": ["10.0.0.0/8"]}
    )
    manifest = service_manifest("crm", service, environ={"TOKEN": "tok-0123456789abcdef"})
    assert manifest.name == "crm"  # the table's key
    assert manifest.description_for_model == "From the file." and manifest.timeout == 3
    assert manifest.allow_hosts == ["10.0.0.0/8"]
    assert isinstance(manifest.auth, BearerAuth)
    inline = ServiceSettings.model_validate(
        {"spec": "api.json", "auth": {"type": "bearer", "token": "resolved-by-config"}}
    )
    assert isinstance(service_manifest("crm", inline).auth, BearerAuth)
    with pytest.raises(ConfigError, match="service name"):
        service_manifest("bad name", inline)
    with pytest.raises(ValidationError):
        ServiceSettings.model_validate({"spec": "api.json", "unknown": 1})


def test_services_in_the_settings_file_resolve_their_secrets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from graft.config import load_settings

    monkeypatch.setenv("SHOP_KEY", "shop-key-0123456789")
    config = tmp_path / "graft.toml"
    config.write_text(
        '[services.shop]\nspec = "shop.json"\ntimeout = 5\n'
        'auth = { type = "api_key", in = "query", name = "k", key = { "$env" = "SHOP_KEY" } }\n',
        encoding="utf-8",
    )
    settings = load_settings(config, home=tmp_path / "home")  # overrides: a second validation
    service = settings.services["shop"]  # type: ignore[attr-defined]
    assert isinstance(service.auth, ApiKeyAuth) and service.auth.in_ == "query"
    assert service.auth.key.get_secret_value() == "shop-key-0123456789"
    assert "shop-key-0123456789" not in repr(settings)

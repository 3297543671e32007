"""``graft plugins add-openapi``: check a document, list its tools, add it to the settings."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from tests.services.conftest import SPEC, DemoAPI

from graft.cli_services import add_openapi
from graft.errors import ConfigError
from graft.services.manifest import ServiceSettings
from graft.settings_file import add_table

SETTINGS = """\
# our settings
model = "local:smollm2"   # keep this comment

[network]
allow_hosts = ["wiki.corp"]
"""


def invoke(*args: str, config: Path | None = None) -> Result:
    return CliRunner().invoke(add_openapi, list(args), obj={"config": config})


def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "shop.json"
    path.write_text(json.dumps({**SPEC, "servers": [{"url": "https://shop.example.com/api"}]}))
    return path


def test_adds_a_service_keeping_everything_else(tmp_path: Path) -> None:
    config = tmp_path / "graft.toml"
    config.write_text(SETTINGS, encoding="utf-8")
    manifest = tmp_path / "manifest.json"
    manifest.write_text(json.dumps({"name": "shop", "description_for_model": "Our shop."}))
    result = invoke(str(spec_file(tmp_path)), "--manifest", str(manifest), config=config)
    assert result.exit_code == 0, result.output
    assert "service shop: 12 tools, calls go to https://shop.example.com/api" in result.output
    assert "shop_getItem" in result.output and "GET /items/{item_id}  (read-only)" in result.output
    assert f"added [services.shop] to {config}" in result.output
    text = config.read_text(encoding="utf-8")
    assert text.startswith(SETTINGS)  # comments, order and the old table as they were
    table = tomllib.loads(text)["services"]["shop"]
    assert table == {"spec": str(tmp_path / "shop.json"), "manifest": str(manifest)}
    ServiceSettings.model_validate(table)


def test_an_existing_service_table_is_never_replaced(tmp_path: Path) -> None:
    config = tmp_path / "graft.toml"
    config.write_text('[services.old]\nspec = "old.json"  # mine\n', encoding="utf-8")
    add_table(config, "services", "new", {"spec": "new.json"})
    text = config.read_text(encoding="utf-8")
    assert text.startswith('[services.old]\nspec = "old.json"  # mine\n')
    assert tomllib.loads(text)["services"] == {
        "old": {"spec": "old.json"},
        "new": {"spec": "new.json"},
    }
    with pytest.raises(ConfigError, match=r"has a \[services.old\] already"):
        add_table(config, "services", "old", {"spec": "other.json"})
    assert config.read_text(encoding="utf-8") == text
    config.write_text('services = "not a table"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="'services' is not a table"):
        add_table(config, "services", "new", {"spec": "new.json"})


def test_without_a_settings_file_the_table_is_printed(tmp_path: Path) -> None:
    result = invoke(str(spec_file(tmp_path)))
    assert result.exit_code == 0, result.output
    assert "service demo_shop: 12 tools" in result.output  # named from the title
    toml = result.output.split("Add this to your settings file", 1)[1].split("\n", 2)[2]
    assert tomllib.loads(toml)["services"]["demo_shop"]["spec"] == str(tmp_path / "shop.json")


def test_a_new_settings_file_is_created(tmp_path: Path) -> None:
    config = tmp_path / "new.toml"
    assert invoke(str(spec_file(tmp_path)), "--name", "s", config=config).exit_code == 0
    assert tomllib.loads(config.read_text())["services"]["s"]["spec"].endswith("shop.json")


def test_invalid_documents_are_reported_in_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"swagger": "2.0", "paths": {}}))
    result = invoke(str(bad), "--name", "x")
    assert result.exit_code == 1 and "Swagger 2.0 is not supported" in result.output
    assert "Traceback" not in result.output


def test_a_url_is_fetched_through_the_guard_with_the_manifests_hosts(
    api: DemoAPI, tmp_path: Path
) -> None:
    url = f"{api.url}/openapi.json"
    refused = invoke(url, "--name", "shop")
    assert refused.exit_code == 1 and "blocked by the network policy" in refused.output
    manifest = tmp_path / "m.json"
    manifest.write_text(
        json.dumps({"name": "shop", "allow_hosts": ["127.0.0.1"], "allow_ports": [api.port]})
    )
    result = invoke(url, "--manifest", str(manifest))
    assert result.exit_code == 0, result.output
    assert f"calls go to {api.url}/api" in result.output and "warning" not in result.output

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from graft.config import load_settings
from graft.plugins import Registry, make_plugin_manager, plugin_infos

PLUGIN = '''
import graft

@graft.tool
def shout(text: str) -> str:
    """Upper-case some text."""
    return text.upper()

@graft.hookimpl
def register_tools(register):
    register(shout)
'''


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A distribution `graft-shout` on sys.path, exposing a `graft` entry point."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "graft_shout.py").write_text(PLUGIN)
    dist = site / "graft_shout-1.2.3.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: graft-shout\nVersion: 1.2.3\n")
    (dist / "entry_points.txt").write_text("[graft]\nshout = graft_shout\n")
    monkeypatch.syspath_prepend(str(site))
    yield "graft_shout"
    sys.modules.pop("graft_shout", None)


def test_entry_point_plugins_are_discovered(installed_plugin: str) -> None:
    pm = make_plugin_manager()
    infos = {info.name: info for info in plugin_infos(pm)}
    assert infos["shout"].package == "graft-shout" and infos["shout"].version == "1.2.3"
    assert infos["shout"].hooks == ["register_tools"]
    registry = Registry.collect(pm, load_settings())
    owners = {plugin for _, plugin in registry.toolsets}
    assert "shout" in owners


def test_entry_points_can_be_turned_off(installed_plugin: str) -> None:
    pm = make_plugin_manager(entry_points=False)
    assert "shout" not in {info.name for info in plugin_infos(pm)}


def test_default_plugins_use_the_public_hooks() -> None:
    pm = make_plugin_manager(entry_points=False)
    registry = Registry.collect(pm, load_settings())
    assert {"local", "openai", "deepseek", "dashscope", "vllm", "ollama"} <= set(registry.models)
    assert all(plugin.startswith("graft.default_plugins.") for _, plugin in registry.toolsets)


def test_a_plugin_registering_a_duplicate_provider_is_refused() -> None:
    from graft.hookspecs import hookimpl

    class Clash:
        @hookimpl
        def register_models(self, register):  # type: ignore[no-untyped-def]
            register("openai", lambda model_id, settings: None)

    pm = make_plugin_manager(entry_points=False, plugins=[Clash()])
    with pytest.raises(ValueError, match="registered by"):
        Registry.collect(pm, load_settings())


def test_registration_hooks_must_be_plain_functions() -> None:
    from graft.hookspecs import hookimpl

    class AsyncRegister:
        @hookimpl
        async def register_tools(self, register):  # type: ignore[no-untyped-def]
            register(print)

    pm = make_plugin_manager(entry_points=False, plugins=[AsyncRegister()])
    with pytest.raises(TypeError, match="must be a plain function"):
        Registry.collect(pm, load_settings())


async def test_async_authenticators_are_awaited(graft_factory) -> None:
    from graft.context import Principal
    from graft.errors import AuthenticationError
    from graft.hookspecs import hookimpl

    class ProxyAuth:
        @hookimpl
        async def authenticate(self, headers, settings):  # type: ignore[no-untyped-def]
            user = headers.get("x-forwarded-user")
            if user is None:
                raise AuthenticationError("no proxy user")
            return Principal(user, frozenset({"staff"}))

    graft = graft_factory(plugins=(ProxyAuth(),))
    principal = await graft.authenticate({"x-forwarded-user": "ann"})
    assert principal.user_id == "ann" and principal.roles == {"staff"}
    with pytest.raises(AuthenticationError, match="no proxy user"):
        await graft.authenticate({})

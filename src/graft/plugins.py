"""Loading plugins and collecting what they register.

``make_plugin_manager`` registers graft's default plugins, then every distribution's
``graft`` entry points. ``Registry`` calls each registration hook once per plugin, with a
``register`` callback bound to that plugin, so every model provider, tool and middleware
knows where it came from (``graft plugins`` shows it). Nothing loads at import time.
"""

from __future__ import annotations

import importlib
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from graft import hookspecs
from graft.config import Settings
from graft.middleware import Middleware
from graft.models.base import ModelFactory
from graft.tools.base import Toolset
from graft.tools.function import FunctionTool, FunctionToolset

__all__ = ["DEFAULT_PLUGINS", "PluginInfo", "Registry", "make_plugin_manager", "plugin_infos"]

DEFAULT_PLUGINS = (
    "graft.default_plugins.builtin_tools",
    "graft.default_plugins.openai_models",
    "graft.default_plugins.local_models",
    "graft.default_plugins.session_auth",
    "graft.default_plugins.api_key_auth",
    "graft.default_plugins.redact_pii",
    "graft.default_plugins.sentiment.plugin",
    "graft.default_plugins.mcp_servers",
    "graft.default_plugins.openapi_services",
    "graft.default_plugins.translate",
    "graft.default_plugins.sql_sources",
    "graft.default_plugins.knowledge",
)


def make_plugin_manager(
    *, entry_points: bool = True, plugins: Iterable[object] = ()
) -> pluggy.PluginManager:
    """Return a plugin manager with the default plugins, entry points and ``plugins``."""
    pm = pluggy.PluginManager("graft")
    pm.add_hookspecs(hookspecs)
    for module_name in DEFAULT_PLUGINS:
        pm.register(importlib.import_module(module_name), name=module_name)
    if entry_points:
        pm.load_setuptools_entrypoints("graft")
    for plugin in plugins:
        pm.register(plugin)
    return pm


@dataclass(slots=True)
class PluginInfo:
    """One loaded plugin: its name, the distribution that ships it and the hooks it implements."""

    name: str
    package: str | None
    version: str | None
    hooks: list[str]


@dataclass(slots=True)
class Registry:
    """Everything the plugins registered, with the plugin each item came from."""

    models: dict[str, tuple[ModelFactory, str]] = field(default_factory=dict)
    toolsets: list[tuple[Toolset, str]] = field(default_factory=list)
    middleware: dict[str, tuple[Middleware, str]] = field(default_factory=dict)

    @classmethod
    def collect(cls, pm: pluggy.PluginManager, settings: Settings) -> Registry:
        """Call every registration hook of every plugin."""
        registry = cls()
        _each_impl(pm, "register_models", registry._model_register, settings)
        _each_impl(pm, "register_tools", registry._tool_register, settings)
        _each_impl(pm, "register_middleware", registry._middleware_register, settings)
        return registry

    def _model_register(self, plugin: str) -> Callable[..., None]:
        def register(prefix: str, factory: ModelFactory) -> None:
            if prefix in self.models:
                other = self.models[prefix][1]
                raise ValueError(f"model provider {prefix!r} registered by {other} and {plugin}")
            self.models[prefix] = (factory, plugin)

        return register

    def _tool_register(self, plugin: str) -> Callable[..., None]:
        functions = FunctionToolset(name=plugin.rsplit(".", 1)[-1])

        def register(item: FunctionTool | Callable[..., Any] | Toolset) -> None:
            if isinstance(item, FunctionTool) or (callable(item) and not isinstance(item, Toolset)):
                if not functions.tools:
                    self.toolsets.append((functions, plugin))
                functions.add(item)
            elif isinstance(item, Toolset):
                self.toolsets.append((item, plugin))
            else:
                raise TypeError(f"{plugin}: cannot register {item!r} as a tool")

        return register

    def _middleware_register(self, plugin: str) -> Callable[..., None]:
        def register(middleware: Middleware) -> None:
            if middleware.name in self.middleware:
                raise ValueError(f"middleware {middleware.name!r} is registered twice")
            self.middleware[middleware.name] = (middleware, plugin)

        return register


def _each_impl(
    pm: pluggy.PluginManager,
    hook_name: str,
    make_register: Callable[[str], Callable[..., None]],
    settings: Settings,
) -> None:
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        available = {"register": make_register(impl.plugin_name), "settings": settings}
        result = impl.function(**{name: available[name] for name in impl.argnames})
        if inspect.isawaitable(result):
            close = getattr(result, "close", None)
            if close is not None:
                close()
            raise TypeError(f"{impl.plugin_name}: the {hook_name} hook must be a plain function")


def plugin_infos(pm: pluggy.PluginManager) -> list[PluginInfo]:
    """Describe every loaded plugin, for ``graft plugins``."""
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    infos = []
    for name, plugin in pm.list_name_plugin():
        if plugin is None:
            continue
        dist = dists.get(id(plugin))
        hooks = sorted(caller.name for caller in pm.get_hookcallers(plugin) or [])
        if dist is not None:
            package, version = dist.project_name, dist.version
        elif name.startswith("graft."):
            package, version = "graft", _graft_version()
        else:
            package, version = None, None
        infos.append(PluginInfo(name, package, version, hooks))
    return infos


def _graft_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("graft")
    except PackageNotFoundError:
        return "unknown"

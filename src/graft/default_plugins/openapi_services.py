"""Registers one ``OpenAPIToolset`` per ``[services.NAME]`` table of the settings.

OpenAPI services are a built-in feature on the public ``register_tools`` hook, like any
third-party toolset. A document in a file is read here, at startup, so a broken one is a
``ConfigError`` before graft serves; one at a URL is fetched when first needed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping

from graft.config import Settings
from graft.hookspecs import hookimpl
from graft.services.manifest import ServiceSettings
from graft.services.toolset import OpenAPIToolset


@hookimpl
def register_tools(register: Callable[..., None], settings: Settings) -> None:
    """Register the toolset of every configured service."""
    services: Mapping[str, ServiceSettings] = getattr(settings, "services", None) or {}
    for name, service in services.items():
        # A manifest file's secret references are read from this process's environment.
        register(OpenAPIToolset.from_settings(name, service, settings.network, environ=os.environ))

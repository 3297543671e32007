"""Registers the SQL tools (``graft.sources``) when ``[sources.NAME]`` tables are configured.

Nothing connects here: each database is opened by the toolset on its first query, so a
database that is down does not stop graft from starting, and one without sources configured
costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

from graft.config import Settings
from graft.hookspecs import hookimpl


@hookimpl
def register_tools(register: Callable[..., None], settings: Settings) -> None:
    """Register the SQL tools over the configured data sources."""
    if not settings.sources:
        return
    from graft.sources.toolset import SourcesToolset

    register(SourcesToolset(settings.sources))

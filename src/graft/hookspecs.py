"""Every extension point of graft, one hook each.

Plugins implement these with ``@graft.hookimpl`` and are found through the ``graft``
entry-point group. Graft's own features (built-in tools, model providers, API-key auth) are
default plugins on these same hooks, so a hook that is too weak for graft is too weak for
everyone. Hooks that register things take a ``register`` callback so one plugin can add
zero or many items, and graft records which plugin each came from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from graft.config import Settings
    from graft.context import Principal
    from graft.store.base import Store

__all__ = ["hookimpl", "hookspec"]

hookspec = pluggy.HookspecMarker("graft")
hookimpl = pluggy.HookimplMarker("graft")


@hookspec
def register_models(register: Callable[..., None]) -> None:
    """Register model providers: ``register("prefix", factory)``; ``factory(name, settings)``."""


@hookspec
def register_tools(register: Callable[..., None], settings: Settings) -> None:
    """Register tools: ``register(fn_or_function_tool)`` or ``register(toolset)``."""


@hookspec
def register_middleware(register: Callable[..., None]) -> None:
    """Register input/output middleware by name: ``register(middleware)``."""


@hookspec(firstresult=True)
def authenticate(
    headers: Mapping[str, str], settings: Settings, store: Store, method: str
) -> Principal | None:
    """Return the principal for a request's headers, None to defer, or raise to refuse.

    May be ``async``. ``store`` holds the users, keys and sessions (``graft.identity``,
    ``graft.sessions``); ``method`` is the request's HTTP method (``"POST"``).
    """


@hookspec
def register_commands(cli: click.Group) -> None:
    """Add commands to the ``graft`` command line."""
